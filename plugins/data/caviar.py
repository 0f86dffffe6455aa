"""CAVIAR4REID (Cheng et al., BMVC 2011): genuinely low-resolution queries."""

from __future__ import annotations

import re
from pathlib import Path

from harness import DatasetError, Record, ReidDataset, RunConfig, hookimpl
from harness.data.layout import (
    SPLIT_OPTION,
    half_split,
    image_files,
    listing,
    parse_names,
    relabel,
    require_root,
)

#: CAVIAR's boxes vary in size; the HR size is Market's 128x64.
HR_SIZE = (128, 64)

CAVIAR_NAME = re.compile(r"^(\d{4})(\d{3})\.\w+$")  # 0001013.jpg


def read_caviar(root: str | Path | None, *, split: int = 0, seed: int = 0) -> ReidDataset:
    """CAVIAR4REID's cross-resolution protocol: genuinely LR camera-2 queries.

    Only ids seen by both cameras are used; half of them (seeded by
    ``(seed, split)``) are test ids: camera-2 (LR) images are the query,
    camera-1 (HR) images the gallery; the other half train.
    """
    dataset = "caviar"
    expected = (
        "expected a folder caviarReID/ of files named like 0001013.jpg "
        "(4-digit person id, 3-digit image 001-010 camera 1, 011-020 camera 2)"
    )
    root_path = require_root(root, dataset, expected)
    base = None
    for rel in ("", "caviarReID", "CAVIAR4REID/caviarReID", "caviar/CAVIAR4REID/caviarReID"):
        folder = root_path / rel if rel else root_path
        if folder.is_dir() and any(
            CAVIAR_NAME.match(p.name) for p in folder.iterdir() if p.is_file()
        ):
            base = folder
            break
    if base is None:
        raise DatasetError(
            f"no CAVIAR4REID images under {root_path}; {expected}; "
            f"found there: {listing(root_path)}"
        )
    by_cam: list[dict[int, list[str]]] = [{}, {}]
    for path, (pid, index) in parse_names(
        image_files(base, dataset, expected), CAVIAR_NAME, base, dataset, expected
    ):
        if not 1 <= index <= 20:
            raise DatasetError(f"{dataset}: image number {index} outside 001-020 in {path}")
        by_cam[0 if index <= 10 else 1].setdefault(pid, []).append(str(path))
    ids, test_ids = half_split(by_cam, dataset, base, seed, split, 0x4341)
    test_set = set(test_ids)
    train_raw = [
        Record(path, pid, cam)
        for pid in ids
        if pid not in test_set
        for cam in (0, 1)
        for path in by_cam[cam][pid]
    ]
    train, _ = relabel(train_raw)
    query = [Record(p, pid, 1) for pid in test_ids for p in by_cam[1][pid]]
    gallery = [Record(p, pid, 0) for pid in test_ids for p in by_cam[0][pid]]
    return ReidDataset(
        name=dataset,
        train=train,
        query=query,
        gallery=gallery,
        default_lr_cameras=(1,),
        single_gallery_shot=True,
        native_lr=True,
        hr_size=HR_SIZE,
        info={
            "source": str(base),
            "split": int(split),
            "split_seed": int(seed),
            "test_ids": test_ids,
            "ids_in_both_cameras": len(ids),
            "ids_in_one_camera_only": len(set(by_cam[0]) ^ set(by_cam[1])),
            "protocol": "ids seen by both cameras; camera 2 (LR) query, camera 1 (HR) gallery",
        },
    )


def _factory(root: str | None, config: RunConfig) -> ReidDataset:
    return read_caviar(root, split=int(config.option("split", 0)), seed=config.protocol.seed)


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "caviar",
        _factory,
        "CAVIAR4REID (caviarReID/PPPPIII.jpg): genuinely LR camera-2 query",
        options={"split": SPLIT_OPTION},
    )
