"""Bicubic upsampling: the no-learning baseline every SR model must beat.

Output convention shared with the SRGAN generator: unclamped in training mode
(bicubic overshoots a little at edges, and clamping would stop gradients
there), clamped to [0, 1] in eval mode so evaluation sees valid images.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from harness import RunConfig, hookimpl


def bicubic_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.interpolate`` bicubic with ``align_corners=False``; antialias when shrinking."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink)


class Bicubic(nn.Module):
    """Upsample to ``out_size``; has no parameters, so no step ever trains it."""

    def forward(self, x_lr: Tensor, out_size: tuple[int, int]) -> Tensor:
        y = bicubic_resize(x_lr, out_size)
        return y if self.training else y.clamp(0.0, 1.0)


def build_bicubic(config: RunConfig) -> nn.Module:
    return Bicubic()


@hookimpl
def harness_register_sr(registry) -> None:
    registry.add("bicubic", build_bicubic, "bicubic upsampling, no learning")
