"""``perceptual-id``: train G so the re-id model sees the SR image as it sees the HR one.

One G step per iteration: ``MSE(SR, HR) + lambda_f * F_match + lambda_c * ID``,
with ``F_match = mean((f_c(SR) - f_c(HR))^2)`` (the squared L2 distance per
feature dimension, so one ``lambda_f`` suits any feature size) and ID the
cross-entropy of the re-id logits on SR against the identities.

The re-id model is frozen in this regulariser (the step trains ``G`` only,
whatever ``finetune_reid`` says): the re-id features are the perceptual
target, and a target that moves could meet G halfway by collapsing. Both
re-id forwards run on copies of its buffers, so reading it does not move
its BatchNorm statistics either.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from harness import Option, Regulariser, RunConfig, Step, StepContext
from torch import Tensor, nn
from torch.func import functional_call


def frozen_forward(module: nn.Module, x: Tensor) -> Any:
    """The module's forward with its buffers copied: no BatchNorm statistic moves."""
    state = dict(module.named_parameters())
    state.update({name: b.clone() for name, b in module.named_buffers()})
    return functional_call(module, state, (x,))


class PerceptualIdRegulariser(Regulariser):
    name = "perceptual-id"
    options: ClassVar[dict[str, Option]] = {
        "lambda_f": Option(1.0, "weight of the re-id feature matching mean((f_c(SR) - f_c(HR))^2)"),
        "lambda_c": Option(0.1, "weight of the ID (cross-entropy) loss on SR images"),
    }

    def __init__(self, config: RunConfig):
        self.lambda_f = float(config.option("lambda_f", self.options["lambda_f"].default))
        self.lambda_c = float(config.option("lambda_c", self.options["lambda_c"].default))
        self.label_smooth = float(config.label_smooth)

    def generator_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        x_sr, batch = ctx.sr(), ctx.batch
        terms = {"mse": F.mse_loss(x_sr.float(), batch.x_hr.float())}
        if self.lambda_f or self.lambda_c:
            logits, f_sr = frozen_forward(ctx["reid"], x_sr)
            if self.lambda_f:
                with torch.no_grad():
                    _, f_hr = frozen_forward(ctx["reid"], batch.x_hr)
                terms["feat"] = self.lambda_f * F.mse_loss(f_sr.float(), f_hr.float())
            if self.lambda_c:
                ce = F.cross_entropy(logits.float(), batch.pids, label_smoothing=self.label_smooth)
                terms["id"] = self.lambda_c * ce
        return terms

    def schedule(self, config: RunConfig) -> list[Step]:
        return [Step("G", ("G",), self.generator_loss)]
