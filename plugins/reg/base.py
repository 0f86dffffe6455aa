"""The base every built-in regulariser extends, and a third-party one may too.

A regulariser is plain data plus loss functions (``harness.Regulariser``): it
builds its modules and declares its steps. :class:`SRRegulariser` adds what
every SR-stage regulariser here shares: typed options read once
(:func:`harness.read_options`), the G step's ``L_sr`` (:func:`harness.losses.sr_terms`)
and which modules that step trains (G, and the re-id model only with
``--finetune-reid``). A third-party regulariser imports it exactly as the
built-ins do: ``from plugins.reg.base import SRRegulariser``; the loss terms
and side-effect-free forwards are :mod:`harness.losses`.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from harness import Option, Regulariser, RunConfig, Step, StepContext, read_options
from harness.losses import sr_terms

SR_OPTIONS: dict[str, Option] = {
    "lambda_c": Option(
        3e-4,
        "weight of the ID (cross-entropy) loss on SR images in the G step (small: the per-pixel "
        "MSE of about 2e-3 must lead; see harness.losses)",
        min=0.0,
    ),
}


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
