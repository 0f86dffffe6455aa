"""The pieces a regulariser composes Algorithm 1 from: steps, and the terms of G's step.

A regulariser's iteration is a list of :class:`Step`; each names the modules
it trains and carries its own optimiser settings, and every other module is
frozen while it runs (:mod:`harness.freezing`). The built-in steps:

- :func:`discriminator_step`: D on the non-saturating GAN loss (SRGAN's Adam betas).
- :func:`generator_step`: G (and the re-id model with ``--finetune-reid``) on a
  sum of :class:`Term`; :func:`sr_terms` is ``L_sr``'s pixel and ID part,
  :func:`adversarial` its GAN part, and an association critic adds its own
  (:meth:`harness.critics.AssociationCritic.term`).
- an association step: :meth:`harness.critics.AssociationCritic.step`.

Why composition: a rival method is a different list of these (another term,
another step), not a fifth level of subclassing; ``plugins/reg/intact.py``
reads as Algorithm 1 because its ``schedule`` *is* the list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from harness.config import RunConfig
from harness.context import StepContext
from harness.losses import gan_d_loss, gan_g_loss, identity_ce, observe, pixel_mse
from harness.options import Option, log_range

LossFn = Callable[[StepContext], Mapping[str, Tensor]]
DiagnoseFn = Callable[[StepContext, Mapping[str, Tensor]], Mapping[str, Tensor]]

#: Adam's betas unless a step says otherwise
DEFAULT_BETAS = (0.9, 0.999)
#: SRGAN's (and DCGAN's) betas for a discriminator: a lower momentum keeps D from overshooting
DISCRIMINATOR_BETAS = (0.5, 0.999)
#: where a step can run (:attr:`Step.phases`): the critic warm-up and stage 1
PHASES = ("critic", "sr")


@dataclass(frozen=True)
class Step:
    """One update of Algorithm 1, with the optimiser settings of the modules it trains.

    Only the modules named in ``trainable`` have ``requires_grad=True`` during
    the step and only their parameters are stepped; every other module is
    frozen. ``loss`` returns named, already weighted terms; the trainer sums
    and logs them. ``lr`` and ``weight_decay`` are per trainable module
    (a module ``lr`` leaves out gets the run's default for it,
    :func:`harness.schedule.default_learning_rates`; ``weight_decay`` defaults to 0).
    """

    name: str
    trainable: tuple[str, ...]
    loss: LossFn
    lr: Mapping[str, float] = field(default_factory=dict)
    #: on log iterations, called with the step's terms before their backward (their
    #: graph alive): named scalar diagnostics of the step (e.g. which feature a critic's
    #: gradient reaches G through). Must not change any module or the terms.
    diagnose: DiagnoseFn | None = None
    betas: tuple[float, float] = DEFAULT_BETAS
    weight_decay: Mapping[str, float] = field(default_factory=dict)
    #: the training phases the step runs in, of ``("critic", "sr")`` (the critic warm-up and
    #: stage 1); ``None``: stage 1 always, the warm-up when the step does not train G. A
    #: module trained offline and then frozen (CamStyle's style transfer) runs in the
    #: warm-up alone; a step that must wait for it (the re-id model on its outputs) in
    #: stage 1 alone.
    phases: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.phases or ()) - set(PHASES)
        if unknown:
            raise ValueError(
                f"step {self.name!r}: unknown phase(s) {sorted(unknown)}; phases: {PHASES}"
            )

    def runs_in(self, phase: str) -> bool:
        """Whether the step runs in ``phase`` (``"critic"``: the warm-up; ``"sr"``: stage 1)."""
        if self.phases is not None:
            return phase in self.phases
        return phase == "sr" or "G" not in self.trainable


@dataclass(frozen=True)
class Term:
    """A named, weighted term of G's step: ``weight * loss(ctx)``, left out at weight 0.

    ``diagnose`` (optional) is the term's own contribution to the step's
    diagnostics (:attr:`Step.diagnose`).
    """

    name: str
    weight: float
    loss: Callable[[StepContext], Tensor]
    diagnose: DiagnoseFn | None = None

    def __call__(self, ctx: StepContext) -> dict[str, Tensor]:
        if not self.weight:
            return {}
        value = self.loss(ctx)
        return {self.name: value if self.weight == 1.0 else self.weight * value}


TermFn = Callable[[StepContext], Mapping[str, Tensor]]

# --------------------------------------------------------------------------
# Options the built-in regularisers share (declared once, beside the terms that read them)
# --------------------------------------------------------------------------

SR_OPTIONS: dict[str, Option] = {
    "lambda_c": Option(
        3e-4,
        "weight of the ID (cross-entropy) loss on SR images in the G step (small: the per-pixel "
        "MSE of about 2e-3 must lead; see harness.losses)",
        min=0.0,
        search=log_range(3e-5, 3e-3),
    ),
}

GAN_OPTIONS: dict[str, Option] = {
    **SR_OPTIONS,
    "lambda_g": Option(
        3e-4,
        "weight of the generator's adversarial loss (SRGAN used 1e-3; 1e-3 costs PSNR below "
        "bicubic here)",
        min=0.0,
        search=log_range(3e-5, 3e-3),
    ),
    "lr_D": Option(1e-4, "learning rate of the discriminator", min=0.0, exclusive_min=True),
    "critic_iters": Option(
        300,
        "iterations of the critic warm-up: D (and the association networks) trained with G "
        "frozen before G sees their terms (docs/intact.md: how the number was chosen)",
        presets={"smoke": 2, "cpu": 300, "paper": 1000},
        min=0,
    ),
}

# --------------------------------------------------------------------------
# G's terms
# --------------------------------------------------------------------------


def _pixel(ctx: StepContext) -> Tensor:
    return pixel_mse(ctx.sr(), ctx.batch.x_hr)


def _identity(ctx: StepContext) -> Tensor:
    logits, _ = ctx.reid_on_sr()
    return identity_ce(logits, ctx.batch.pids, ctx.config.label_smooth)


def finetune_reid_terms(ctx: StepContext) -> dict[str, Tensor]:
    """``--finetune-reid``: the re-id model's own ID loss on SR and HR images, else ``{}``.

    One forward of the *detached* SR batch and the HR batch together (so its
    BatchNorm statistics are those of both, and no gradient of these terms
    reaches G, not even through the batch statistics), each term at the weight
    of the re-id model's own training: trained on SR alone it would drift away
    from the HR gallery it must still embed.
    """
    if not ctx.reid_is_trained():
        return {}
    return identity_on_sr_and_hr(ctx, ctx.sr().detach(), ("reid_sr", "reid_hr"))


def identity_on_sr_and_hr(
    ctx: StepContext, x_sr: Tensor, names: tuple[str, str] = ("id_sr", "id_hr")
) -> dict[str, Tensor]:
    """The re-id model's ID loss on ``x_sr`` and the HR batch, through one forward of both (its
    BatchNorm statistics are those of both) and through its own parameters: what a step that
    trains the re-id model adds. ``x_sr`` decides what reaches G (detached: nothing)."""
    logits, _ = ctx["reid"](torch.cat([x_sr, ctx.batch.x_hr.to(x_sr.dtype)]))
    n, smooth = len(x_sr), ctx.config.label_smooth
    return {
        names[0]: identity_ce(logits[:n], ctx.batch.pids, smooth),
        names[1]: identity_ce(logits[n:], ctx.batch.pids, smooth),
    }


def pixel() -> Term:
    """The pixel MSE of the SR batch against its HR images (weight 1: it leads)."""
    return Term("mse", 1.0, _pixel)


def sr_terms(lambda_c: float) -> tuple[TermFn, ...]:
    """``L_sr`` without its GAN part: pixel MSE, ``lambda_c`` * ID on SR, and the re-id
    model's own terms when the step fine-tunes it."""
    return pixel(), Term("id", lambda_c, _identity), finetune_reid_terms


def adversarial(lambda_g: float, disc: str = "D") -> Term:
    """``lambda_g`` * the non-saturating GAN loss of the SR batch under a frozen ``disc``."""
    return Term("gan", lambda_g, lambda ctx: gan_g_loss(ctx.disc_on_sr(disc)[0]))


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


def generator_trainable(config: RunConfig) -> tuple[str, ...]:
    """``("G", "reid")`` when the re-id model is fine-tuned with G, else ``("G",)``."""
    return ("G", "reid") if config.finetune_reid else ("G",)


def generator_step(
    config: RunConfig, *terms: TermFn, trainable: tuple[str, ...] | None = None
) -> Step:
    """G's update on the sum of ``terms`` (evaluated in order: their forwards are shared).

    With ``--finetune-reid`` the step trains the re-id model too, with the
    run's weight decay; only :func:`finetune_reid_terms` reaches it. A method
    that trains more with G (SING: the re-id model, always) names it in ``trainable``.
    """

    def loss(ctx: StepContext) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for term in terms:
            out.update(term(ctx))
        return out

    hooks = [t.diagnose for t in terms if isinstance(t, Term) and t.diagnose is not None]

    def diagnose(ctx: StepContext, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for hook in hooks:
            out.update(hook(ctx, values))
        return out

    trainable = trainable or generator_trainable(config)
    decay = {"reid": config.weight_decay} if "reid" in trainable else {}
    return Step("G", trainable, loss, diagnose=diagnose if hooks else None, weight_decay=decay)


def discriminator_loss(ctx: StepContext, disc: str = "D") -> dict[str, Tensor]:
    """``{"gan": BCE(D(x_hr), 1) + BCE(D(sr.detach()), 0)}``: G receives nothing from it."""
    d = ctx[disc]
    real_logit, _ = d(ctx.batch.x_hr)
    fake_logit, _ = d(ctx.sr().detach())
    return {"gan": gan_d_loss(real_logit, fake_logit)}


def discriminator_step(lr: float, disc: str = "D") -> Step:
    """D's update on real HR -> 1, SR -> 0."""
    return Step(
        disc,
        (disc,),
        lambda ctx: discriminator_loss(ctx, disc),
        lr={disc: lr},
        betas=DISCRIMINATOR_BETAS,
    )


def discriminator_accuracy(ctx: StepContext, disc: str = "D") -> Tensor:
    """Share of held-out real HR judged real and of their SR judged fake (logit sign)."""
    real_logit, _ = observe(ctx[disc], ctx.batch.x_hr)
    fake_logit, _ = observe(ctx[disc], ctx.sr())
    return torch.cat([(real_logit > 0), (fake_logit < 0)]).float().mean()
