"""SRResNet-style generator (the SRGAN generator of Ledig et al.), residual on bicubic.

Why a residual on bicubic: ``output = bicubic(x_lr) + net(x_lr)`` with the
net's last conv initialised to zero makes an untrained generator *exactly*
bicubic, so training starts from bicubic quality and only has to learn the
missing detail; it converges in the few hundred iterations a CPU run affords.

Scales: batches are bucketed by downsampling ratio, so one module serves
ratios 2, 3 and 4 with a shared head and body and one pixel-shuffle tail per
integer factor (x2: one shuffle, x3: one x3 shuffle, x4: two x2 shuffles).
For an input of size ``(h, w)`` and an ``out_size`` of ``(H, W)``:

* integer factor k in {2, 3, 4} (``round(H / k) == h`` and ``round(W / k) == w``,
  the inverse of the MLR protocol's ``lr_size``): the k tail predicts the
  residual at ``(k h, k w)``; if that is not exactly ``(H, W)`` (e.g. 64 / 3)
  the residual is bicubic-resized to ``(H, W)``.
* any other factor s (2.5, 1.5, 8, anisotropic): the tail for ``ceil(s)``
  clamped to [2, 4] predicts the residual, which is bicubic-resized to
  ``(H, W)`` and added to the bicubic upsampling (the "resize then refine"
  rule with the refinement computed at LR cost).

No BatchNorm (as EDSR found, and for a reason of our own): every batch holds
one downsampling ratio, so BatchNorm's running statistics would mix the
ratios' feature statistics and eval-time outputs would be normalised with the
wrong ones; BatchNorm also costs PSNR in SR generally (Lim et al., 2017).

Output convention (same as ``bicubic``): unclamped in training mode so that
no gradient is cut, clamped to [0, 1] in eval mode.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from harness import Option, RunConfig, hookimpl, read_options

from .bicubic import bicubic_resize

SCALES = (2, 3, 4)


class ResidualBlock(nn.Module):
    """conv-PReLU-conv plus identity (EDSR's block: no BatchNorm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _shuffle_stage(channels: int, factor: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels * factor * factor, 3, padding=1),
        nn.PixelShuffle(factor),
        nn.PReLU(channels),
    )


def _tail(channels: int, scale: int) -> nn.Sequential:
    if scale == 3:
        return _shuffle_stage(channels, 3)
    stages = int(math.log2(scale))
    if 2**stages != scale:
        raise ValueError(f"no pixel-shuffle tail for scale {scale}")
    return nn.Sequential(*[_shuffle_stage(channels, 2) for _ in range(stages)])


def integer_scale(in_size: tuple[int, int], out_size: tuple[int, int]) -> int | None:
    """The factor k in SCALES with ``round(out / k) == in`` on both axes, if any."""
    for k in SCALES:
        if all(max(1, round(o / k)) == i for i, o in zip(in_size, out_size, strict=True)):
            return k
    return None


def tail_scale(in_size: tuple[int, int], out_size: tuple[int, int]) -> int:
    """Which tail serves a resize from ``in_size`` to ``out_size``."""
    k = integer_scale(in_size, out_size)
    if k is not None:
        return k
    s = max(o / i for i, o in zip(in_size, out_size, strict=True))
    return min(max(math.ceil(s - 1e-6), SCALES[0]), SCALES[-1])


class SRResNet(nn.Module):
    """``forward(x_lr, out_size) = bicubic(x_lr, out_size) + residual(x_lr)``."""

    def __init__(self, blocks: int = 8, channels: int = 64):
        super().__init__()
        if blocks < 0 or channels < 1:
            raise ValueError(
                f"sr_blocks must be >= 0 and sr_channels >= 1 (got {blocks}, {channels})"
            )
        self.head = nn.Sequential(nn.Conv2d(3, channels, 9, padding=4), nn.PReLU(channels))
        self.body = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.body_end = nn.Conv2d(channels, channels, 3, padding=1)
        self.tails = nn.ModuleDict({str(k): _tail(channels, k) for k in SCALES})
        self.out = nn.Conv2d(channels, 3, 9, padding=4)
        nn.init.zeros_(self.out.weight)  # untrained generator == bicubic, exactly
        nn.init.zeros_(self.out.bias)

    def forward(self, x_lr: Tensor, out_size: tuple[int, int]) -> Tensor:
        out_size = (int(out_size[0]), int(out_size[1]))
        in_size = (int(x_lr.shape[-2]), int(x_lr.shape[-1]))
        feat = self.head(x_lr)
        feat = feat + self.body_end(self.body(feat))
        residual = self.out(self.tails[str(tail_scale(in_size, out_size))](feat))
        y = bicubic_resize(x_lr, out_size) + bicubic_resize(residual, out_size)
        return y if self.training else y.clamp(0.0, 1.0)


SRGAN_OPTIONS = {
    "sr_blocks": Option(
        8,
        "residual blocks in the generator body",
        presets={"smoke": 2, "cpu": 6, "paper": 16},
        min=1,
    ),
    "sr_channels": Option(
        64,
        "feature channels of the generator",
        presets={"smoke": 16, "cpu": 32, "paper": 64},
        min=1,
    ),
}


def build_srgan(config: RunConfig) -> nn.Module:
    opts = read_options(config, SRGAN_OPTIONS)
    return SRResNet(blocks=opts["sr_blocks"], channels=opts["sr_channels"])


@hookimpl
def harness_register_sr(registry) -> None:
    registry.add(
        "srgan",
        build_srgan,
        "SRResNet generator (SRGAN), residual on bicubic; pixel shuffle x2/x3/x4, any factor",
        options=SRGAN_OPTIONS,
    )
