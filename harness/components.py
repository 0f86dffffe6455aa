"""The component types a plugin builds or consumes.

Everything a third-party plugin needs is importable from ``harness`` itself;
these classes are the contract between the core and the plugins. The step
types of a regulariser's schedule are :mod:`harness.steps` and
:mod:`harness.context`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from harness.config import RunConfig
from harness.options import Option, read_options

if TYPE_CHECKING:  # the step types build on these components; only their names are needed here
    from harness.context import StepContext
    from harness.steps import Step


class Record(NamedTuple):
    """One image of a re-id dataset.

    image: a file path (decoded lazily, errors name the file) or an
        ``HxWx3`` uint8 array (in-memory datasets such as the synthetic one).
    """

    image: str | np.ndarray
    pid: int
    camid: int


@dataclass
class ReidDataset:
    """Train / query / gallery lists, plus what the MLR protocol must know.

    default_lr_cameras: cameras whose query images are made LR unless the
        protocol names others.
    single_gallery_shot: evaluate VIPeR/CUHK03/CAVIAR style: one random gallery
        image per identity, CMC averaged over ``protocol.trials`` draws.
    native_lr: query images are genuinely LR (CAVIAR); nothing is downsampled.
    hr_size: the (H, W) of this dataset's HR images, the size SR restores and LR
        queries are made from: the native size where images share one (Market
        128x64, VIPeR 128x48), a fixed standard size where they vary (CUHK03).
        ``None`` falls back to the run's re-id size.
    info: anything worth recording (split ids, source folder, counts).
    """

    name: str
    train: list[Record]
    query: list[Record]
    gallery: list[Record]
    default_lr_cameras: tuple[int, ...] = (0,)
    single_gallery_shot: bool = False
    native_lr: bool = False
    hr_size: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    def summary(self) -> dict[str, Any]:
        def stats(records: list[Record]) -> dict[str, int]:
            return {
                "images": len(records),
                "ids": len({r.pid for r in records}),
                "cameras": len({r.camid for r in records}),
            }

        return {
            "name": self.name,
            "train": stats(self.train),
            "query": stats(self.query),
            "gallery": stats(self.gallery),
            "hr_size": list(self.hr_size) if self.hr_size else None,
            **self.info,
        }


@dataclass
class TrainBatch:
    """One SR-stage batch: every image in it shares one downsampling ratio.

    ``camids``: each image's camera (0-based, as the dataset gives it) for camera-aware
    methods (CamStyle's style domains); ``None`` where a batch has none (the stand-ins).
    """

    x_lr: Tensor
    x_hr: Tensor
    pids: Tensor
    ratio: float
    camids: Tensor | None = None

    @property
    def out_size(self) -> tuple[int, int]:
        return (int(self.x_hr.shape[-2]), int(self.x_hr.shape[-1]))


@dataclass
class BuildContext:
    """Handed to ``Regulariser.build`` so a regulariser can size its modules."""

    config: RunConfig
    reid_dim: int
    make_discriminator: Callable[[], nn.Module]
    image_size: tuple[int, int]  # the HR size: what D and the SR output see

    def feature_dim(self, module: nn.Module) -> int:
        """Dim of ``f_d`` from a dry forward of a discriminator."""
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        was_training = module.training
        module.eval()
        with torch.no_grad():
            _, feat = module(torch.zeros(2, 3, *self.image_size, device=device))
        module.train(was_training)
        return int(feat.shape[-1])


class Regulariser:
    """A regulariser owns its extra modules and declares its schedule.

    Subclasses override ``build`` (create D, phi, sigma, ...: returned by name)
    and ``schedule`` (the ordered steps of one iteration, composed from
    :mod:`harness.steps` and :mod:`harness.critics` or written by hand). The
    generator is ``"G"`` and the re-id model ``"reid"`` in every step's module
    table. ``options`` are declared once here and read once, typed, into
    ``self.opts`` (a subclass with its own ``__init__`` may read them itself).
    """

    name: str = "regulariser"
    options: ClassVar[Mapping[str, Option]] = {}
    #: options only the step that trains G reads: a critic warm-up does not depend on
    #: them, so the rows of a weight sweep share one (harness.cache)
    generator_only_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: RunConfig):
        self.config = config
        self.opts: dict[str, Any] = read_options(config, self.options)

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        return {}

    def schedule(self, config: RunConfig) -> list[Step]:
        raise NotImplementedError

    def critic_warmup_iters(self, config: RunConfig) -> int:
        """Iterations of the critic warm-up: the schedule's steps that do not train G, run
        with G frozen after its pixel warm start, so a critic is informative before its
        terms act on G (0: none, G's terms act from stage 1's first iteration)."""
        return 0

    def probe(self, ctx: StepContext) -> Mapping[str, float]:
        """Diagnostics on held-out real HR images that no step trains on, at log iterations.

        ``ctx.batch`` is the held-out batch, ``ctx.sr()`` its SR images; every module is
        frozen and the call runs under ``no_grad``. Returns named floats (a critic's R²,
        D's accuracy); the trainer logs them and averages them into ``metrics.json``.
        """
        return {}


@dataclass(frozen=True)
class Entry:
    """A registered factory, with provenance for ``harness list``."""

    kind: str
    name: str
    factory: Callable[..., Any]
    summary: str
    plugin: str
    options: Mapping[str, Option] = field(default_factory=dict)
