"""``gan``: SRGAN-style adversarial training on top of MSE + ID.

Each iteration: a D step (real HR -> 1, SR -> 0, non-saturating BCE), then a
G step with ``MSE + lambda_g * GAN + lambda_c * ID``. The D step reads the SR
batch detached, so G receives nothing from it; G's forward is shared with the
later G step through ``ctx.sr()``.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from harness import BuildContext, Option, Regulariser, RunConfig, Step, StepContext, hookimpl
from harness.steps import (
    GAN_OPTIONS,
    adversarial,
    discriminator_accuracy,
    discriminator_step,
    generator_step,
    sr_terms,
)


class GanRegulariser(Regulariser):
    """D step, then G step with the adversarial term added to ``L_sr``."""

    name = "gan"
    options: ClassVar[dict[str, Option]] = GAN_OPTIONS
    generator_only_options: ClassVar[tuple[str, ...]] = ("lambda_c", "lambda_g")

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        return {"D": ctx.make_discriminator()}

    def schedule(self, config: RunConfig) -> list[Step]:
        o = self.opts
        return [
            discriminator_step(o["lr_D"]),
            generator_step(config, *sr_terms(o["lambda_c"]), adversarial(o["lambda_g"])),
        ]

    def critic_warmup_iters(self, config: RunConfig) -> int:
        return int(self.opts["critic_iters"])

    def probe(self, ctx: StepContext) -> dict[str, float]:
        return {"d_accuracy": float(discriminator_accuracy(ctx))}


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "gan",
        GanRegulariser,
        "SRGAN: D step, then G on MSE + lambda_g * GAN + lambda_c * ID",
        options=GanRegulariser.options,
    )
