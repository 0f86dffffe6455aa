"""``none``: the SR generator trained with pixel MSE plus the re-id ID loss, nothing else.

Also home of :class:`SRRegulariser`, the base the other built-in regularisers
extend: it reads declared options (falling back to their defaults, so a
RunConfig built by hand works too) and knows which modules the G step trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from harness import Option, Regulariser, RunConfig, Step, StepContext, hookimpl
from harness.losses import sr_terms

SR_OPTIONS: dict[str, Option] = {
    "lambda_c": Option(
        3e-4,
        "weight of the ID (cross-entropy) loss on SR images in the G step (small: the per-pixel "
        "MSE of about 2e-3 must lead; see harness.losses)",
    ),
}


def read_options(config: RunConfig, declared: Mapping[str, Option]) -> dict[str, Any]:
    """Declared options from the config, defaults where absent, coerced to the default's type."""
    out: dict[str, Any] = {}
    for key, option in declared.items():
        value = config.option(key, option.default)
        if isinstance(option.default, (int, float)) and not isinstance(option.default, bool):
            value = type(option.default)(value)
        out[key] = value
    return out


def generator_trainable(config: RunConfig) -> tuple[str, ...]:
    """``("G", "reid")`` when the re-id model is fine-tuned with G, else ``("G",)``."""
    return ("G", "reid") if config.finetune_reid else ("G",)


class SRRegulariser(Regulariser):
    """MSE + lambda_c * ID in one G step; subclasses add modules, steps and terms."""

    name = "none"
    options: ClassVar[dict[str, Option]] = SR_OPTIONS

    def __init__(self, config: RunConfig):
        self.config = config
        self.opts = read_options(config, self.options)

    def generator_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        return sr_terms(ctx, self.opts["lambda_c"], 0.0, disc=None)

    def generator_step(self, config: RunConfig) -> Step:
        return Step("G", generator_trainable(config), self.generator_loss)

    def schedule(self, config: RunConfig) -> list[Step]:
        return [self.generator_step(config)]


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "none",
        SRRegulariser,
        "pixel MSE + lambda_c * ID loss on SR images; no discriminator",
        options=SRRegulariser.options,
    )
