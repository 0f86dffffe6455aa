"""``gan``: SRGAN-style adversarial training on top of MSE + ID.

Each iteration: a D step (real HR -> 1, SR -> 0, non-saturating BCE), then a
G step with ``MSE + lambda_g * GAN + lambda_c * ID``. The D step reads the SR
batch detached, so G receives nothing from it; G's forward is shared with the
later G step through ``ctx.sr()``.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from harness import BuildContext, Option, RunConfig, Step, StepContext, hookimpl
from harness.losses import gan_d_loss, sr_terms
from plugins.reg.base import SR_OPTIONS, SRRegulariser

GAN_OPTIONS: dict[str, Option] = {
    **SR_OPTIONS,
    "lambda_g": Option(
        3e-4, "weight of the generator's adversarial loss (SRGAN used 1e-3; 1e-3 costs PSNR below bicubic here)",
        min=0.0,
    ),
    "lr_D": Option(1e-4, "learning rate of the discriminator", min=0.0, exclusive_min=True),
}


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
