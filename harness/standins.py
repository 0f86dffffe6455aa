"""Tiny stand-in components and data, so one component can be checked without the others.

A regulariser is checked around a tiny G, re-id model and discriminator; a
dataset reader's output is compared with a tiny in-memory dataset. They follow
the contracts exactly and cost milliseconds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.components import Record, ReidDataset, TrainBatch
from harness.data.mlr import lr_size

TINY_CLASSES = 5
TINY_REID_DIM = 6
#: Images in a tiny batch.
BATCH = 4


def random_images(n: int, size: tuple[int, int], seed: int) -> Tensor:
    """``n`` seeded random RGB images in [0, 1] of ``size`` (H, W)."""
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def make_tiny_dataset(
    height: int = 32,
    width: int = 16,
    train_ids: int = 4,
    test_ids: int = 3,
    cameras: int = 2,
    images_per_camera: int = 2,
    seed: int = 0,
) -> ReidDataset:
    """A small ReidDataset of uint8 arrays: one colour per identity, a tint per camera.

    Queries come from camera 0 (the default LR camera), the gallery from the
    others, and test identities never appear in training, as in real splits.
    """
    if cameras < 2:
        raise ValueError("a re-id dataset needs at least 2 cameras (query and gallery)")
    rng = np.random.default_rng(seed)

    def image(pid: int, camid: int) -> np.ndarray:
        colour = _id_colour(pid, seed)
        tint = np.array([camid * 12, 0, -camid * 12])
        noise = rng.integers(-20, 21, size=(height, width, 3))
        return np.clip(colour + tint + noise, 0, 255).astype(np.uint8)

    def records(pids: range, cams: range) -> list[Record]:
        return [
            Record(image(pid, cam), pid, cam)
            for pid in pids
            for cam in cams
            for _ in range(images_per_camera)
        ]

    test = range(train_ids, train_ids + test_ids)
    return ReidDataset(
        name="tiny",
        train=records(range(train_ids), range(cameras)),
        query=[Record(image(pid, 0), pid, 0) for pid in test],
        gallery=records(test, range(1, cameras)),
        default_lr_cameras=(0,),
        info={"source": "harness.testing.make_tiny_dataset"},
    )


def _id_colour(pid: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, pid]).integers(40, 216, size=3)


class TinyGenerator(nn.Module):
    """Bilinear upsampling, one refining conv and a learned detail image."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.detail = nn.Parameter(torch.zeros(1, 3, *size))

    def forward(self, x_lr: Tensor, out_size: tuple[int, int]) -> Tensor:
        up = F.interpolate(x_lr, size=tuple(out_size), mode="bilinear", align_corners=False)
        return up + self.conv(up) + self.detail


class TinyReid(nn.Module):
    """Conv-BN-ReLU, pool, embed, classify: the re-id contract at its smallest."""

    def __init__(self, dim: int = TINY_REID_DIM, num_classes: int = TINY_CLASSES):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.embed = nn.Linear(8, dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        f_c = self.embed(self.body(x).mean(dim=(2, 3)))
        return (self.classifier(f_c), f_c) if self.training else f_c


class TinyDiscriminator(nn.Module):
    """Conv-BN-LeakyReLU, pool, a dense feature ``f_d`` and a logit."""

    def __init__(self, dim: int = 7):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2)
        )
        self.dense = nn.Sequential(nn.Linear(8, dim), nn.LeakyReLU(0.2))
        self.logit = nn.Linear(dim, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f_d = self.dense(self.body(x).mean(dim=(2, 3)))
        return self.logit(f_d).squeeze(1), f_d


def tiny_batch(size: tuple[int, int], ratio: float = 2.0, seed: int = 8) -> TrainBatch:
    """``BATCH`` random HR images, their bicubic LR versions and distinct identities."""
    x_hr = random_images(BATCH, size, seed)
    x_lr = F.interpolate(
        x_hr, size=lr_size(size, ratio), mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)
    return TrainBatch(x_lr=x_lr, x_hr=x_hr, pids=torch.arange(BATCH) % TINY_CLASSES, ratio=ratio)
