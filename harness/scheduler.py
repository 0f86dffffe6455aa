"""Running a bench grid through a launcher: which runs may start, waiting, retrying.

The launcher (:mod:`harness.launch`) decides *where* a run goes; this module decides
*what may start*: runs that share a stage-0 or warm-start cache file wait while another
run trains it (one writer per file, so a shared stage trains once), and at most
``--jobs`` runs are in flight. A run that fails is retried once, then reported with its
log; the others go on. A run counts as finished only when its folder says so
(:func:`harness.rundir.is_complete`), whatever the engine reported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cache import cache_files
from harness.config import ConfigError
from harness.launch import JobOutcome, Launcher, PlannedRun, RunJob
from harness.options import coerce_option
from harness.pretrained import resolve_init
from harness.registry import Registry, suggest
from harness.resolve import resolve_config
from harness.run import resolve_device
from harness.rundir import is_complete


@dataclass
class LaunchReport:
    """How a launched grid went: finished and failed runs (each failure with its log)."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run name -> log path


def parse_launcher_options(
    declared: Mapping[str, Any], given: Mapping[str, Any], launcher: str
) -> dict[str, Any]:
    """``-L key=value`` typed by the launcher's declared options; unknown keys are named."""
    out = {key: option.default for key, option in declared.items()}
    for key, value in given.items():
        if key not in declared:
            close = suggest(key, list(declared))
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"launcher {launcher!r} has no option {key!r}{hint}; its options: {known}"
            )
        try:
            typed = coerce_option(value, declared[key].default)
        except ConfigError as exc:
            raise ConfigError(f"-L {key}={value!r}: {exc}") from exc
        declared[key].check(key, typed)
        out[key] = typed
    return out


def default_threads(jobs: int | None) -> int:
    """This machine's cores split between the runs in flight (at least one each)."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs or 1))


def shared_files(
    runs: Sequence[PlannedRun], registry: Registry, out_dir: Path
) -> dict[Path, tuple[str, ...]]:
    """Each run's stage-0 and warm-start cache files, as its trainer will name them.

    Computed on this machine: where a worker would resolve another device (a GPU
    node), it names other files and merely trains its own stage; the cache stays right.
    """
    out: dict[Path, tuple[str, ...]] = {}
    for run in runs:
        config = resolve_config(dict(run.settings), registry)
        config, device = resolve_device(config, lambda message: None)
        init = resolve_init(config.reid_init, config.reid, registry)
        files = cache_files(
            config, registry, device, out_dir / ".stage0-cache", init.sha256 if init else None
        )
        out[run.run_dir] = tuple(str(f) for f in files)
    return out


def _count(total: int, done: int, running: int, failed: int, eta: float | None = None) -> str:
    tail = f"; ETA ~{_minutes(eta)}" if eta is not None else ""
    return f"[{done}/{total} done, {running} running, {failed} failed{tail}]"


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def grid_eta(durations: Sequence[float], left: int, slots: int) -> float | None:
    """Seconds until the grid ends, from the runs finished so far: their mean duration times
    the runs not yet finished, over the runs at once (``None`` before the first finishes or
    after the last; runs that share a cached stage finish faster, so it is an upper bound)."""
    if not durations or left <= 0:
        return None
    return sum(durations) / len(durations) * left / max(1, slots)


def launch_runs(
    runs: Sequence[PlannedRun],
    make_job: Callable[[PlannedRun, int], RunJob],
    launcher: Launcher,
    *,
    shared: Mapping[Path, tuple[str, ...]],
    jobs: int | None,
    total: int,
    already_done: int = 0,
    retries: int = 1,
    progress: Callable[[str], None] = print,
    on_finish: Callable[[LaunchReport], None] | None = None,
    poll: float = 5.0,
) -> LaunchReport:
    """Hand ``runs`` to ``launcher``, at most ``jobs`` at once, and wait for them all.

    A cache file is "busy" while the run that trains it is in flight and the file is not
    there yet: runs needing a busy file wait, runs with other files start. Once its trainer
    has written the file (atomically: there means whole), the waiting runs start and load it,
    while the trainer goes on with its own later stages: a grid whose rows share stage 0 and
    the warm start does not wait for a whole row's stage 1 (checked every ``poll`` seconds).
    No second training, no race on the write; when its trainer fails for good before writing
    it, the next run needing it trains it instead.
    """
    pending = list(runs)
    running: dict[Future[JobOutcome], tuple[PlannedRun, RunJob]] = {}
    busy: dict[str, Path] = {}  # cache file -> the run training it
    report = LaunchReport()
    done = already_done

    durations: list[float] = []

    def line(verb: str, job: RunJob, tail: str = "") -> None:
        left = total - done - len(report.failed)
        eta = grid_eta(durations, left, jobs or max(1, len(running)))
        counts = _count(total, done, len(running), len(report.failed), eta)
        progress(f"{verb:<9}{job.name}{tail}  {counts}")

    def submit(run: PlannedRun, attempt: int) -> None:
        job = make_job(run, attempt)
        try:
            future = launcher.submit(job)
        except Exception as exc:  # the engine refused it: a failure like any other
            future = Future()
            future.set_exception(exc)
        running[future] = (run, job)
        line(
            "started", job, f" -> {run.run_dir}" + (f" (attempt {attempt})" if attempt > 1 else "")
        )

    def free(run: PlannedRun) -> None:
        for file, owner in list(busy.items()):
            if owner == run.run_dir:
                del busy[file]

    try:
        while pending or running:
            for file in [f for f in busy if Path(f).is_file()]:
                del busy[file]  # written (atomically) by its trainer, which runs on
            for run in list(pending):
                if jobs is not None and len(running) >= jobs:
                    break
                files = shared.get(run.run_dir, ())
                if any(f in busy for f in files):
                    continue  # its shared stage is being trained by another run
                for f in files:
                    if not Path(f).is_file():
                        busy[f] = run.run_dir
                pending.remove(run)
                submit(run, 1)
            if not running:  # cannot happen: a run whose files are all free always starts
                raise RuntimeError("bench launcher: nothing runs and nothing can start")
            finished, _ = wait(list(running), timeout=poll, return_when=FIRST_COMPLETED)
            for future in finished:
                run, job = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the engine lost the task (worker died, job killed)
                    outcome = JobOutcome(
                        returncode=-1, log=job.log, error=f"{type(exc).__name__}: {exc}"
                    )
                if outcome.ok and is_complete(run.run_dir):
                    done += 1
                    durations.append(outcome.seconds)
                    free(run)
                    report.finished.append(job.name)
                    line(
                        "finished",
                        job,
                        f" in {outcome.seconds:.1f}s"
                        + (f" on {outcome.host}" if outcome.host else ""),
                    )
                    if on_finish is not None:
                        on_finish(report)
                    continue
                why = outcome.error or f"exit code {outcome.returncode}"
                if job.attempt <= retries:
                    line("failed", job, f" ({why}; retrying once) log: {outcome.log}")
                    submit(run, job.attempt + 1)  # keeps its cache files busy
                    continue
                free(run)
                report.failed[job.name] = outcome.log
                line("FAILED", job, f" ({why}, {job.attempt} attempts) log: {outcome.log}")
                if on_finish is not None:
                    on_finish(report)
    except BaseException:
        with contextlib.suppress(Exception):
            launcher.close(cancel=True)
        raise
    launcher.close()
    return report
