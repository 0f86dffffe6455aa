"""``none``: the SR generator trained with pixel MSE plus the re-id ID loss, nothing else."""

from __future__ import annotations

from typing import ClassVar

from harness import Option, Regulariser, RunConfig, Step, hookimpl
from harness.steps import SR_OPTIONS, generator_step, sr_terms


class PixelIdRegulariser(Regulariser):
    """One G step on ``MSE + lambda_c * ID`` (the seed's MSE+ID row)."""

    name = "none"
    options: ClassVar[dict[str, Option]] = SR_OPTIONS
    generator_only_options: ClassVar[tuple[str, ...]] = ("lambda_c",)

    def schedule(self, config: RunConfig) -> list[Step]:
        return [generator_step(config, *sr_terms(self.opts["lambda_c"]))]


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "none",
        PixelIdRegulariser,
        "pixel MSE + lambda_c * ID loss on SR images; no discriminator",
        options=PixelIdRegulariser.options,
    )
