"""From a dataset name to tensors in memory, with the MLR protocol applied.

Images are decoded once (in DataLoader workers) into one uint8 tensor per
split at the HR size (the dataset's native size, or the run's ``hr_height x
hr_width``); training and evaluation then index tensors, so data loading never
limits throughput, and the run is reproducible bit-for-bit. LR images are made
from these HR tensors, never from images already resized for the re-id model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from harness.components import Record
from harness.config import RunConfig
from harness.data.loading import load_images
from harness.data.mlr import MLRSplit, build_mlr
from harness.errors import DatasetError
from harness.registry import Registry


@dataclass
class EvalSet:
    """LR queries (as their HR originals) and an HR gallery: what one evaluation ranks.

    The test split and the validation split (``mlr-2.1``) are both one of these, so they are
    evaluated by the same code and their metrics blocks have the same shape.
    """

    query_images: Tensor  # uint8, HR originals of the LR queries
    query_pids: Tensor
    query_camids: Tensor
    query_ratios: Tensor  # float
    gallery_images: Tensor
    gallery_pids: Tensor
    gallery_camids: Tensor
    single_gallery_shot: bool
    native_lr: bool = False


@dataclass
class PreparedData:
    split: MLRSplit
    dataset_summary: dict
    train_images: Tensor  # uint8 N x 3 x H x W
    train_pids: Tensor  # long, 0..num_classes-1
    query_images: Tensor  # uint8, HR originals of the LR queries
    query_pids: Tensor
    query_camids: Tensor
    query_ratios: Tensor  # float
    gallery_images: Tensor
    gallery_pids: Tensor
    gallery_camids: Tensor
    bad_images: list[str]
    hr_size: tuple[int, int] = (64, 32)
    train_camids: Tensor | None = None  # long, the dataset's camera of each training image
    #: the validation split; None when ``protocol.val_ids`` is 0 or leaves no identity out
    val: EvalSet | None = None

    @property
    def num_classes(self) -> int:
        return int(self.train_pids.max()) + 1 if len(self.train_pids) else 0

    def eval_set(self, split: str = "test") -> EvalSet:
        """The test split's queries and gallery, or the validation split's (``"val"``)."""
        if split == "val":
            if self.val is None:
                raise ValueError("this run holds no validation split (protocol.val_ids)")
            return self.val
        if split != "test":
            raise ValueError(f"unknown split {split!r}; expected 'test' or 'val'")
        return EvalSet(
            query_images=self.query_images,
            query_pids=self.query_pids,
            query_camids=self.query_camids,
            query_ratios=self.query_ratios,
            gallery_images=self.gallery_images,
            gallery_pids=self.gallery_pids,
            gallery_camids=self.gallery_camids,
            single_gallery_shot=self.split.single_gallery_shot,
            native_lr=self.split.native_lr,
        )


def _labels(records: list[Record], keep: list[int]) -> tuple[Tensor, Tensor]:
    pids = torch.tensor([records[i].pid for i in keep], dtype=torch.long)
    cams = torch.tensor([records[i].camid for i in keep], dtype=torch.long)
    return pids, cams


def split_ratios(config: RunConfig) -> tuple[float, ...]:
    return tuple(float(r) for r in config.protocol.ratios)


def resolve_hr_size(config: RunConfig, declared: tuple[int, int] | None) -> tuple[int, int]:
    """The run's HR size if given, else the dataset's declared one, else the re-id size."""
    if config.hr_height is not None and config.hr_width is not None:
        return (int(config.hr_height), int(config.hr_width))
    if declared:
        return (int(declared[0]), int(declared[1]))
    return config.reid_size


def prepare_data(config: RunConfig, registry: Registry) -> PreparedData:
    entry = registry.lookup("dataset", config.data)
    dataset = entry.factory(config.data_root, config)
    split = build_mlr(dataset, config.protocol)
    size = resolve_hr_size(config, dataset.hr_size)
    bad: list[str] = []

    def load(records: list[Record]):
        loaded = load_images(records, size, workers=config.workers, skip_bad=config.skip_bad_images)
        bad.extend(loaded.bad)
        return loaded

    train = load(split.train)
    query = load(split.query)
    gallery = load(split.gallery)
    train_pids, train_camids = _labels(split.train, train.keep)
    # Re-id training labels must be contiguous even if bad images were skipped.
    uniq, train_pids = torch.unique(train_pids, return_inverse=True)
    q_pids, q_cams = _labels(split.query, query.keep)
    g_pids, g_cams = _labels(split.gallery, gallery.keep)
    if split.native_lr:
        # Genuinely LR queries: each keeps its own resolution, bucketed to the
        # nearest configured ratio (the images were loaded at HR size, so the
        # evaluator's downsampling brings them back to about their native size).
        heights = [int(query.sizes[j][0]) for j in range(len(query.keep))]
        ratios = [
            min(split_ratios(config), key=lambda r: abs(r - size[0] / max(1, h))) for h in heights
        ]
        split.query_ratios = [0.0] * len(split.query)
        for j, i in enumerate(query.keep):
            split.query_ratios[i] = ratios[j]
    # Skipped images leave the split itself, so split.json and metrics["split"] list exactly
    # the images that were trained on and evaluated.
    split.query_ratios = [split.query_ratios[i] for i in query.keep]
    split.train = [split.train[i] for i in train.keep]
    split.query = [split.query[i] for i in query.keep]
    split.gallery = [split.gallery[i] for i in gallery.keep]
    for part, kept in (("query", split.query), ("gallery", split.gallery)):
        if not kept and bad:  # found now, not after training: nothing could be evaluated
            raise DatasetError(
                f"{config.data}: every {part} image was unreadable and skipped "
                f"(--skip-bad-images; {len(bad)} skipped in all, e.g. {bad[0]}), so nothing "
                "could be evaluated: repair or restore the files"
            )
    q_ratios = torch.tensor(split.query_ratios, dtype=torch.float32)
    val = _load_val(split, load) if split.val_query else None
    return PreparedData(
        split=split,
        dataset_summary=dataset.summary(),
        train_images=train.images,
        train_pids=train_pids,
        query_images=query.images,
        query_pids=q_pids,
        query_camids=q_cams,
        query_ratios=q_ratios,
        gallery_images=gallery.images,
        gallery_pids=g_pids,
        gallery_camids=g_cams,
        bad_images=bad,
        hr_size=size,
        train_camids=train_camids,
        val=val,
    )


def _load_val(split: MLRSplit, load) -> EvalSet | None:
    """Decode the validation split (skipped images leave it, as they leave the others)."""
    query = load(split.val_query)
    gallery = load(split.val_gallery)
    split.val_query_ratios = [split.val_query_ratios[i] for i in query.keep]
    split.val_query = [split.val_query[i] for i in query.keep]
    split.val_gallery = [split.val_gallery[i] for i in gallery.keep]
    if not split.val_query or not split.val_gallery:
        split.val_query, split.val_query_ratios, split.val_gallery = [], [], []
        return None
    q_pids, q_cams = _labels(split.val_query, list(range(len(split.val_query))))
    g_pids, g_cams = _labels(split.val_gallery, list(range(len(split.val_gallery))))
    return EvalSet(
        query_images=query.images,
        query_pids=q_pids,
        query_camids=q_cams,
        query_ratios=torch.tensor(split.val_query_ratios, dtype=torch.float32),
        gallery_images=gallery.images,
        gallery_pids=g_pids,
        gallery_camids=g_cams,
        single_gallery_shot=split.single_gallery_shot,
    )
