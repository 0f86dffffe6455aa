"""Atomic file writes: a reader never sees half a result file.

Every file goes to a temporary sibling first and is renamed into place;
``os.replace`` is atomic on POSIX and Windows within one filesystem.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _atomic(path: str | os.PathLike[str], mode: str, write: Callable[[IO[Any]], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return _atomic(path, "wb", lambda h: h.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return _atomic(path, "w", lambda h: h.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the path's suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(path, "wb", lambda h: fig.savefig(h, format=fmt, **kwargs))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    import torch

    return _atomic(path, "wb", lambda h: torch.save(obj, h))


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one line; a crash can only lose the line being written."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
