"""A compact copy of a dataset folder: every image resized, the layout kept.

Why: a GPU machine or a CI job often takes a size-limited upload (the device
tool here carries 64 MiB), and CUHK03's boxes at their native sizes are far
larger than what a 128x64 run reads. The copy keeps every relative path and
file name, so the same ``--data <name> --data-root <copy>`` reader parses it;
only the pixels change (resized once, as the harness would at load time).
The harness never writes into the source folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from harness.data.layout import IMAGE_EXTENSIONS as IMAGE_SUFFIXES
from harness.errors import DatasetError

#: what marks a folder or archive as a pack, and of which source: only such an OUT is replaced
MARKER = ".harness-pack.json"


def _earlier_pack_source(out: Path) -> str | None:
    """The resolved source folder an existing ``out`` was packed from, if it is a pack at all."""
    try:
        if out.is_dir():
            doc = json.loads((out / MARKER).read_text())
        elif out.is_file() and tarfile.is_tarfile(out):
            with tarfile.open(out) as archive:
                member = archive.extractfile(archive.getmember(MARKER))
                doc = json.loads(member.read()) if member is not None else {}
        else:
            return None
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return None
    return doc.get("source") if isinstance(doc, dict) else None


def check_destination(src: Path, out: Path) -> None:
    """Refuse an ``out`` whose writing could destroy anything that is not our own earlier pack.

    Paths are compared resolved (``SRC/../SRC`` is SRC): ``out`` may be neither the source,
    nor inside it, nor a folder holding it; an existing ``out`` is replaced only when it is
    empty or an earlier pack of this very source.
    """
    source, target = src.resolve(), out.resolve()
    if target == source or source in target.parents:
        raise DatasetError(
            f"{out} is inside the source folder {src} (resolved: {target}); the harness "
            "never writes into a dataset: write the pack outside it"
        )
    if target in source.parents:
        raise DatasetError(
            f"{out} holds the source folder {src}; replacing it would delete the "
            "source: write the pack elsewhere"
        )
    if out.is_symlink() or out.exists():
        empty = out.is_dir() and not out.is_symlink() and not any(out.iterdir())
        if not empty and _earlier_pack_source(out) != str(source):
            raise DatasetError(
                f"{out} exists and is not an earlier pack of {src}: nothing was changed; "
                "choose a new output path, or remove it yourself if it is not needed"
            )


@dataclass
class PackSummary:
    images: int
    other_files: int
    bytes_written: int
    out: Path


def _encode(path: Path, size: tuple[int, int], quality: int) -> bytes:
    """The image at ``size`` (height, width), in the format its suffix names."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size[1], size[0]), Image.BICUBIC, reducing_gap=None)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc
    buf = io.BytesIO()
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=quality)
    elif suffix == ".png":
        img.save(buf, format="PNG", optimize=True)
    else:  # .bmp and the rest keep their own format, so their suffix stays true
        img.save(buf, format=Image.registered_extensions().get(suffix, "PNG"))
    return buf.getvalue()


def _files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.is_file())


def pack_dataset(
    src: str | Path,
    out: str | Path,
    size: tuple[int, int] = (128, 64),
    quality: int = 80,
    progress: Callable[[int, int], None] | None = None,
) -> PackSummary:
    """Copy ``src`` to ``out`` with every image resized to ``size`` (height, width).

    ``out`` ending in ``.tar`` gives one uncompressed archive (the JPEGs are compressed
    already; unpack it with ``tar xf``); anything else gives a folder. Non-image files
    (release notes, licences) are copied unchanged. Files are visited in sorted order
    with fixed tar metadata, so the same input gives a byte-identical archive.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DatasetError(f"{src} is not a folder; give the dataset folder to pack")
    if not 1 <= quality <= 100:
        raise DatasetError(f"JPEG quality must be in 1..100, got {quality}")
    files = _files(src)
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
        raise DatasetError(f"{src} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    check_destination(src, out)
    as_tar = out.suffix == ".tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    if (tmp.is_symlink() or tmp.exists()) and _earlier_pack_source(tmp) != str(src.resolve()):
        raise DatasetError(
            f"{tmp} exists and is not an unfinished pack of {src}; remove it or choose "
            "another output"
        )
    _remove(tmp)  # a pack an earlier, interrupted call left unfinished
    images = others = 0
    marker = json.dumps(
        {"source": str(src.resolve()), "size": list(size), "quality": quality}, sort_keys=True
    ).encode()
    archive = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) if as_tar else None
    if archive is not None:
        info = tarfile.TarInfo(MARKER)
        info.size, info.mode, info.mtime = len(marker), 0o644, 0
        archive.addfile(info, io.BytesIO(marker))
    else:
        tmp.mkdir(parents=True)
        (tmp / MARKER).write_bytes(marker)
    try:
        for i, path in enumerate(files):
            rel = path.relative_to(src).as_posix()
            if path.suffix.lower() in IMAGE_SUFFIXES:
                payload = _encode(path, size, quality)
                images += 1
            else:
                payload = path.read_bytes()
                others += 1
            if archive is not None:
                info = tarfile.TarInfo(rel)
                info.size, info.mode, info.mtime = len(payload), 0o644, 0
                archive.addfile(info, io.BytesIO(payload))
            else:
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(payload)
            if progress is not None:
                progress(i + 1, len(files))
    except BaseException:
        if archive is not None:
            archive.close()
        _remove(tmp)
        raise
    if archive is not None:
        archive.close()
    if out.exists():
        _remove(out)
    os.replace(tmp, out)  # the copy appears whole or not at all
    written = (
        out.stat().st_size
        if as_tar
        else sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    )
    return PackSummary(images=images, other_files=others, bytes_written=written, out=out)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
