"""What a run folder holds and what it says about its run: the one place that knows.

A run folder is the unit of truth. ``config.json`` is written first (the resolved
settings), checkpoints and ``log.jsonl`` while training, and ``metrics.json`` with
``status: complete`` only at the very end, after every promised file. So "is this run
finished?" and "is this folder another run's?" are questions about files; the bench,
the scheduler and a single run all ask them here, so they can never disagree.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere a run folder is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from harness.checkpoint import settings_differing
from harness.config import ConfigError, RunConfig
from harness.errors import HarnessError
from harness.io import TMP_SUFFIX, atomic_write_json
from harness.options import coerce_option

CONFIG = "config.json"
METRICS = "metrics.json"
SPLIT = "split.json"
LOG = "log.jsonl"
#: each query's outcomes, for paired comparisons (:mod:`harness.bootstrap`, docs/results.md)
PER_QUERY = "per_query.json"
CHECKPOINTS = "checkpoints"
#: held (``flock``) by the process training in the folder; the OS releases it when that dies
LOCK = ".lock"
#: the status ``metrics.json`` holds once the run is done (``running`` before)
COMPLETE = "complete"

#: what a run writes into its folder; any of them means the folder holds a run
RUN_FILES = (CONFIG, METRICS, SPLIT, LOG, CHECKPOINTS)
#: what a complete run folder promises (sr_samples.png where the run has an SR query, it and
#: ranks.png where its dataset's images may be shown or --show-samples asks: harness.ranks,
#: harness.report). Runs completed before
#: per_query.json or ranks.json existed stay complete (only metrics.json's status says so);
#: the leaderboard gives them no paired comparison and says why
PROMISED = (CONFIG, SPLIT, METRICS, PER_QUERY, "cmc.csv", "cmc.png", "ranks.json", LOG)
#: settings saying where a run is also logged (``--tracker``), never what it computes
TRACKING = ("trackers", "tracker_uri")
#: settings saved as tables in config.json: a plan's value is compared key by key
SETTING_TABLES = ("options", "protocol")


def _read_json(path: Path) -> Any:
    """The document at ``path``, or None when it is missing or torn (a crash mid-write)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_started(run_dir: str | Path) -> bool:
    """True once a run has written its settings: it is continued, not started again."""
    return (Path(run_dir) / CONFIG).is_file()


def is_complete(run_dir: str | Path) -> bool:
    """True when the folder's metrics.json says ``status: complete``.

    Only :func:`mark_complete` writes that, and last, so a crash at any point before
    leaves a folder that is resumed rather than reported.
    """
    doc = _read_json(Path(run_dir) / METRICS)
    return isinstance(doc, dict) and doc.get("status") == COMPLETE


def mark_complete(run_dir: Path, metrics: Mapping[str, Any]) -> None:
    """Write ``metrics.json`` (``status: complete``) last, and only when every promised file
    is there.

    The write is atomic: a reader sees the old ``running`` document or the whole new one.
    """
    log = run_dir / LOG
    if not log.is_file():
        log.touch()  # a run too short to log anything still promises its (empty) log
    missing = [name for name in PROMISED if name != METRICS and not (run_dir / name).is_file()]
    if missing:
        raise HarnessError(
            f"{run_dir} would be marked complete without {', '.join(missing)}; not marking it"
        )
    atomic_write_json(run_dir / METRICS, dict(metrics))


#: what metrics.json says of a run that stopped before its end (``--resume`` continues either)
INTERRUPTED, FAILED = "interrupted", "failed"


def mark_stopped(run_dir: Path, status: str, reason: str) -> bool:
    """Record why a running run stopped (``interrupted``: Ctrl-C or SIGTERM; ``failed``: an
    error), so its folder does not say ``running`` forever; a complete run is never touched.
    Returns whether it wrote."""
    path = run_dir / METRICS
    current = _read_json(path) if path.is_file() else None
    if not isinstance(current, Mapping) or current.get("status") != "running":
        return False
    atomic_write_json(
        path, {"status": status, "reason": reason, "resume": f"harness run --resume {run_dir}"}
    )
    return True


def refuse_foreign_run(run_dir: Path) -> None:
    """A run folder belongs to one run: a new run never writes into another run's folder."""
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not present:
        return
    what = "a run"
    try:
        doc = json.loads((run_dir / CONFIG).read_text())
        cfg = doc["config"]
        status = (
            json.loads((run_dir / METRICS).read_text()).get("status", "?")
            if (run_dir / METRICS).is_file()
            else "no metrics"
        )
        what = (
            f"a run ({cfg['sr']}/{cfg['reid']}/{cfg['reg']} on {cfg['data']}, "
            f"seed {cfg['seed']}, {status})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise HarnessError(
        f"{run_dir} already holds {what} ({', '.join(present)}): continue it with "
        f"harness run --resume {run_dir}, or write this run elsewhere with --out NEW_FOLDER"
    )


def check_run_dir(run_dir: Path) -> None:
    """Create the folder and prove it writable now, not after an hour of training."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(
            f"cannot write to the output folder {run_dir}: {exc.strerror or exc}"
        ) from exc


def check_output_file(path: Path, option: str) -> None:
    """Prove a file the run writes at its end can be written, before training, not after it.

    Its folder must exist or be creatable and be writable, and the path must not be a
    folder; missing parent folders are made now. The probe is a temporary as
    :mod:`harness.io` writes them, so a kill leaves nothing a resume does not remove.
    """
    if path.is_dir():
        raise HarnessError(f"{option} {path} is a folder; give a file path inside it")
    existing = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise HarnessError(f"cannot write {option} {path}: {existing} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HarnessError(
            f"cannot write {option} {path}: {exc.strerror or exc} ({exc.filename or path.parent})"
            "; give a path in a writable folder"
        ) from exc


@contextlib.contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Lock ``run_dir`` for as long as this process trains in it.

    A second process (a second ``--resume``, a re-run bench beside the workers of a killed
    one) would delete the live run's temporaries and log every line twice; it is refused.
    ``flock`` is released by the OS when the holder dies, however it dies, so a killed run
    never leaves a stale lock to clean up. The file stays; only the lock on it matters.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = (run_dir / LOCK).open("a+")
    except OSError as exc:
        raise HarnessError(
            f"cannot write to the output folder {run_dir}: {exc.strerror or exc}"
        ) from exc
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise HarnessError(
                    f"{run_dir} is in use: {holder} is training in it now; wait for it to "
                    "finish, or stop it, before resuming it"
                ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield  # the lock goes with the handle's close (or the process's death)


def _same(wanted: Any, stored: Any) -> bool:
    """Equality after typing command-line strings ("0.5", "true") like the saved values."""
    if isinstance(wanted, list | tuple) and isinstance(stored, list | tuple):
        return len(wanted) == len(stored) and all(map(_same, wanted, stored))
    try:
        return coerce_option(wanted, stored) == stored
    except ConfigError:
        return False


def stale_settings(run_dir: Path, settings: Mapping[str, Any]) -> list[str]:
    """Settings of a started run folder that disagree with ``settings`` (empty: it is this run).

    Resuming is keyed by folder, so without this check a bench re-run with, say, other data
    into the same folder would report the old runs as its own. Only keys both sides name
    are compared: a setting the folder predates (or a default the plan leaves out) is no
    disagreement, so earlier run folders stay usable.
    """
    doc = _read_json(run_dir / CONFIG)
    saved = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(saved, Mapping):
        return []
    out = []
    for key, value in settings.items():
        if key in TRACKING:
            continue  # a run may be tracked, or tracked elsewhere, when it is continued
        if key in SETTING_TABLES and isinstance(value, Mapping):
            inner = saved.get(key) or {}
            out += [
                f"{key}.{k}: planned {v!r}, saved {inner.get(k)!r}"
                for k, v in value.items()
                if k in inner and not _same(v, inner.get(k))
            ]
        elif key in saved and not _same(value, saved[key]):
            out.append(f"{key}: planned {value!r}, saved {saved[key]!r}")
    return out


def _describe(value: Any) -> str:
    """A short account of a split.json value: a list by its length, anything else as is."""
    if isinstance(value, list):
        return f"{len(value)} entries"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def check_split(run_dir: Path, listing: Mapping[str, Any]) -> None:
    """Refuse to resume a run whose data or protocol no longer give its recorded split.

    ``split.json`` is written when the run starts; its checkpoints were trained and will be
    evaluated on that split. If the dataset gained or lost images, or ``config.json``'s
    protocol was edited since, the resumed run would report other queries than the ones
    recorded, marked complete. ``listing`` is the split the current data and config give.
    """
    saved = _read_json(run_dir / SPLIT)
    if not isinstance(saved, Mapping):
        raise HarnessError(
            f"{run_dir / SPLIT} is corrupt: the split this run was started on cannot be checked; "
            f"start the run again with --out NEW_FOLDER"
        )
    now = json.loads(json.dumps(listing))  # tuples as lists, as the file holds them
    diffs = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        if old == new or (key not in saved and new in ([], {})):
            continue  # an empty part the file predates (val_* before mlr-2.1) is no change
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            diffs += [
                f"{key}.{k}: recorded {_describe(old.get(k))}, now {_describe(new.get(k))}"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
            ]
        else:
            diffs.append(f"{key}: recorded {_describe(old)}, now {_describe(new)}")
    if diffs:
        raise HarnessError(
            f"{run_dir} cannot be resumed: its data or protocol changed since it started "
            f"({'; '.join(diffs[:4])}), so its split.json no longer holds; restore them, or "
            f"start a new run with --out NEW_FOLDER"
        )


def refuse_edited_config(run_dir: Path, config: RunConfig, ckpt: Mapping[str, Any]) -> None:
    """``harness eval`` evaluates the settings the final checkpoint was trained with.

    The checkpoint records them; a ``config.json`` edited since (other ratios, another
    ``sr_iters``) would be evaluated and marked complete as if it had been trained so.
    Settings that change no result (``RESUME_FREE``: device, workers ...) may differ.
    """
    saved = ckpt.get("config")
    if not isinstance(saved, Mapping):
        return  # a checkpoint from before checkpoints recorded their settings
    diffs = settings_differing(dict(saved), config.to_dict())
    if diffs:
        raise HarnessError(
            f"{run_dir / CONFIG} disagrees with the settings its final checkpoint was trained "
            f"with ({'; '.join(diffs[:4])}; checkpoint first); restore config.json, or train "
            f"these settings as a new run with --out NEW_FOLDER"
        )


def load_run_config(run_dir: Path) -> RunConfig:
    """The settings a run folder was made with, for ``--resume`` and ``harness eval``."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise HarnessError(f"{run_dir} is not a run folder: config.json is missing")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise HarnessError(
            f"{path} is corrupt (not JSON: {exc}); the run cannot be resumed from it"
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise HarnessError(
            f"{path} is corrupt: it holds no 'config' table; the run cannot be resumed from it"
        )
    config = dict(doc["config"])
    if "hr_height" not in config:  # an mlr-1.0 run: its HR size was the re-id size
        config["hr_height"], config["hr_width"] = config.get("height", 64), config.get("width", 32)
    protocol = config.get("protocol")
    if isinstance(protocol, dict) and "val_ids" not in protocol:
        # before mlr-2.1 nobody was held out: the run trained on every training identity
        protocol = config["protocol"] = {**protocol, "val_ids": 0.0}
    if isinstance(protocol, dict) and "version" not in protocol and doc.get("protocol_version"):
        # the version decides how the split is built (mlr-2.1's validation gallery differs)
        config["protocol"] = {**protocol, "version": doc["protocol_version"]}
    try:
        return RunConfig.from_dict(config)
    except HarnessError as exc:
        raise HarnessError(f"{path} is corrupt: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise HarnessError(f"{path} is corrupt: {type(exc).__name__}: {exc}") from exc


def run_log(run_dir: Path) -> Path:
    """Where a launched run's stdout and stderr go: beside its folder, ``<row>/<folder>.log``."""
    return run_dir.parent / f"{run_dir.name}.log"
