"""``intact`` and ``intact-nobridge``: the Inter-Task Association Critic (Cheng et al., CVPR 2020).

Features: ``f_c`` is the re-id model's identity feature (the pooled backbone
feature before the BNNeck, the second output in train mode, for timm and
torchreid backbones alike); ``f_d`` is the discriminator's penultimate feature
of the same image. Every read of them comes from a frozen module with its
normalisation layers in inference mode (running statistics, nothing updated):
``f_c``, ``f_d`` on real HR in the association step and ``f_c'``, ``f_d'`` on
SR in the G step alike (see docs/intact.md).

The association network ``phi`` maps ``f_c -> f_d`` on *real HR* images:
``L_intact = ||phi(f_c) - f_d||^2``, with ``f_d`` standardised per dim by
the real-HR batch at hand (``critic_standardise``, on by default;
:func:`harness.losses.standardise`), so the error reads as ``1 - R²``, sits on
the bridge term's scale, and one ``lambda_a`` suits every D.

**A critic ready before it criticises.** D and the association networks are
trained with G frozen for ``critic_iters`` iterations after G's pixel warm
start (the trainer's critic warm-up), so ``L_dis`` acts on G from stage 1's
first iteration with a critic that already predicts ``f_d`` on held-out
images. Each run reports how well it does (``diagnostics`` in metrics.json;
docs/intact.md says how to read them).

**The bridge (this project's interpretation; the paper leaves it open).**
``phi = decoder ∘ encoder``. The encoder maps ``f_c`` into a bridge space,
``f_e = encoder(f_c)``; ``sigma`` maps ``f_d`` into that same space, and
``L_e = ||sigma(f_d) - f_e||^2``. ``phi`` (encoder and decoder) and ``sigma``
are learned jointly on ``L_intact-e = L_intact + lambda_e * L_e`` with the
re-id model and D frozen (``f_c`` and ``f_d`` carry no gradient, and reading
them changes neither model, BatchNorm statistics included). ``f_e`` is
layer-normalised without affine parameters so ``L_e`` cannot be zeroed by
shrinking the bridge code while the decoder scales it back (see
:class:`crossres_plugins.reg.mlp.EncoderDecoder`). The gradient of ``L_e`` reaches the
encoder as well as ``sigma``: the bridge shapes the code ``phi`` passes
through, which is the point of it.

``intact-nobridge`` (Fig. 5 d) keeps exactly the same ``phi`` (encoder,
normalised bridge code, decoder) and drops ``sigma`` and ``L_e``, so the
ablation isolates the bridging loss rather than a change of architecture.

**Distances.** ``||a - b||^2`` is computed as ``F.mse_loss`` (squared error
averaged over batch and feature dims), so weights do not depend on the
feature sizes.

**Algorithm 1, one iteration** (the schedule):

1. ``D``: update D with the non-saturating GAN loss (real HR -> 1, SR -> 0).
2. ``assoc``: update ``phi`` (and ``sigma``) with ``L_intact-e`` on real HR,
   ``f_d`` read from the D just updated.
3. ``G``: update G (and the re-id model when ``config.finetune_reid``) with
   ``L_sr + lambda_a * L_dis``, ``L_dis = ||phi(f_c') - f_d'||^2`` on the SR
   batch: ``f_c' = reid(x_sr)``, ``f_d' = D(x_sr)``. ``phi`` and D are frozen;
   the gradient reaches G through both ``f_c'`` and ``f_d'``; the re-id
   parameters get none from G's terms (a parameter-detached forward when they
   are being fine-tuned, see :meth:`harness.context.StepContext.reid_on_sr`), only from
   their own ID loss on SR and HR (:func:`harness.steps.finetune_reid_terms`).

The machinery every association critic shares (standardised inputs, the
association step, ``L_dis`` and its diagnostics) is
:class:`harness.critics.AssociationCritic`; the rivals in
:mod:`crossres_plugins.reg.associations` run this same schedule with other maps.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from harness import (
    BuildContext,
    Option,
    Regulariser,
    RunConfig,
    Step,
    StepContext,
    hookimpl,
    log_range,
)
from harness.critics import ASSOCIATION_GENERATOR_OPTIONS, ASSOCIATION_OPTIONS, AssociationCritic
from harness.losses import association_mse
from harness.steps import (
    adversarial,
    discriminator_accuracy,
    discriminator_step,
    generator_step,
    sr_terms,
)

from .mlp import EncoderDecoder, mlp

INTACT_OPTIONS: dict[str, Option] = {
    **ASSOCIATION_OPTIONS,
    "lambda_e": Option(
        1.0,
        "weight of the bridging loss L_e in the association step",
        min=0.0,
        search=log_range(0.1, 10.0),
    ),
}


class IntactCritic(AssociationCritic):
    """``phi: f_c -> f_d`` through a bridge code that ``sigma`` maps ``f_d`` into."""

    def __init__(self, opts, bridge: bool = True):
        super().__init__(opts)
        self.bridge = bridge
        self.modules = ("phi", "sigma") if bridge else ("phi",)

    def build(self, reid_dim: int, fd_dim: int) -> dict[str, nn.Module]:
        hidden, depth = self.hidden()
        bridge_dim = self.opts["bridge_dim"]
        modules: dict[str, nn.Module] = {
            "phi": EncoderDecoder(reid_dim, fd_dim, bridge_dim, hidden, depth)
        }
        if self.bridge:
            modules["sigma"] = mlp(fd_dim, bridge_dim, hidden, depth)
        return modules

    def association_terms(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> dict[str, Tensor]:
        """``L_intact = ||phi(f_c) - f_d||^2`` and ``lambda_e * ||sigma(f_d) - f_e||^2``."""
        phi = ctx["phi"]
        target = self.disc_input(ctx, f_d)
        f_e = phi.encode(f_c)
        terms = {"intact": association_mse(phi.decoder(f_e), target)}
        if self.bridge:
            terms["e"] = self.opts["lambda_e"] * association_mse(ctx["sigma"](target), f_e)
        return terms

    def fit(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> tuple[Tensor, Tensor]:
        return ctx["phi"](f_c), self.disc_input(ctx, f_d)


class IntactRegulariser(Regulariser):
    """Algorithm 1: D, then the association critic on real HR, then G penalised by it."""

    name = "intact"
    options: ClassVar[dict[str, Option]] = INTACT_OPTIONS
    generator_only_options: ClassVar[tuple[str, ...]] = ASSOCIATION_GENERATOR_OPTIONS

    def __init__(self, config: RunConfig):
        super().__init__(config)
        self.critic = self.make_critic()

    def make_critic(self) -> AssociationCritic:
        """The association the critic learns: R-to-D through the bridge (the rivals swap it)."""
        return IntactCritic(self.opts, bridge=True)

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        modules = {"D": ctx.make_discriminator()}
        modules.update(self.critic.build(ctx.reid_dim, ctx.feature_dim(modules["D"])))
        return modules

    def schedule(self, config: RunConfig) -> list[Step]:
        o = self.opts
        return [
            # (1) D with the GAN loss
            discriminator_step(o["lr_D"]),
            # (2) phi (and sigma) with L_intact-e on real HR; re-id and D frozen
            self.critic.step(o["lr_phi"]),
            # (3) G with L_sr + lambda_a * L_dis; D and the critic frozen
            generator_step(
                config,
                *sr_terms(o["lambda_c"]),
                adversarial(o["lambda_g"]),
                self.critic.term(o["lambda_a"]),
            ),
        ]

    def critic_warmup_iters(self, config: RunConfig) -> int:
        return int(self.opts["critic_iters"])

    def probe(self, ctx: StepContext) -> dict[str, float]:
        return {"d_accuracy": float(discriminator_accuracy(ctx)), **self.critic.probe(ctx)}


class IntactNoBridge(IntactRegulariser):
    """INTACT without ``sigma`` and ``L_e`` (Fig. 5 d); ``phi`` is unchanged."""

    name = "intact-nobridge"
    options: ClassVar[dict[str, Option]] = ASSOCIATION_OPTIONS

    def make_critic(self) -> AssociationCritic:
        return IntactCritic(self.opts, bridge=False)


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "intact",
        IntactRegulariser,
        "INTACT: D, then phi+sigma on L_intact + lambda_e*L_e, then G on L_sr + lambda_a*L_dis",
        options=IntactRegulariser.options,
    )
    registry.add(
        "intact-nobridge",
        IntactNoBridge,
        "INTACT without the bridge: phi (f_c -> f_d) learned on L_intact alone, no sigma",
        options=IntactNoBridge.options,
    )
