"""VIPeR (Gray et al., PETS 2007): two cameras, one image per person each."""

from __future__ import annotations

import re
from pathlib import Path

from harness import Record, ReidDataset, RunConfig, hookimpl
from harness.data.layout import (
    SPLIT_OPTION,
    find_layout,
    half_split,
    image_files,
    parse_names,
    relabel,
    require_root,
)

#: Every VIPeR image is 128x48 (height x width).
HR_SIZE = (128, 48)

VIPER_NAME = re.compile(r"^(\d+)_(\d+)\.\w+$")  # 000_45.bmp


def read_viper(root: str | Path | None, *, split: int = 0, seed: int = 0) -> ReidDataset:
    """VIPeR with a seeded half/half id split (316/316 on the full set).

    Query: camera A images of the test ids; gallery: their camera B images.
    The split comes from ``(seed, split)`` and is recorded in ``info``, never
    written to disk.
    """
    dataset = "viper"
    expected = "expected folders cam_a/ and cam_b/ with files named like 000_45.bmp (id_angle)"
    base = find_layout(
        require_root(root, dataset, expected),
        ("", "VIPeR", "viper/VIPeR"),
        ("cam_a", "cam_b"),
        dataset,
        expected,
    )
    by_cam: list[dict[int, list[str]]] = []
    for cam in ("cam_a", "cam_b"):
        table: dict[int, list[str]] = {}
        files = image_files(base / cam, dataset, expected)
        for path, (pid, _angle) in parse_names(files, VIPER_NAME, base / cam, dataset, expected):
            table.setdefault(pid, []).append(str(path))
        by_cam.append(table)
    ids, test_ids = half_split(by_cam, dataset, base, seed, split, 0x5649)
    test_set = set(test_ids)

    def records(cam: int, wanted: bool) -> list[Record]:
        return [
            Record(path, pid, cam)
            for pid in ids
            if (pid in test_set) == wanted
            for path in by_cam[cam][pid]
        ]

    train, _ = relabel(records(0, False) + records(1, False))
    return ReidDataset(
        name=dataset,
        train=train,
        query=records(0, True),
        gallery=records(1, True),
        default_lr_cameras=(0,),
        single_gallery_shot=True,
        hr_size=HR_SIZE,
        info={
            "source": str(base),
            "split": int(split),
            "split_seed": int(seed),
            "test_ids": test_ids,
            "ids_in_one_camera_only": len(set(by_cam[0]) ^ set(by_cam[1])),
        },
    )


def _factory(root: str | None, config: RunConfig) -> ReidDataset:
    return read_viper(root, split=int(config.option("split", 0)), seed=config.protocol.seed)


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "viper",
        _factory,
        "VIPeR (VIPeR/cam_a, cam_b): 316/316 seeded id split, cam_a LR query",
        options={"split": SPLIT_OPTION},
    )
