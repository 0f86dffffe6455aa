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
:class:`plugins.reg.mlp.EncoderDecoder`). The gradient of ``L_e`` reaches the
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
   are being fine-tuned, see :func:`harness.losses.reid_on_sr`), only from
   their own ID loss on SR and HR (:func:`harness.losses.reid_own_terms`).

:class:`AssociationCritic` is the shape shared with the rivals in
:mod:`plugins.reg.associations`: they differ only in the maps they learn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from harness import BuildContext, Option, RunConfig, Step, StepContext, hookimpl
from harness.losses import (
    association_mse,
    disc_on_sr,
    observe,
    real_disc_features,
    real_reid_features,
    reid_features_for_critic,
    standardise,
)
from harness.schedule import flat_norm
from plugins.reg.gan import GAN_OPTIONS, GanRegulariser
from plugins.reg.mlp import EncoderDecoder, mlp

ASSOCIATION_OPTIONS: dict[str, Option] = {
    **GAN_OPTIONS,
    "lambda_a": Option(
        3e-5,
        "weight of the association critic L_dis in the G step (per-element MSE on a standardised "
        "target; 3e-5 gives L_dis 10-30% of G's gradient on the cpu preset, docs/intact.md)",
        min=0.0,
    ),
    "phi_hidden": Option(256, "hidden width of the association networks", min=1),
    "phi_depth": Option(
        2, "linear layers in each association MLP (phi's encoder and decoder each)", min=1
    ),
    "bridge_dim": Option(64, "dim of the bridge / common space", min=1),
    "lr_phi": Option(
        1e-3, "learning rate of the association networks (1e-4 left the critic below R² 0 on held-out "
        "images after 300 iterations: D moves faster than it learned)", min=0.0, exclusive_min=True,
    ),
    "dis_paths": Option(
        "both", "which features L_dis's gradient reaches G through: both (Eq. 8 as written) or fc "
        "(f_d' detached: the critic acts through the re-id feature alone)", choices=("both", "fc"),
    ),
    "critic_standardise": Option(
        True, "standardise the critic's target feature per dim by the real-HR batch at hand, so its "
        "error is 1 - R² and one lambda_a suits every D", choices=(True, False),
    ),
}

INTACT_OPTIONS: dict[str, Option] = {
    **ASSOCIATION_OPTIONS,
    "lambda_e": Option(1.0, "weight of the bridging loss L_e in the association step", min=0.0),
}


class AssociationCritic(GanRegulariser):
    """D step, association step on real HR, G step penalised by the frozen critic.

    Subclasses say which maps they learn (``build_critic``), how they are
    trained on real HR (``association_terms``) and what the frozen critic
    predicts from what (``critic_fit``): ``L_dis`` is the mean squared error of
    that prediction on SR features, and its R² on held-out real HR says how
    much the critic knows (:meth:`probe`).
    """

    options: ClassVar[dict[str, Option]] = ASSOCIATION_OPTIONS
    critic_modules: ClassVar[tuple[str, ...]] = ("phi",)
    generator_only_options: ClassVar[tuple[str, ...]] = (
        *GanRegulariser.generator_only_options, "lambda_a", "dis_paths")

    # -- what subclasses define --------------------------------------------------
    def build_critic(self, reid_dim: int, fd_dim: int) -> dict[str, nn.Module]:
        raise NotImplementedError

    def association_terms(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> dict[str, Tensor]:
        """Named, weighted terms on real-HR features (no gradient to re-id or D)."""
        raise NotImplementedError

    def critic_fit(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> tuple[Tensor, Tensor]:
        """``(prediction, target)`` of the frozen critic for features ``f_c``, ``f_d``."""
        raise NotImplementedError

    def critic_distance(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> Tensor:
        """Unweighted ``L_dis``: the critic's squared error on these features."""
        return association_mse(*self.critic_fit(ctx, f_c, f_d))

    # -- shared machinery ----------------------------------------------------------
    def disc_input(self, ctx: StepContext, f_d: Tensor) -> Tensor:
        """``f_d`` standardised by the real-HR batch's ``f_d`` (unchanged without ``critic_standardise``)."""
        return standardise(f_d, real_disc_features(ctx)) if self.opts["critic_standardise"] else f_d

    def reid_input(self, ctx: StepContext, f_c: Tensor) -> Tensor:
        """``f_c`` standardised by the real-HR batch's ``f_c`` (unchanged without ``critic_standardise``)."""
        return standardise(f_c, real_reid_features(ctx)) if self.opts["critic_standardise"] else f_c

    def _hidden(self) -> tuple[int, int]:
        return self.opts["phi_hidden"], self.opts["phi_depth"]

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        modules = super().build(ctx)
        modules.update(self.build_critic(ctx.reid_dim, ctx.feature_dim(modules["D"])))
        return modules

    def association_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        return self.association_terms(ctx, real_reid_features(ctx), real_disc_features(ctx))

    def dis_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        """``{"dis": lambda_a * L_dis}`` on the SR batch; reuses the G step's forwards."""
        f_c = reid_features_for_critic(ctx)
        _, f_d = disc_on_sr(ctx, "D")
        if self.opts["dis_paths"] == "fc":
            f_d = f_d.detach()
        ctx.cache["critic/sr_features"] = (f_c, f_d)
        return {"dis": self.opts["lambda_a"] * self.critic_distance(ctx, f_c, f_d)}

    def dis_paths(self, ctx: StepContext, terms: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """How much of ``L_dis``'s gradient on G arrives through ``f_c'`` and through ``f_d'``.

        ``dis_path_share/fc = |g_fc| / (|g_fc| + |g_fd|)``, where ``g_fc`` is the
        gradient on G's parameters of ``L_dis`` backpropagated through ``f_c'`` alone
        (the re-id path) and ``g_fd`` through ``f_d'`` alone (D's path). Near 0: the
        term acts as feature matching on D and carries little identity information.
        """
        if "dis" not in terms or "critic/sr_features" not in ctx.cache:
            return {}
        features = ctx.cache["critic/sr_features"]
        params = [p for p in ctx["G"].parameters() if p.requires_grad]
        wanted = [f for f in features if f.requires_grad]
        grads = iter(torch.autograd.grad(terms["dis"], wanted, retain_graph=True, allow_unused=True))
        norms = []
        for feature in features:
            grad = next(grads) if feature.requires_grad else None
            if grad is None:
                norms.append(torch.zeros((), device=terms["dis"].device))
                continue
            norms.append(flat_norm(torch.autograd.grad(feature, params, grad_outputs=grad,
                                                       retain_graph=True, allow_unused=True)))
        total = (norms[0] + norms[1]).clamp_min(1e-30)
        return {"dis_path_share/fc": norms[0] / total, "dis_path_share/fd": norms[1] / total}

    def probe(self, ctx: StepContext) -> dict[str, float]:
        """D's accuracy, and the critic's R² on held-out real HR and its gap on their SR.

        ``critic_r2 = 1 - MSE / Var(target)`` (the variance per dim, averaged): 0 is
        a critic that learned only the mean of its target, 1 a perfect one.
        ``critic_gap`` = the critic's error on SR minus its error on HR: what
        ``L_dis`` (unweighted) can still push G to close.
        """
        out = super().probe(ctx)
        pred, target = self.critic_fit(ctx, real_reid_features(ctx), real_disc_features(ctx))
        error_hr = association_mse(pred, target)
        variance = target.float().var(dim=0, unbiased=False).mean().clamp_min(1e-12)
        _, f_c_sr = observe(ctx["reid"], ctx.sr())
        _, f_d_sr = observe(ctx["D"], ctx.sr())
        error_sr = self.critic_distance(ctx, f_c_sr, f_d_sr)
        out.update({"critic_r2": float(1 - error_hr / variance), "critic_gap": float(error_sr - error_hr)})
        return out

    def generator_step(self, config: RunConfig) -> Step:
        return dataclasses.replace(super().generator_step(config), diagnose=self.dis_paths)


    def generator_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        terms = super().generator_loss(ctx)
        if self.opts["lambda_a"]:
            terms.update(self.dis_terms(ctx))
        return terms

    def association_step(self) -> Step:
        lr = {name: self.opts["lr_phi"] for name in self.critic_modules}
        return Step("assoc", self.critic_modules, self.association_loss, lr=lr)

    def schedule(self, config: RunConfig) -> list[Step]:
        return [self.discriminator_step(), self.association_step(), self.generator_step(config)]


class IntactRegulariser(AssociationCritic):
    """INTACT: ``phi: f_c -> f_d`` through a bridge that ``sigma`` maps ``f_d`` into."""

    name = "intact"
    options: ClassVar[dict[str, Option]] = INTACT_OPTIONS
    critic_modules: ClassVar[tuple[str, ...]] = ("phi", "sigma")
    bridge: ClassVar[bool] = True

    def build_critic(self, reid_dim: int, fd_dim: int) -> dict[str, nn.Module]:
        hidden, depth = self._hidden()
        bridge_dim = self.opts["bridge_dim"]
        modules: dict[str, nn.Module] = {
            "phi": EncoderDecoder(reid_dim, fd_dim, bridge_dim, hidden, depth)
        }
        if self.bridge:
            modules["sigma"] = mlp(fd_dim, bridge_dim, hidden, depth)
        return modules

    def association_terms(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> dict[str, Tensor]:
        phi = ctx["phi"]
        target = self.disc_input(ctx, f_d)
        f_e = phi.encode(f_c)
        terms = {"intact": association_mse(phi.decoder(f_e), target)}
        if self.bridge:
            terms["e"] = self.opts["lambda_e"] * association_mse(ctx["sigma"](target), f_e)
        return terms

    def critic_fit(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> tuple[Tensor, Tensor]:
        return ctx["phi"](f_c), self.disc_input(ctx, f_d)


class IntactNoBridge(IntactRegulariser):
    """INTACT without ``sigma`` and ``L_e`` (Fig. 5 d); ``phi`` is unchanged."""

    name = "intact-nobridge"
    options: ClassVar[dict[str, Option]] = ASSOCIATION_OPTIONS
    critic_modules: ClassVar[tuple[str, ...]] = ("phi",)
    bridge: ClassVar[bool] = False


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
