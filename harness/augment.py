"""Batch augmentations for re-id training, on tensors (CPU or GPU).

All randomness comes from the trainer's generator so a resumed run draws the
same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.data.mlr import lr_size, resize, upsample_bicubic


def _rand(n: int, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator)


def random_flip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    flip = (_rand(x.shape[0], generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: Tensor, generator: torch.Generator, pad: int) -> Tensor:
    """Pad by reflection then crop back: small translations (torchreid's random_crop)."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def random_erasing(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Zhong et al.'s random erasing, with noise-filled rectangles."""
    if p <= 0:
        return x
    b, c, h, w = x.shape
    out = x.clone()
    apply = (_rand(b, generator) < p).tolist()
    areas = (0.02 + (0.4 - 0.02) * _rand(b, generator)) * h * w
    aspects = torch.exp(torch.log(torch.tensor(0.3)) * (1 - 2 * _rand(b, generator)))
    fy = _rand(b, generator)
    fx = _rand(b, generator)
    fill = torch.rand(b, c, 1, 1, generator=generator).to(x.device, x.dtype)
    for i in range(b):
        if not apply[i]:
            continue
        eh = int(min(h, max(1, round((areas[i] * aspects[i]).sqrt().item()))))
        ew = int(min(w, max(1, round((areas[i] / aspects[i]).sqrt().item()))))
        y0 = int(fy[i] * (h - eh + 1))
        x0 = int(fx[i] * (w - ew + 1))
        out[i, :, y0 : y0 + eh, x0 : x0 + ew] = fill[i]
    return out


def _luma(x: Tensor) -> Tensor:
    """ITU-R 601 grey level (torchvision's rgb_to_grayscale); single-channel input is its own."""
    if x.shape[1] != 3:
        return x
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def color_jitter(x: Tensor, generator: torch.Generator, p: float, strength: float = 0.3) -> Tensor:
    """Per-image brightness, contrast and saturation jitter (torchvision's ColorJitter maths).

    Each chosen image gets three factors drawn from [1 - strength, 1 + strength]; drawn
    from the trainer's generator (not torch's global RNG) so resumed runs repeat them.
    """
    if p <= 0:
        return x
    b = x.shape[0]
    apply = (_rand(b, generator) < p).to(x.device)
    factors = (1 + strength * (2 * torch.rand(3, b, generator=generator) - 1)).to(x.device, x.dtype)
    view = (b, 1, 1, 1)
    out = x * factors[0].view(view)  # brightness
    mean = _luma(out).mean((-3, -2, -1), keepdim=True)
    out = (out - mean) * factors[1].view(view) + mean  # contrast
    gray = _luma(out)
    out = (out - gray) * factors[2].view(view) + gray  # saturation
    return torch.where(apply[:, None, None, None], out.clamp(0.0, 1.0), x)


def resolution_augment(
    x: Tensor, generator: torch.Generator, p: float, ratios: tuple[float, ...]
) -> Tensor:
    """Randomly down- and up-sample images so re-id sees LR-looking inputs."""
    if p <= 0:
        return x
    b, _, h, w = x.shape
    apply = (_rand(b, generator) < p).tolist()
    picks = torch.randint(0, len(ratios), (b,), generator=generator).tolist()
    out = x.clone()
    for i in range(b):
        if apply[i]:
            small = resize(x[i : i + 1], lr_size((h, w), ratios[picks[i]]))
            out[i : i + 1] = upsample_bicubic(small, (h, w))
    return out
