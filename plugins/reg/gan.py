"""``gan``: SRGAN-style adversarial training on top of MSE + ID.

Each iteration: a D step (real HR -> 1, SR -> 0, non-saturating BCE), then a
G step with ``MSE + lambda_g * GAN + lambda_c * ID``. The D step reads the SR
batch detached, so G receives nothing from it; G's forward is shared with the
later G step through ``ctx.sr()``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from harness import BuildContext, Option, RunConfig, Step, StepContext, hookimpl
from harness.losses import gan_d_loss, observe, sr_terms
from plugins.reg.base import SR_OPTIONS, SRRegulariser

GAN_OPTIONS: dict[str, Option] = {
    **SR_OPTIONS,
    "lambda_g": Option(
        3e-4, "weight of the generator's adversarial loss (SRGAN used 1e-3; 1e-3 costs PSNR below bicubic here)",
        min=0.0,
    ),
    "lr_D": Option(1e-4, "learning rate of the discriminator", min=0.0, exclusive_min=True),
    "critic_iters": Option(
        300, "iterations of the critic warm-up: D (and the association networks) trained with G frozen "
        "before G sees their terms (docs/intact.md: how the number was chosen)",
        presets={"smoke": 2, "cpu": 300, "paper": 1000}, min=0,
    ),
}


def discriminator_accuracy(ctx: StepContext, disc: str = "D") -> Tensor:
    """Share of held-out real HR judged real and of their SR judged fake (logit sign)."""
    real_logit, _ = observe(ctx[disc], ctx.batch.x_hr)
    fake_logit, _ = observe(ctx[disc], ctx.sr())
    return torch.cat([(real_logit > 0), (fake_logit < 0)]).float().mean()


def discriminator_loss(ctx: StepContext, disc: str = "D") -> dict[str, Tensor]:
    """``{"gan": BCE(D(x_hr), 1) + BCE(D(sr.detach()), 0)}``."""
    d = ctx[disc]
    real_logit, _ = d(ctx.batch.x_hr)
    fake_logit, _ = d(ctx.sr().detach())
    return {"gan": gan_d_loss(real_logit, fake_logit)}


class GanRegulariser(SRRegulariser):
    """D step, then G step with the adversarial term added to ``L_sr``."""

    name = "gan"
    options: ClassVar[dict[str, Option]] = GAN_OPTIONS

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        return {"D": ctx.make_discriminator()}

    def generator_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        return sr_terms(ctx, self.opts["lambda_c"], self.opts["lambda_g"], disc="D")

    #: options only the G step reads: a critic warm-up does not depend on them, so rows
    #: of a weight sweep share one (harness.cache)
    generator_only_options: ClassVar[tuple[str, ...]] = ("lambda_c", "lambda_g")

    def critic_warmup_iters(self, config: RunConfig) -> int:
        return int(self.opts["critic_iters"])

    def probe(self, ctx: StepContext) -> dict[str, float]:
        return {"d_accuracy": float(discriminator_accuracy(ctx))}

    def discriminator_step(self) -> Step:
        return Step("D", ("D",), discriminator_loss, lr={"D": self.opts["lr_D"]})

    def schedule(self, config: RunConfig) -> list[Step]:
        return [self.discriminator_step(), self.generator_step(config)]


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "gan",
        GanRegulariser,
        "SRGAN: D step, then G on MSE + lambda_g * GAN + lambda_c * ID",
        options=GanRegulariser.options,
    )
