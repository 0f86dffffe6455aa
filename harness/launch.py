"""Running a bench grid through a launcher (local processes, a Ray cluster, Slurm): the core side.

A launcher is a plugin (``harness_register_launchers``) that hands one run to an
existing engine and returns a :class:`concurrent.futures.Future`; the engine decides
where and when it runs. The core only decides *what may start*: runs that share a
stage-0 or warm-start cache file wait while another run trains it (one writer per
file, so a shared stage trains once), and at most ``--jobs`` runs are in flight.

Every launched run is its own process (``python -m harness.worker``) with a pinned
thread count, whatever the engine: a run's CPU numbers depend on its settings and
on its torch thread count only, so every launcher gives the serial numbers for the
same ``--threads-per-run``. Its stdout and stderr go to ``<row>/<folder>.log``.
A run that fails is retried once, then reported with its log; the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.config import ConfigError

#: the module every launcher runs: one planned run in a fresh process
WORKER_MODULE = "harness.worker"


@dataclass(frozen=True)
class RunJob:
    """One planned run as a launcher ships it: plain JSON-able data, picklable by any engine."""

    label: str
    seed: int
    settings: dict[str, Any]
    run_dir: str
    out_dir: str
    bench: str
    threads: int
    log: str
    paper: dict[str, float] | None = None
    query: str = "sr"
    split: int | None = None
    attempt: int = 1
    #: the folder relative settings (a --data-root) are read from: the bench's own
    cwd: str = "."

    @property
    def name(self) -> str:
        """How progress lines name the run: ``MSE+ID (seed 0)``."""
        where = f"seed {self.seed}" + ("" if self.split is None else f", split {self.split}")
        return f"{self.label} ({where})"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunJob:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class JobOutcome:
    """What came back from one attempt: the worker's exit code and where its log is."""

    returncode: int
    log: str
    seconds: float = 0.0
    host: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class LaunchSettings:
    """What a launcher factory receives.

    ``jobs``: runs in flight at once (``None``: as many as the engine takes);
    ``threads``: torch threads (and CPUs asked for) per run; ``gpus``: GPUs per run
    (0 on CPU); ``options``: the launcher's own options (``-L key=value``), typed;
    ``out_dir``: the bench folder, for an engine's own files.
    """

    jobs: int | None
    threads: int
    gpus: float
    options: Mapping[str, Any]
    out_dir: Path


class Launcher(Protocol):
    """The object a launcher factory returns."""

    def submit(self, job: RunJob) -> Future[JobOutcome]:
        """Start ``job`` (``execute(job)`` somewhere); the future gives its outcome."""
        ...

    def close(self, cancel: bool = False) -> None:
        """Release the engine; ``cancel`` stops what still runs (after Ctrl-C)."""
        ...


# --------------------------------------------------------------------------- one run, one process


def worker_env(threads: int, base: Mapping[str, str] | None = None,
               cuda_visible_devices: str | None = None) -> dict[str, str]:
    """The environment of a run's process: pinned threads, headless plots, unbuffered logs."""
    env = dict(os.environ if base is None else base)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    if cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    return env


def execute(job: RunJob, cuda_visible_devices: str | None = None,
            on_start: Callable[[subprocess.Popen], None] | None = None) -> JobOutcome:
    """Run ``job`` in a fresh Python process and wait for it: what every launcher's task does.

    A fresh process per run (not the engine's pooled worker) is what makes the numbers
    the same on every launcher: nothing of an earlier run's state or thread settings
    leaks in. The log is appended to, so a retry keeps the first attempt's output.
    """
    log = Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    host = socket.gethostname()
    with log.open("a") as handle:
        handle.write(f"=== {job.name}, attempt {job.attempt}, on {host}, {job.threads} thread(s)"
                     + (f", CUDA_VISIBLE_DEVICES={cuda_visible_devices}" if cuda_visible_devices else "")
                     + f", {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, job.to_json()],
                                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=job.cwd if os.path.isdir(job.cwd) else None,
                                env=worker_env(job.threads, cuda_visible_devices=cuda_visible_devices))
        if on_start is not None:
            on_start(proc)
        code = proc.wait()
        handle.write(f"=== exit code {code} after {time.time() - start:.1f}s\n")
    return JobOutcome(returncode=code, log=str(log), seconds=round(time.time() - start, 2), host=host)


# --------------------------------------------------------------------------- the grid


@dataclass
class LaunchReport:
    """How a launched grid went: finished and failed runs (each failure with its log)."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run name -> log path


def parse_launcher_options(declared: Mapping[str, Any], given: Mapping[str, Any], launcher: str) -> dict[str, Any]:
    """``-L key=value`` typed by the launcher's declared options; unknown keys are named."""
    from harness.components import coerce_option
    from harness.registry import suggest

    out = {key: option.default for key, option in declared.items()}
    for key, value in given.items():
        if key not in declared:
            close = suggest(key, list(declared))
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"launcher {launcher!r} has no option {key!r}{hint}; its options: {known}")
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


def shared_files(runs: Sequence[Any], registry: Any, out_dir: Path) -> dict[Path, tuple[str, ...]]:
    """Each run's stage-0 and warm-start cache files, as its trainer will name them.

    Computed on this machine: where a worker would resolve another device (a GPU
    node), it names other files and merely trains its own stage; the cache stays right.
    """
    from harness.cache import cache_files
    from harness.config import resolve_config
    from harness.pretrained import resolve_init
    from harness.run import resolve_device

    out: dict[Path, tuple[str, ...]] = {}
    for run in runs:
        config = resolve_config(dict(run.settings), registry)
        config, device = resolve_device(config, lambda message: None)
        init = resolve_init(config.reid_init, config.reid, registry)
        files = cache_files(config, registry, device, out_dir / ".stage0-cache", init.sha256 if init else None)
        out[run.run_dir] = tuple(str(f) for f in files)
    return out


def _count(total: int, done: int, running: int, failed: int) -> str:
    return f"[{done}/{total} done, {running} running, {failed} failed]"


def launch_runs(
    runs: Sequence[Any],
    make_job: Callable[[Any, int], RunJob],
    launcher: Launcher,
    *,
    shared: Mapping[Path, tuple[str, ...]],
    jobs: int | None,
    total: int,
    already_done: int = 0,
    retries: int = 1,
    progress: Callable[[str], None] = print,
    on_finish: Callable[[LaunchReport], None] | None = None,
) -> LaunchReport:
    """Hand ``runs`` to ``launcher``, at most ``jobs`` at once, and wait for them all.

    A cache file is "busy" while the run that trains it is in flight: runs needing a
    busy file wait, runs with other files start. When its trainer finishes, the file
    exists and the waiting runs load it (no second training, no race on the write);
    when its trainer fails for good, the next run needing it trains it instead.
    """
    pending = list(runs)
    running: dict[Future[JobOutcome], tuple[Any, RunJob]] = {}
    busy: dict[str, Path] = {}  # cache file -> the run training it
    report = LaunchReport()
    done = already_done

    def line(verb: str, job: RunJob, tail: str = "") -> None:
        progress(f"{verb:<9}{job.name}{tail}  {_count(total, done, len(running), len(report.failed))}")

    def submit(run: Any, attempt: int) -> None:
        job = make_job(run, attempt)
        try:
            future = launcher.submit(job)
        except Exception as exc:  # the engine refused it: a failure like any other
            future = Future()
            future.set_exception(exc)
        running[future] = (run, job)
        line("started", job, f" -> {run.run_dir}" + (f" (attempt {attempt})" if attempt > 1 else ""))

    def free(run: Any) -> None:
        for file, owner in list(busy.items()):
            if owner == run.run_dir:
                del busy[file]

    try:
        while pending or running:
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
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                run, job = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the engine lost the task (worker died, job killed)
                    outcome = JobOutcome(returncode=-1, log=job.log, error=f"{type(exc).__name__}: {exc}")
                from harness.bench import is_complete

                if outcome.ok and is_complete(run.run_dir):
                    done += 1
                    free(run)
                    report.finished.append(job.name)
                    line("finished", job, f" in {outcome.seconds:.1f}s" + (f" on {outcome.host}" if outcome.host else ""))
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
