"""Atomic checkpoints, the last K kept, loaded without unpickling code.

A checkpoint holds everything a resumed run needs to continue exactly as an
uninterrupted one would on CPU: models, optimisers, schedulers, every RNG
state and the position in the schedule.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.io import atomic_torch_save

PATTERN = "ckpt-{stage}-{iteration:07d}.pt"
STAGE_ORDER = {"reid": 0, "warmup": 1, "sr": 2, "done": 3}


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state as plain tensors and numbers, loadable with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: Path, stage: str, iteration: int, payload: dict[str, Any], keep: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PATTERN.format(stage=stage, iteration=iteration)
    atomic_torch_save({"stage": stage, "iteration": iteration, **payload}, path)
    for old in list_checkpoints(directory)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def _order(path: Path) -> tuple[int, int]:
    _, stage, iteration = path.stem.split("-")
    return (STAGE_ORDER.get(stage, -1), int(iteration))


def list_checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(directory.glob("ckpt-*-*.pt"), key=_order)


def safe_load(path: str | Path, what: str = "checkpoint", hint: str = "") -> Any:
    """``torch.load(weights_only=True)``; a file that needs pickled code is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{what} file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise HarnessError(f"refusing to unpickle code from {path}{hint}") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise HarnessError(f"cannot read {what} from {path}: it is corrupt or truncated ({exc})") from exc


def latest_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint (a torn file from a crash is skipped)."""
    for path in reversed(list_checkpoints(directory)):
        try:
            return safe_load(path)
        except HarnessError:
            continue
    return None
