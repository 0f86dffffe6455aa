"""An ESRGAN-style generator (Wang et al., 2018): residual-in-residual dense blocks, no BN.

Why no BatchNorm: ESRGAN found BN layers make artefacts when train and test
statistics differ, which is exactly the situation of an LR query whose
resolution the training batches never had. Residual scaling (0.2) and a
small initialisation keep the deep residual stack stable instead.

Scales, as the harness asks: batches are bucketed by ratio, so for an
integer factor k in {2, 3, 4} (``round(H / k) == h`` on both axes) the body
runs at LR cost and a pixel-shuffle tail upscales natively; for any other
factor the input is resized to ``out_size`` first and the body refines it
there ("resize, then refine"). Either way the network predicts a residual
over bicubic upsampling, and its last conv starts at zero, so an untrained
generator is exactly bicubic. Unclamped in training mode (clamping would cut
gradients), clamped to [0, 1] in eval mode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCALES = (2, 3, 4)
RESIDUAL_SCALE = 0.2


def bicubic(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def integer_factor(in_size: tuple[int, int], out_size: tuple[int, int]) -> int | None:
    """The k in SCALES with ``round(out / k) == in`` on both axes (the MLR protocol's rounding)."""
    for k in SCALES:
        if all(max(1, round(o / k)) == i for i, o in zip(in_size, out_size, strict=True)):
            return k
    return None


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class DenseBlock(nn.Module):
    """Five convs, each reading every earlier feature map; scaled residual over the input."""

    def __init__(self, channels: int, growth: int):
        super().__init__()
        self.convs = nn.ModuleList(_conv(channels + i * growth, growth) for i in range(4))
        self.fuse = _conv(channels + 4 * growth, channels)
        for conv in [*self.convs, self.fuse]:  # ESRGAN's small init: residuals start near zero
            nn.init.kaiming_normal_(conv.weight, a=0.2)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + RESIDUAL_SCALE * self.fuse(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Three dense blocks inside one more scaled residual."""

    def __init__(self, channels: int, growth: int):
        super().__init__()
        self.blocks = nn.Sequential(*[DenseBlock(channels, growth) for _ in range(3)])

    def forward(self, x: Tensor) -> Tensor:
        return x + RESIDUAL_SCALE * self.blocks(x)


def _upsampler(channels: int, factor: int) -> nn.Sequential:
    """Pixel shuffle: one x3 stage, or log2(factor) x2 stages."""
    factors = [3] if factor == 3 else [2] * int(math.log2(factor))
    layers: list[nn.Module] = []
    for f in factors:
        layers += [_conv(channels, channels * f * f), nn.PixelShuffle(f), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class RRDBNet(nn.Module):
    """``forward(x_lr, out_size) = bicubic(x_lr) + residual``, any upscaling factor."""

    def __init__(self, blocks: int = 2, channels: int = 32, growth: int = 16):
        super().__init__()
        if blocks < 1 or channels < 1 or growth < 1:
            raise ValueError(
                f"rrdb_blocks, rrdb_channels and rrdb_growth must be >= 1 "
                f"(got {blocks}, {channels}, {growth})"
            )
        self.head = _conv(3, channels)
        self.body = nn.Sequential(*[RRDB(channels, growth) for _ in range(blocks)])
        self.body_end = _conv(channels, channels)
        self.tails = nn.ModuleDict({str(k): _upsampler(channels, k) for k in SCALES})
        self.refine = nn.Sequential(_conv(channels, channels), nn.LeakyReLU(0.2))
        self.out = _conv(channels, 3)
        nn.init.zeros_(self.out.weight)  # untrained generator == bicubic, exactly
        nn.init.zeros_(self.out.bias)

    def features(self, x: Tensor) -> Tensor:
        feat = self.head(x)
        return feat + self.body_end(self.body(feat))

    def forward(self, x_lr: Tensor, out_size: tuple[int, int]) -> Tensor:
        size = (int(out_size[0]), int(out_size[1]))
        base = bicubic(x_lr, size)
        k = integer_factor((int(x_lr.shape[-2]), int(x_lr.shape[-1])), size)
        if k is None:  # resize, then refine at the output size
            residual = self.out(self.refine(self.features(base)))
        else:
            residual = bicubic(self.out(self.tails[str(k)](self.features(x_lr))), size)
        y = base + residual
        return y if self.training else y.clamp(0.0, 1.0)
