"""A small re-id CNN: three conv stages, global average pooling, a linear classifier.

It keeps the harness's re-id contract (torchreid's): ``(logits, f_c)`` in
training mode, ``f_c`` in eval mode, on float RGB in [0, 1]; normalising the
input is the model's job, so the ImageNet statistics live here as
non-persistent buffers (they never enter a weights file).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        if num_classes < 1 or width < 1:
            raise ValueError(f"num_classes and width must be >= 1 (got {num_classes}, {width})")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.features = nn.Sequential(
            _stage(3, width), _stage(width, 2 * width), _stage(2 * width, 4 * width)
        )
        self.feature_dim = 4 * width
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        f_c = self.features(x).mean(dim=(2, 3))
        if not self.training:
            return f_c
        return self.classifier(f_c), f_c
