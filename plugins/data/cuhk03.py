"""CUHK03 (Li et al., CVPR 2014): CUHK03-NP's folder form, and a labeled partial copy.

Two protocols, two names. ``cuhk03`` is CUHK03-NP (767 train / 700 test ids,
Market-style evaluation). ``cuhk03-partial`` is the seed paper's MLR-CUHK03
style: train on ``train/``, test on the 100 ``val/`` ids with camera-one
queries and single-gallery-shot CMC, the classic 1,367/100 protocol's test
side (the copy in ../shared/data has 743 of the training ids).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness import DatasetError, Option, Record, ReidDataset, RunConfig, hookimpl
from harness.data.layout import (
    check_nonempty,
    find_layout,
    image_files,
    parse_names,
    read_market_style,
    relabel,
    require_root,
)

#: CUHK03's terms forbid redistributing its images: figures of its people (ranks.png)
#: are not drawn unless asked (harness.ranks)
REDISTRIBUTABLE = False

#: CUHK03 boxes vary in size (44-201 x 130-419); the HR size is Market's 128x64.
HR_SIZE = (128, 64)

CUHK_PARTIAL_NAME = re.compile(r"^(\d+)_(\d+)\.\w+$")  # 0000_07.jpg


def read_cuhk03_np(root: str | Path | None, *, subset: str = "labeled") -> ReidDataset:
    """CUHK03-NP (new protocol, 767/700 ids) in its folder form, labeled or detected boxes."""
    if subset not in ("labeled", "detected"):
        raise DatasetError(f"cuhk03_subset must be 'labeled' or 'detected', not {subset!r}")
    candidates = (
        subset,
        f"cuhk03-np/{subset}",
        f"cuhk03/cuhk03-np/{subset}",
        f"cuhk03_np/{subset}",
        "",
    )
    try:
        return read_market_style(
            root,
            "cuhk03",
            candidates,
            f"0001_c1_1.png in cuhk03-np/{subset}/",
            keep_distractors=True,
            extra_info={
                "subset": subset,
                "protocol": "CUHK03-NP (767 train / 700 test ids)",
                "redistributable": REDISTRIBUTABLE,
            },
            hr_size=HR_SIZE,
        )
    except DatasetError as exc:
        partial = _partial_layout(root)
        if partial is None:
            raise
        raise DatasetError(
            f"{exc}; {partial} holds train/ and val/, the partial CUHK03 layout "
            "(PPPP_KK.jpg): read it with --data cuhk03-partial"
        ) from exc


def _partial_layout(root: str | Path | None) -> Path | None:
    """Where ``root`` holds the layout ``cuhk03-partial`` reads (train/ and val/), if it does:
    a user naming ``cuhk03`` for it is told which name reads it."""
    if root is None:
        return None
    for base in (Path(root), Path(root) / "cuhk03-labeled"):
        if (base / "train").is_dir() and (base / "val").is_dir():
            return base
    return None


#: Val ids restart at 0000; they become ``VAL_PID_OFFSET + id`` so they never merge with train.
VAL_PID_OFFSET = 100_000


def read_cuhk03_partial(root: str | Path | None) -> ReidDataset:
    """Train on ``train/``; test on the ``val/`` ids, camera one as query, two as gallery.

    KK 00-04 are one camera of a pair (camera 0), 05-09 the other (camera 1).
    """
    dataset = "cuhk03-partial"
    expected = (
        "expected folders train/ and val/ with files named like 0000_07.jpg "
        "(person id, then image 00-04 from camera one, 05-09 from camera two)"
    )
    base = find_layout(
        require_root(root, dataset, expected),
        ("", "cuhk03-labeled"),
        ("train", "val"),
        dataset,
        expected,
    )
    parts: dict[str, list[Record]] = {}
    for folder in ("train", "val"):
        records = []
        for path, (pid, k) in parse_names(
            image_files(base / folder, dataset, expected),
            CUHK_PARTIAL_NAME,
            base / folder,
            dataset,
            expected,
        ):
            if not 0 <= k <= 9:
                raise DatasetError(f"{dataset}: image index {k:02d} outside 00-09 in {path}")
            records.append(Record(str(path), pid, 0 if k < 5 else 1))
        parts[folder] = records
    train, _ = relabel(parts["train"])
    test = [Record(r.image, r.pid + VAL_PID_OFFSET, r.camid) for r in parts["val"]]
    query = [r for r in test if r.camid == 0]
    gallery = [r for r in test if r.camid == 1]
    check_nonempty(dataset, train, query, gallery, base)
    return ReidDataset(
        name=dataset,
        train=train,
        query=query,
        gallery=gallery,
        default_lr_cameras=(0,),
        single_gallery_shot=True,
        hr_size=HR_SIZE,
        info={
            "source": str(base),
            "test_ids": len({r.pid for r in test}),
            "val_pid_offset": VAL_PID_OFFSET,
            "protocol": "train on train/, test on val/: camera one query, camera two gallery",
            "redistributable": REDISTRIBUTABLE,
        },
    )


def _np(root: str | None, config: RunConfig) -> ReidDataset:
    return read_cuhk03_np(root, subset=str(config.option("cuhk03_subset", "labeled")))


def _partial(root: str | None, config: RunConfig) -> ReidDataset:
    return read_cuhk03_partial(root)


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "cuhk03",
        _np,
        "CUHK03-NP new protocol, folder form (cuhk03-np/{labeled,detected}/...)",
        options={
            "cuhk03_subset": Option(
                "labeled", "labeled or detected boxes", choices=("labeled", "detected")
            )
        },
    )
    registry.add(
        "cuhk03-partial",
        _partial,
        "CUHK03 labeled, partial copy (train/, val/ of PPPP_KK.jpg): MLR-CUHK03 style",
    )
