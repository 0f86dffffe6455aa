"""Readers for the official folder layouts of re-id datasets.

Why not torchreid's dataset classes: they download when a folder is missing
and write split files next to the images, and the data root may be
read-only. The parsing rules are torchreid's (its ``([-\\d]+)_c(\\d)`` file-name
pattern, junk id -1 dropped, cameras made 0-based, train ids relabelled), but
applied to the file name only, with errors that name the folder and the
expected layout. Nothing here writes anywhere.

Conventions (``harness.ReidDataset``): camera ids 0-based; train ids
relabelled 0..N-1 in sorted order of the original ids; query and gallery keep
their original ids; split details go into ``info``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from harness.components import Record, ReidDataset
from harness.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")  # 0002_c1s1_000451_01.jpg, -1_c1s1_...
VIPER_NAME = re.compile(r"^(\d+)_(\d+)\.\w+$")  # 000_45.bmp
CUHK_PARTIAL_NAME = re.compile(r"^(\d+)_(\d+)\.\w+$")  # 0000_07.jpg
CAVIAR_NAME = re.compile(r"^(\d{4})(\d{3})\.\w+$")  # 0001013.jpg

SPLIT_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


# ---------------------------------------------------------------------------
# Helpers: finding the layout, listing and parsing files
# ---------------------------------------------------------------------------


def _require_root(root: str | Path | None, dataset: str, expected: str) -> Path:
    if root is None:
        raise DatasetError(
            f"dataset {dataset!r} reads files from disk: pass --data-root DIR, {expected}"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{dataset} data folder {path} does not exist; {expected}")
    return path


def _find_layout(
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
        f"found there: {_listing(root)}"
    )


def _listing(folder: Path, limit: int = 8) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as exc:
        return f"(cannot list: {exc})"
    if not names:
        return "(nothing)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _images(folder: Path, dataset: str, expected: str) -> list[Path]:
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


def _parse(
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


def _relabel(records: list[Record]) -> tuple[list[Record], dict[int, int]]:
    """Train ids -> 0..N-1 in sorted order of the original ids."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [Record(r.image, mapping[r.pid], r.camid) for r in records], mapping


def _split_ids(ids: Sequence[int], num_test: int, seed: int, split: int, tag: int) -> list[int]:
    """Seeded choice of the test ids: same ``(seed, split)``, same ids, on every machine."""
    rng = np.random.default_rng([int(seed), int(split), tag])
    order = rng.permutation(len(ids))
    return sorted(int(ids[i]) for i in order[:num_test])


def _check_nonempty(name: str, train: list, query: list, gallery: list, where: Path) -> None:
    for label, records in (("train", train), ("query", query), ("gallery", gallery)):
        if not records:
            raise DatasetError(f"{name}: the {label} split read from {where} is empty")


# ---------------------------------------------------------------------------
# Market-1501, DukeMTMC-reID, CUHK03-NP: bounding_box_train / query / bounding_box_test
# ---------------------------------------------------------------------------


def _market_style(
    root: str | Path | None,
    dataset: str,
    candidates: Sequence[str],
    example: str,
    keep_distractors: bool,
    extra_info: dict | None = None,
) -> ReidDataset:
    expected = (
        f"expected folders {', '.join(f + '/' for f in SPLIT_FOLDERS)} with files named like "
        f"{example}"
    )
    base = _find_layout(
        _require_root(root, dataset, expected), candidates, SPLIT_FOLDERS, dataset, expected
    )
    expected += f" under {base}"
    splits: dict[str, list[Record]] = {}
    dropped = {"junk (-1)": 0, "distractors (0)": 0}
    for folder in SPLIT_FOLDERS:
        records = []
        for path, (pid, cam) in _parse(
            _images(base / folder, dataset, expected), MARKET_NAME, base / folder, dataset, expected
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
    train, mapping = _relabel(splits["bounding_box_train"])
    query, gallery = splits["query"], splits["bounding_box_test"]
    _check_nonempty(dataset, train, query, gallery, base)
    return ReidDataset(
        name=dataset,
        train=train,
        query=query,
        gallery=gallery,
        default_lr_cameras=tuple(sorted({r.camid for r in query})),
        info={
            "source": str(base),
            "dropped": dropped,
            "gallery_distractors": sum(r.pid == 0 for r in gallery),
            **(extra_info or {}),
        },
    )


def read_market1501(root: str | Path | None, *, keep_distractors: bool = True) -> ReidDataset:
    """Market-1501: root is the data folder or a folder holding it.

    Junk images (id -1) are dropped as in torchreid; distractors (id 0) stay in
    the gallery, as in the official evaluation and torchreid, unless
    ``keep_distractors`` is off. Every query camera may be made LR.
    """
    return _market_style(
        root,
        "market1501",
        ("", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15", "market1501"),
        "0002_c1s1_000451_01.jpg",
        keep_distractors,
    )


def read_dukemtmc(root: str | Path | None, *, keep_distractors: bool = True) -> ReidDataset:
    """DukeMTMC-reID: root is the data folder or a folder holding it."""
    return _market_style(
        root,
        "dukemtmc",
        ("", "DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmcreid/DukeMTMC-reID"),
        "0005_c2_f0046985.jpg",
        keep_distractors,
    )


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
    return _market_style(
        root,
        "cuhk03",
        candidates,
        f"0001_c1_1.png in cuhk03-np/{subset}/",
        keep_distractors=True,
        extra_info={"subset": subset, "protocol": "CUHK03-NP (767 train / 700 test ids)"},
    )


# ---------------------------------------------------------------------------
# CUHK03 labeled, partial copy: train/PPPP_KK.jpg and val/PPPP_KK.jpg
# ---------------------------------------------------------------------------

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
    base = _find_layout(
        _require_root(root, dataset, expected),
        ("", "cuhk03-labeled"),
        ("train", "val"),
        dataset,
        expected,
    )
    parts: dict[str, list[Record]] = {}
    for folder in ("train", "val"):
        records = []
        for path, (pid, k) in _parse(
            _images(base / folder, dataset, expected),
            CUHK_PARTIAL_NAME,
            base / folder,
            dataset,
            expected,
        ):
            if not 0 <= k <= 9:
                raise DatasetError(f"{dataset}: image index {k:02d} outside 00-09 in {path}")
            records.append(Record(str(path), pid, 0 if k < 5 else 1))
        parts[folder] = records
    train, _ = _relabel(parts["train"])
    test = [Record(r.image, r.pid + VAL_PID_OFFSET, r.camid) for r in parts["val"]]
    query = [r for r in test if r.camid == 0]
    gallery = [r for r in test if r.camid == 1]
    _check_nonempty(dataset, train, query, gallery, base)
    return ReidDataset(
        name=dataset,
        train=train,
        query=query,
        gallery=gallery,
        default_lr_cameras=(0,),
        single_gallery_shot=True,
        info={
            "source": str(base),
            "test_ids": len({r.pid for r in test}),
            "val_pid_offset": VAL_PID_OFFSET,
            "protocol": "train on train/, test on val/: camera one query, camera two gallery",
        },
    )


# ---------------------------------------------------------------------------
# VIPeR: cam_a/NNN_ANGLE.bmp, cam_b/NNN_ANGLE.bmp
# ---------------------------------------------------------------------------


def read_viper(root: str | Path | None, *, split: int = 0, seed: int = 0) -> ReidDataset:
    """VIPeR with a seeded half/half id split (316/316 on the full set).

    Query: camera A images of the test ids; gallery: their camera B images.
    The split comes from ``(seed, split)`` and is recorded in ``info``, never
    written to disk.
    """
    dataset = "viper"
    expected = "expected folders cam_a/ and cam_b/ with files named like 000_45.bmp (id_angle)"
    base = _find_layout(
        _require_root(root, dataset, expected),
        ("", "VIPeR", "viper/VIPeR"),
        ("cam_a", "cam_b"),
        dataset,
        expected,
    )
    by_cam: list[dict[int, list[str]]] = []
    for cam in ("cam_a", "cam_b"):
        table: dict[int, list[str]] = {}
        files = _images(base / cam, dataset, expected)
        for path, (pid, _angle) in _parse(files, VIPER_NAME, base / cam, dataset, expected):
            table.setdefault(pid, []).append(str(path))
        by_cam.append(table)
    ids = sorted(set(by_cam[0]) & set(by_cam[1]))
    if len(ids) < 2:
        raise DatasetError(
            f"{dataset}: fewer than 2 ids appear in both cam_a/ and cam_b/ of {base}"
        )
    test_ids = _split_ids(ids, len(ids) // 2, seed, split, 0x5649)
    test_set = set(test_ids)

    def records(cam: int, wanted: bool) -> list[Record]:
        return [
            Record(path, pid, cam)
            for pid in ids
            if (pid in test_set) == wanted
            for path in by_cam[cam][pid]
        ]

    train, _ = _relabel(records(0, False) + records(1, False))
    return ReidDataset(
        name=dataset,
        train=train,
        query=records(0, True),
        gallery=records(1, True),
        default_lr_cameras=(0,),
        single_gallery_shot=True,
        info={
            "source": str(base),
            "split": int(split),
            "split_seed": int(seed),
            "test_ids": test_ids,
            "ids_in_one_camera_only": len(set(by_cam[0]) ^ set(by_cam[1])),
        },
    )


# ---------------------------------------------------------------------------
# CAVIAR4REID: caviarReID/PPPPIII.jpg, images 1-10 camera 1, 11-20 camera 2
# ---------------------------------------------------------------------------


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
    root_path = _require_root(root, dataset, expected)
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
            f"found there: {_listing(root_path)}"
        )
    by_cam: list[dict[int, list[str]]] = [{}, {}]
    for path, (pid, index) in _parse(
        _images(base, dataset, expected), CAVIAR_NAME, base, dataset, expected
    ):
        if not 1 <= index <= 20:
            raise DatasetError(f"{dataset}: image number {index} outside 001-020 in {path}")
        by_cam[0 if index <= 10 else 1].setdefault(pid, []).append(str(path))
    ids = sorted(set(by_cam[0]) & set(by_cam[1]))
    if len(ids) < 2:
        raise DatasetError(f"{dataset}: fewer than 2 ids appear in both cameras in {base}")
    test_ids = _split_ids(ids, len(ids) // 2, seed, split, 0x4341)
    test_set = set(test_ids)
    train_raw = [
        Record(path, pid, cam)
        for pid in ids
        if pid not in test_set
        for cam in (0, 1)
        for path in by_cam[cam][pid]
    ]
    train, _ = _relabel(train_raw)
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
