"""Atomic checkpoints, the last K kept, loaded without unpickling code.

:func:`safe_load` is the harness's one reader of weights files too (re-id
weights, initial backbone weights, ``--sr-weights``): one place decides that no
pickled code ever runs.

A checkpoint holds everything a resumed run needs to continue exactly as an
uninterrupted one would on CPU: models, optimisers, schedulers, every RNG
state and the position in the schedule.
"""

from __future__ import annotations

import pickle
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import DiskFullError, HarnessError
from harness.io import atomic_torch_save

PATTERN = "ckpt-{stage}-{iteration:07d}.pt"
STAGE_ORDER = {"reid": 0, "warmup": 1, "critic": 2, "sr": 3, "done": 4}
#: the re-id model as stage 0 left it, written once; later checkpoints of a run whose
#: re-id model is frozen do not repeat it (it cannot change), which halves their size
FROZEN_REID = "reid-stage0.pt"
#: settings that may differ between a run and its resume without changing any result
RESUME_FREE = (
    "device",
    "workers",
    "log_every",
    "ckpt_every",
    "keep_checkpoints",
    "val_every",
    "eval_batch_size",
    "trackers",
    "tracker_uri",
)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state as plain tensors and numbers, loadable with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    npy = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate(
        (py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: Path, stage: str, iteration: int, payload: dict[str, Any], keep: int
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PATTERN.format(stage=stage, iteration=iteration)
    try:
        atomic_torch_save({"stage": stage, "iteration": iteration, **payload}, path)
    except DiskFullError as exc:
        previous = list_checkpoints(directory)
        kept = (
            f"the last good checkpoint {previous[-1].name} is kept"
            if previous
            else "no checkpoint was kept"
        )
        raise DiskFullError(
            f"disk full while writing checkpoint {path}; {kept}; free some space, "
            f"then harness run --resume {directory.parent}"
        ) from exc
    for old in list_checkpoints(directory)[: -max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def save_frozen_reid(directory: Path, state: dict[str, Any]) -> Path:
    """The re-id weights every later checkpoint of this run shares (see ``FROZEN_REID``)."""
    return atomic_torch_save(state, directory / FROZEN_REID)


def settings_differing(saved: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """``key: saved != config`` for every result-changing setting that differs."""
    diffs = []
    for key in sorted(set(saved) | set(config)):
        if key in RESUME_FREE:
            continue
        if saved.get(key) != config.get(key):
            diffs.append(f"{key}: {saved.get(key)!r} != {config.get(key)!r}")
    return diffs


def _stage_iteration(path: Path) -> tuple[str, int]:
    """``ckpt-sr-0000250.pt`` -> ``("sr", 250)``."""
    _, stage, iteration = path.stem.split("-")
    return stage, int(iteration)


def _order(path: Path) -> tuple[int, int]:
    stage, iteration = _stage_iteration(path)
    return (STAGE_ORDER.get(stage, -1), iteration)


def list_checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(directory.glob("ckpt-*-*.pt"), key=_order)


def safe_load(path: str | Path, what: str = "checkpoint", hint: str = "") -> Any:
    """Read any weights file or checkpoint without running code from it: the one reader.

    ``.safetensors`` holds tensors only; anything else is read with
    ``torch.load(weights_only=True)``, so a file that needs pickled code is refused,
    never run. Every failure is a one-line :class:`HarnessError` naming ``what`` and
    the file (``hint`` is appended to the refusal: how to save a loadable file).
    """
    path = Path(path)
    if path.is_dir():
        raise HarnessError(f"{what} {path} is a folder; give the file")
    if not path.is_file():
        raise HarnessError(f"{what} file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            # safetensors comes with timm, not as a declared dependency; only .safetensors needs it
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise HarnessError(f"refusing to unpickle code from {path}{hint}") from exc
        raise HarnessError(
            f"cannot read {what} from {path}: not a PyTorch file, or a corrupt one ({exc})"
        ) from exc
    except (
        Exception
    ) as exc:  # torch raises many types for a torn or foreign file (KeyError, RuntimeError ...)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(
            f"cannot read {what} from {path}: it is corrupt, truncated or not a PyTorch file "
            f"({type(exc).__name__}: {first})"
        ) from exc


def latest_checkpoint(
    directory: Path, config: dict[str, Any] | None = None, warn: Callable[[str], None] | None = None
) -> dict[str, Any] | None:
    """The newest readable checkpoint; a torn file from a crash is skipped, and said so.

    With ``config`` (the run's ``to_dict()``), a checkpoint written under other
    settings is refused: a run folder belongs to one run. A checkpoint that left
    the frozen re-id model out gets it back from ``FROZEN_REID``.
    """
    warn = warn or (lambda message: warnings.warn(message, stacklevel=3))
    for path in reversed(list_checkpoints(directory)):
        try:
            ckpt = safe_load(path)
        except HarnessError as exc:
            warn(f"skipping checkpoint {path.name}: {exc}")
            continue
        if not isinstance(ckpt, dict) or "models" not in ckpt or "stage" not in ckpt:
            warn(f"skipping {path.name}: not a harness checkpoint")
            continue
        saved = ckpt.get("config")
        if config is not None and isinstance(saved, dict):
            diffs = settings_differing(saved, config)
            if diffs:
                raise HarnessError(
                    f"{path} was written by another run ({'; '.join(diffs[:4])}): "
                    f"a run folder holds one run; "
                    f"write this run elsewhere with --out, or resume the folder's own run"
                )
        return _with_frozen_reid(ckpt, directory, path)
    return None


def _with_frozen_reid(ckpt: dict[str, Any], directory: Path, path: Path) -> dict[str, Any]:
    """A checkpoint that left the frozen re-id model out gets it back from ``FROZEN_REID``."""
    if "reid" not in ckpt["models"]:
        frozen = directory / FROZEN_REID
        if not frozen.is_file():
            raise HarnessError(
                f"{path} leaves the frozen re-id model to {frozen}, which is missing"
            )
        ckpt["models"]["reid"] = safe_load(frozen, what="frozen re-id weights")
    return ckpt


def stage1_checkpoint(directory: Path, iteration: int, sr_iters: int) -> dict[str, Any]:
    """The kept checkpoint of stage 1 at ``iteration`` (``harness eval --at``): the models an
    ``iteration``-long stage 1 ends with (stage 1 has no learning-rate schedule). At
    ``sr_iters`` the final checkpoint serves when no stage-1 one of that iteration is kept."""
    kept: dict[int, Path] = {}
    final: Path | None = None
    for path in list_checkpoints(directory):
        stage, number = _stage_iteration(path)
        if stage == "sr":
            kept[number] = path
        elif stage == "done":
            final = path
    if iteration == sr_iters and iteration not in kept and final is not None:
        kept[iteration] = final
    if iteration not in kept:
        have = ", ".join(str(i) for i in sorted(kept)) or "none"
        raise HarnessError(
            f"no stage-1 checkpoint at iteration {iteration} in {directory} (kept: {have}); a run "
            "keeps one every --ckpt-every iterations and the newest --keep-checkpoints of them"
        )
    path = kept[iteration]
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or "models" not in ckpt:
        raise HarnessError(f"{path} is not a harness checkpoint")
    return _with_frozen_reid(ckpt, directory, path)
