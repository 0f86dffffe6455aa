"""The folder-reading toolkit every dataset plugin uses, built-in or third-party.

A dataset plugin (``plugins/data/market1501.py`` is the model) finds its
layout under ``--data-root`` with :func:`find_layout`, lists and parses image
file names with :func:`image_files` and :func:`parse_names`, relabels training
ids with :func:`relabel` and draws seeded id splits with :func:`split_ids`;
every error names the folder and the layout that was expected. Market-style
layouts (``bounding_box_train/``, ``query/``, ``bounding_box_test/``) are one
call: :func:`read_market_style`.

Why not torchreid's dataset classes: they download when a folder is missing
and write split files next to the images, and the data root may be
read-only. The parsing rules are torchreid's (its ``([-\\d]+)_c(\\d)`` file-name
pattern, junk id -1 dropped, cameras made 0-based, train ids relabelled), but
applied to the file name only. Nothing here writes anywhere.

Conventions (``harness.ReidDataset``): camera ids 0-based; train ids
relabelled 0..N-1 in sorted order of the original ids; query and gallery keep
their original ids; split details go into ``info``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from harness.components import Record, ReidDataset
from harness.errors import DatasetError
from harness.options import Option

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")  # 0002_c1s1_000451_01.jpg, -1_c1s1_...

SPLIT_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


# ---------------------------------------------------------------------------
# Helpers: finding the layout, listing and parsing files
# ---------------------------------------------------------------------------


def require_root(root: str | Path | None, dataset: str, expected: str) -> Path:
    """``--data-root`` as a folder that exists, or a :class:`DatasetError` saying what was
    expected."""
    if root is None:
        raise DatasetError(
            f"dataset {dataset!r} reads files from disk: pass --data-root DIR, {expected}"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{dataset} data folder {path} does not exist; {expected}")
    return path


def find_layout(
    root: Path, candidates: Sequence[str], required: Sequence[str], dataset: str, expected: str
) -> Path:
    """The first folder among ``root/candidate`` that holds every required sub-folder.

    A folder that holds some but not all of them is the one the user meant:
    the error names exactly what is missing there.
    """
    best: tuple[int, Path] | None = None
    for rel in candidates:
        base = root / rel if rel else root
        present = sum((base / sub).is_dir() for sub in required)
        if present == len(required):
            return base
        if present and (best is None or present > best[0]):
            best = (present, base)
    if best is not None:
        base = best[1]
        missing = [f"{sub}/" for sub in required if not (base / sub).is_dir()]
        raise DatasetError(
            f"{dataset} folder {base} is incomplete: missing {', '.join(missing)}; {expected}"
        )
    tried = ", ".join(str(root / rel) if rel else str(root) for rel in candidates)
    raise DatasetError(
        f"no {dataset} layout found under {root} (looked in {tried}); {expected}; "
        f"found there: {listing(root)}"
    )


def listing(folder: Path, limit: int = 8) -> str:
    """A few entries of ``folder`` for an error message (what *was* found there)."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as exc:
        return f"(cannot list: {exc})"
    if not names:
        return "(nothing)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def image_files(folder: Path, dataset: str, expected: str) -> list[Path]:
    """Image files of a folder, sorted; other files (Thumbs.db, README) are ignored."""
    if not folder.is_dir():
        raise DatasetError(f"{dataset}: missing folder {folder}; {expected}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DatasetError(
            f"{dataset}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}; {expected}"
        )
    return files


def parse_names(
    files: Iterable[Path], pattern: re.Pattern, folder: Path, dataset: str, expected: str
) -> list[tuple[Path, tuple[int, ...]]]:
    """Match every file name; any that does not match is an error listing a few."""
    parsed, bad = [], []
    for path in files:
        m = pattern.match(path.name)
        if m is None:
            bad.append(path.name)
        else:
            parsed.append((path, tuple(int(g) for g in m.groups())))
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
        raise DatasetError(
            f"{dataset}: {len(bad)} file name(s) in {folder} do not match the layout: {shown}; "
            f"{expected}"
        )
    return parsed


def relabel(records: list[Record]) -> tuple[list[Record], dict[int, int]]:
    """Train ids -> 0..N-1 in sorted order of the original ids."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [Record(r.image, mapping[r.pid], r.camid) for r in records], mapping


def split_ids(ids: Sequence[int], num_test: int, seed: int, split: int, tag: int) -> list[int]:
    """Seeded choice of the test ids: same ``(seed, split)``, same ids, on every machine."""
    rng = np.random.default_rng([int(seed), int(split), tag])
    order = rng.permutation(len(ids))
    return sorted(int(ids[i]) for i in order[:num_test])


def half_split(
    by_camera: Sequence[Mapping[int, list[str]]],
    dataset: str,
    where: Path,
    seed: int,
    split: int,
    tag: int,
) -> tuple[list[int], list[int]]:
    """Ids seen by every camera, and the seeded half of them that is the test set.

    The two-camera datasets without an official split (VIPeR, CAVIAR) split this
    way; ``tag`` keeps one dataset's draws independent of another's.
    """
    ids = sorted(set.intersection(*(set(table) for table in by_camera)))
    if len(ids) < 2:
        raise DatasetError(f"{dataset}: fewer than 2 ids appear in every camera of {where}")
    return ids, split_ids(ids, len(ids) // 2, seed, split, tag)


#: The option every dataset with seeded splits declares (``harness bench --splits N``).
SPLIT_OPTION = Option(0, "which seeded train/test id split (with --protocol seed)", min=0)


def check_nonempty(name: str, train: list, query: list, gallery: list, where: Path) -> None:
    """Every split has at least one record, or an error naming the empty one."""
    for label, records in (("train", train), ("query", query), ("gallery", gallery)):
        if not records:
            raise DatasetError(f"{name}: the {label} split read from {where} is empty")


# ---------------------------------------------------------------------------
# Market-style layouts: bounding_box_train / query / bounding_box_test
# ---------------------------------------------------------------------------


def read_market_style(
    root: str | Path | None,
    dataset: str,
    candidates: Sequence[str],
    example: str,
    keep_distractors: bool,
    extra_info: dict | None = None,
    hr_size: tuple[int, int] | None = None,
) -> ReidDataset:
    """A Market-style layout under ``root`` (or one of ``candidates`` below it).

    Junk images (id -1) are dropped; distractors (id 0) stay in the gallery
    unless ``keep_distractors`` is off; cameras become 0-based; train ids are
    relabelled 0..N-1. ``example`` is a file name shown in errors.
    """
    expected = (
        f"expected folders {', '.join(f + '/' for f in SPLIT_FOLDERS)} with files named like "
        f"{example}"
    )
    base = find_layout(
        require_root(root, dataset, expected), candidates, SPLIT_FOLDERS, dataset, expected
    )
    expected += f" under {base}"
    splits: dict[str, list[Record]] = {}
    dropped = {"junk (-1)": 0, "distractors (0)": 0}
    for folder in SPLIT_FOLDERS:
        records = []
        for path, (pid, cam) in parse_names(
            image_files(base / folder, dataset, expected),
            MARKET_NAME,
            base / folder,
            dataset,
            expected,
        ):
            if cam < 1:
                raise DatasetError(f"{dataset}: camera numbers start at 1, got c{cam} in {path}")
            if pid == -1:
                dropped["junk (-1)"] += 1
                continue
            if pid == 0 and (folder != "bounding_box_test" or not keep_distractors):
                dropped["distractors (0)"] += 1
                continue
            records.append(Record(str(path), pid, cam - 1))
        splits[folder] = records
    train, mapping = relabel(splits["bounding_box_train"])
    query, gallery = splits["query"], splits["bounding_box_test"]
    check_nonempty(dataset, train, query, gallery, base)
    return ReidDataset(
        name=dataset,
        train=train,
        query=query,
        gallery=gallery,
        default_lr_cameras=tuple(sorted({r.camid for r in query})),
        hr_size=hr_size,
        info={
            "source": str(base),
            "dropped": dropped,
            "gallery_distractors": sum(r.pid == 0 for r in gallery),
            **(extra_info or {}),
        },
    )


__all__ = [
    "IMAGE_EXTENSIONS",
    "MARKET_NAME",
    "SPLIT_FOLDERS",
    "check_nonempty",
    "find_layout",
    "SPLIT_OPTION",
    "half_split",
    "image_files",
    "listing",
    "parse_names",
    "read_market_style",
    "relabel",
    "require_root",
    "split_ids",
]
