"""Atomic file writes: a reader never sees half a result file.

Every file goes to a temporary sibling first and is renamed into place;
``os.replace`` is atomic on POSIX and Windows within one filesystem. The file
gets the permissions a plain ``open`` would give under the process's umask
(``mkstemp`` alone makes it owner-only, and a lab shares its results). A full
disk is reported as one line naming the file, and the half-written temporary
is removed: the file it would have replaced is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from harness.errors import DiskFullError, exception_chain

#: what a temporary file is called; ``remove_partial_writes`` cleans up after a crash
TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC anywhere in the chain (torch.save buries it under a RuntimeError)."""
    return any(
        (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT))
        or "No space left on device" in str(e)
        for e in exception_chain(exc)
    )


def _atomic(path: str | os.PathLike[str], mode: str, write: Callable[[IO[Any]], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if is_disk_full(exc):
            kept = " (the previous version is kept)" if path.exists() else ""
            raise DiskFullError(
                f"disk full while writing {path}{kept}: free some space, then resume"
            ) from exc
        raise
    return path


def remove_partial_writes(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries a killed process left behind (``.<name>.<random>.tmp``) in ``folder``
    and its subfolders; returns what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for tmp in folder.rglob(f".*{TMP_SUFFIX}"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return _atomic(path, "w", lambda h: h.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the path's suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(path, "wb", lambda h: fig.savefig(h, format=fmt, **kwargs))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    return _atomic(path, "wb", lambda h: torch.save(obj, h))


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one line; a crash can only lose the line being written, and a full disk loses
    not even a torn part of it (the file is cut back to its last whole line)."""
    line = (json.dumps(record, default=str) + "\n").encode()
    with open(path, "ab", buffering=0) as handle:  # unbuffered: close() has nothing to redo
        size = handle.seek(0, os.SEEK_END)
        try:
            handle.write(line)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            with contextlib.suppress(OSError):
                os.truncate(path, size)
            raise DiskFullError(
                f"disk full while appending to {path} (its earlier lines and the last "
                "checkpoint are kept): free some space, then resume"
            ) from exc
