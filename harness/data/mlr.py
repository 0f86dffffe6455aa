"""The MLR (multiple low resolution) protocol, explicit and seeded.

Published MLR recipes disagree on which camera is made LR, the kernel, and
whether ratios are drawn per identity or per image. Ours, recorded in every
result (``ProtocolConfig`` plus ``PROTOCOL_VERSION``):

* the query is the dataset's query images from the LR camera(s); each is
  downsampled by its own ratio, drawn uniformly from ``ratios`` with a
  generator seeded by ``protocol.seed`` in query order;
* the gallery is the dataset's whole gallery, kept HR; gallery images of a
  query's identity from the query's own camera are removed at evaluation
  (Market-style), so every true match comes from an HR camera;
* training pairs ``(x_l, x_h)`` come from downsampling HR training images;
  each batch shares one ratio (bucketing), drawn from ``ratios``;
* the HR size ``(H, W)`` is the dataset's native size (declared by its
  reader; a fixed standard size where images vary) or the run's
  ``hr_height x hr_width``; it is the SR target, and the re-id model resizes
  whatever it is given to its own input size;
* downsampling resizes an HR image to ``(round(H / r), round(W / r))`` with
  ``torch.nn.functional.interpolate`` using ``kernel`` and ``antialias``
  (deterministic on CPU), so Market-1501 (128x64) at x2/x3/x4 gives the
  paper's 64x32 / 43x21 / 32x16 queries;
* genuinely LR datasets (``native_lr``) are not downsampled: their queries
  keep their own resolution, bucketed to the nearest configured ratio;
* (``mlr-2.1``) a seeded share ``val_ids`` of the training identities is held
  out of training as the validation split, built as the test split is: for
  each held-out identity, one image per LR camera is an LR query (its ratio
  drawn from its own seeded stream) and the identity's other images are its
  gallery, evaluated with the dataset's own style (Market-style or
  single-gallery-shot). Only identities seen by an LR camera and by another
  camera can be held out, so every validation query has a true match;
* (``mlr-2.2``) on single-gallery-shot datasets the validation gallery holds only
  the held-out people's images from cameras that are not LR cameras, as their test
  split does (query on one view, gallery on the other), so every gallery image a
  trial draws can match its query; ``mlr-2.1`` run folders keep their old split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.components import Record, ReidDataset
from harness.config import ProtocolConfig
from harness.errors import DatasetError


def lr_size(hr_size: tuple[int, int], ratio: float) -> tuple[int, int]:
    """The LR size of an HR image of ``hr_size`` (H, W) downsampled by ``ratio``."""
    h, w = hr_size
    return (max(1, round(h / ratio)), max(1, round(w / ratio)))


def resize(
    x: Tensor, size: tuple[int, int], kernel: str = "bicubic", antialias: bool = True
) -> Tensor:
    """Resize a float batch; antialiasing only applies where torch supports it."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    kwargs: dict = {}
    if kernel in ("bicubic", "bilinear"):
        kwargs = {"align_corners": False, "antialias": antialias}
    return F.interpolate(x, size=size, mode=kernel, **kwargs)


def downsample(x_hr: Tensor, ratio: float, protocol: ProtocolConfig) -> Tensor:
    """Make LR images the way the protocol says (float in, float in [0, 1] out)."""
    size = lr_size((int(x_hr.shape[-2]), int(x_hr.shape[-1])), ratio)
    return resize(x_hr, size, protocol.kernel, protocol.antialias).clamp_(0.0, 1.0)


def upsample_bicubic(x_lr: Tensor, size: tuple[int, int]) -> Tensor:
    """The no-learning baseline: bicubic upsampling back to the HR size."""
    return F.interpolate(x_lr, size=size, mode="bicubic", align_corners=False).clamp_(0.0, 1.0)


@dataclass
class MLRSplit:
    """What training and evaluation consume, with the protocol resolved."""

    train: list[Record]
    query: list[Record]
    query_ratios: list[float]
    gallery: list[Record]
    lr_cameras: tuple[int, ...]
    single_gallery_shot: bool
    native_lr: bool
    info: dict = field(default_factory=dict)
    val_query: list[Record] = field(default_factory=list)
    val_query_ratios: list[float] = field(default_factory=list)
    val_gallery: list[Record] = field(default_factory=list)

    def describe(self) -> dict:
        ratios, counts = np.unique(np.asarray(self.query_ratios, dtype=float), return_counts=True)
        return {
            "lr_cameras": list(self.lr_cameras),
            "num_train": len(self.train),
            "num_train_ids": len({r.pid for r in self.train}),
            "num_query": len(self.query),
            "num_gallery": len(self.gallery),
            "query_ratio_counts": {
                _ratio_key(float(r)): int(c) for r, c in zip(ratios, counts, strict=True)
            },
            "single_gallery_shot": self.single_gallery_shot,
            "native_lr": self.native_lr,
            "num_val_ids": len({r.pid for r in self.val_query}),
            "num_val_query": len(self.val_query),
            "num_val_gallery": len(self.val_gallery),
        }

    def listing(self, root: str | None = None, hr_size: tuple[int, int] | None = None) -> dict:
        """Every image of the split by file (relative to ``root``), with its id, camera and,
        for queries, its LR ratio and LR size (H, W) made from ``hr_size``: the split file a
        run folder keeps, so a number can be
        traced to the exact identities and images behind it (nothing is written into the
        dataset folder). In-memory images (the synthetic set) are named by their index."""

        def name(record: Record, i: int) -> str:
            if not isinstance(record.image, str):
                return f"#{i}"
            if root:
                try:
                    return os.path.relpath(record.image, root)
                except ValueError:  # another drive on Windows
                    pass
            return record.image

        def rows(records: list[Record]) -> list[list]:
            return [[name(r, i), int(r.pid), int(r.camid)] for i, r in enumerate(records)]

        def query_row(row: list, ratio: float) -> list:
            lr = list(lr_size(hr_size, ratio)) if hr_size else None
            return row + [float(ratio), lr]

        return {
            "columns": ["image", "pid", "camid"],
            "query_columns": ["image", "pid", "camid", "ratio", "lr_size"],
            "hr_size": list(hr_size) if hr_size else None,
            "train_ids": sorted({int(r.pid) for r in self.train}),
            "test_ids": sorted(
                {int(r.pid) for r in self.query} | {int(r.pid) for r in self.gallery}
            ),
            "train": rows(self.train),
            "query": [
                query_row(row, ratio)
                for row, ratio in zip(rows(self.query), self.query_ratios, strict=True)
            ],
            "gallery": rows(self.gallery),
            "val_ids": sorted({int(r.pid) for r in self.val_query}),
            "val_query": [
                query_row(row, ratio)
                for row, ratio in zip(rows(self.val_query), self.val_query_ratios, strict=True)
            ],
            "val_gallery": rows(self.val_gallery),
        }


def _ratio_key(ratio: float) -> str:
    return str(int(ratio)) if float(ratio).is_integer() else f"{ratio:g}"


def ratio_key(ratio: float) -> str:
    """The name a ratio has in result files ("2", "2.5")."""
    return _ratio_key(ratio)


def draw_query_ratios(n: int, protocol: ProtocolConfig, stream: int = 0x4D4C52) -> list[float]:
    """One ratio per query image, reproducible from ``protocol.seed`` alone (``stream``
    keeps the validation queries' draw apart from the test queries')."""
    rng = np.random.default_rng([protocol.seed, stream])  # "MLR"
    picks = rng.integers(0, len(protocol.ratios), size=n)
    return [float(protocol.ratios[i]) for i in picks]


#: the seed streams of the validation split ("VAL", "VALR")
_VAL_IDS_STREAM = 0x56414C
_VAL_RATIO_STREAM = 0x56414C52
#: protocol versions whose single-gallery-shot validation gallery also held the held-out
#: people's other LR-camera images (``mlr-2.2`` dropped them); a run folder recording one of
#: these rebuilds exactly its old split (before ``mlr-2.1`` nobody was held out at all)
_VAL_GALLERY_WITH_LR_CAMERAS = frozenset({"mlr-1.0", "mlr-2.0", "mlr-2.1"})


@dataclass(frozen=True)
class ValidationSplit:
    """The training records left for training, and the held-out validation split."""

    train: list[Record]
    query: list[Record]
    query_ratios: list[float]
    gallery: list[Record]


def hold_out_validation(
    train: Sequence[Record],
    protocol: ProtocolConfig,
    lr_cameras: Sequence[int],
    single_gallery_shot: bool = False,
) -> ValidationSplit:
    """Hold ``protocol.val_ids`` of the training identities out of training.

    Why a split of the training identities and not of the test set: anything chosen by
    looking at results (weights, schedules, stopping points, a critic's readiness) must be
    chosen on people the test never sees, or the test number is no longer a test. The
    held-out identities are drawn with a stream seeded by ``protocol.seed``, so the same
    protocol gives the same split on every machine; the query image of each (identity, LR
    camera) is drawn from the same stream. The count is ``round(val_ids * identities)``,
    capped by the identities that can have a true match (seen by an LR camera and another).

    ``single_gallery_shot``: the dataset is evaluated by drawing one gallery image per person
    (:func:`harness.metrics.single_gallery_shot_cmc`), where a drawn image from the query's own
    camera leaves the query without a match in that draw. So (``mlr-2.2``) the gallery is the
    held-out people's images from the other, non-LR cameras only, like the test split of those
    datasets; their remaining LR-camera images are neither trained on nor evaluated. The
    held-out people, their queries and ratios are the same as ``mlr-2.1``'s, which (and a
    ``protocol.version`` recording it) kept every other image in the gallery. Market-style
    datasets keep every other image: same-camera matches are removed per query there.
    """
    records = list(train)
    if protocol.val_ids <= 0 or not records:
        return ValidationSplit(records, [], [], [])
    lr = set(int(c) for c in lr_cameras)
    cameras: dict[int, set[int]] = {}
    for r in records:
        cameras.setdefault(int(r.pid), set()).add(int(r.camid))
    eligible = sorted(pid for pid, cams in cameras.items() if cams & lr and cams - lr)
    wanted = int(round(protocol.val_ids * len(cameras)))
    count = min(wanted, len(eligible))
    if count == 0:
        return ValidationSplit(records, [], [], [])
    if len(cameras) - count < 2:
        raise DatasetError(
            f"--val-ids {protocol.val_ids:g} would leave {len(cameras) - count} training "
            f"identities of {len(cameras)}; lower it (0 turns the validation split off)"
        )
    rng = np.random.default_rng([protocol.seed, _VAL_IDS_STREAM])
    held = {eligible[i] for i in rng.choice(len(eligible), size=count, replace=False)}
    by_slot: dict[tuple[int, int], list[int]] = {}
    for i, r in enumerate(records):
        if int(r.pid) in held and int(r.camid) in lr:
            by_slot.setdefault((int(r.pid), int(r.camid)), []).append(i)
    query_index = {slots[int(rng.integers(len(slots)))] for _, slots in sorted(by_slot.items())}
    query = [records[i] for i in sorted(query_index)]
    gallery = [r for i, r in enumerate(records) if int(r.pid) in held and i not in query_index]
    if single_gallery_shot and protocol.version not in _VAL_GALLERY_WITH_LR_CAMERAS:
        gallery = [r for r in gallery if int(r.camid) not in lr]
    kept = [r for r in records if int(r.pid) not in held]
    ratios = draw_query_ratios(len(query), protocol, stream=_VAL_RATIO_STREAM)
    return ValidationSplit(kept, query, ratios, gallery)


def build_mlr(
    dataset: ReidDataset,
    protocol: ProtocolConfig,
    native_query_heights: Sequence[int] | None = None,
    hr_height: int | None = None,
) -> MLRSplit:
    """Apply the protocol to a dataset: pick LR queries and give each a ratio."""
    lr_cameras = (
        protocol.lr_cameras if protocol.lr_cameras is not None else dataset.default_lr_cameras
    )
    query_cams = sorted({r.camid for r in dataset.query})
    query = [r for r in dataset.query if r.camid in set(lr_cameras)]
    if not query:
        raise DatasetError(
            f"no query image of {dataset.name!r} comes from the LR camera(s) {list(lr_cameras)}; "
            f"query cameras are {query_cams} (set --lr-cameras)"
        )
    if not dataset.gallery:
        raise DatasetError(f"dataset {dataset.name!r} has an empty gallery")
    if dataset.native_lr and native_query_heights is not None and hr_height:
        ratios = [
            _nearest(hr_height / max(1, h), protocol.ratios)
            for h, r in zip(native_query_heights, dataset.query, strict=True)
            if r.camid in set(lr_cameras)
        ]
    else:
        ratios = draw_query_ratios(len(query), protocol)
    gallery_pids = {r.pid for r in dataset.gallery}
    unmatched = sorted({r.pid for r in query} - gallery_pids)
    val = hold_out_validation(dataset.train, protocol, lr_cameras, dataset.single_gallery_shot)
    return MLRSplit(
        train=val.train,
        query=query,
        query_ratios=ratios,
        gallery=list(dataset.gallery),
        lr_cameras=tuple(lr_cameras),
        single_gallery_shot=dataset.single_gallery_shot,
        native_lr=dataset.native_lr,
        info={"query_ids_without_gallery_match": len(unmatched)},
        val_query=val.query,
        val_query_ratios=val.query_ratios,
        val_gallery=val.gallery,
    )


def _nearest(value: float, choices: Sequence[float]) -> float:
    return float(min(choices, key=lambda c: abs(c - value)))


def ratio_buckets(ratios: Sequence[float]) -> dict[float, list[int]]:
    """Indices grouped by ratio, so each batch has one LR size."""
    buckets: dict[float, list[int]] = {}
    for i, r in enumerate(ratios):
        buckets.setdefault(float(r), []).append(i)
    return dict(sorted(buckets.items()))


class TrainRatioSampler:
    """Draws one ratio per training batch from a seeded torch generator."""

    def __init__(self, ratios: Sequence[float], generator: torch.Generator):
        self.ratios = [float(r) for r in ratios]
        self.generator = generator

    def __call__(self) -> float:
        i = int(torch.randint(len(self.ratios), (1,), generator=self.generator))
        return self.ratios[i]
