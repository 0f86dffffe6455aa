"""The launcher API: what a launcher plugin imports to run one bench run on an engine.

A launcher is a plugin (``harness_register_launchers``) whose factory takes
:class:`LaunchSettings` and returns a :class:`Launcher`: it hands one :class:`RunJob`
to an existing engine (local processes, a Ray cluster, Slurm) and returns a
:class:`concurrent.futures.Future` of its :class:`JobOutcome`; the engine decides where
and when it runs. What may start, and when, is the scheduler's business
(:mod:`harness.scheduler`), not the launcher's; this module imports nothing of the
bench or of a run, so a plugin importing it pulls in no core machinery.

Every launched run is its own process (``python -m harness.worker``, started by
:func:`execute`) with a pinned thread count, whatever the engine: a run's CPU numbers
depend on its settings and on its torch thread count only, so every launcher gives the
serial numbers for the same ``--threads-per-run``. Its stdout and stderr go to
``<row>/<folder>.log``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: the module every launcher runs: one planned run in a fresh process
WORKER_MODULE = "harness.worker"


@dataclass(frozen=True)
class PlannedRun:
    """One (row, seed, split) of a bench grid, settings fully merged.

    The bench plans these; a :class:`RunJob` is one of them plus how to launch it, so
    the two never drift apart.
    """

    label: str
    seed: int
    settings: dict[str, Any]
    run_dir: Path
    #: the paper's numbers and the dataset they were reported on (``data``)
    paper: dict[str, Any] | None = None
    #: command-line overrides the row's own keys beat (told to the user once)
    ignored_overrides: tuple[str, ...] = field(default=())
    query: str = "sr"
    split: int | None = None

    def __post_init__(self) -> None:
        # JSON and callers hand plain strings and lists; the fields stay one type
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "ignored_overrides", tuple(self.ignored_overrides))

    @property
    def name(self) -> str:
        """How progress lines name the run: ``MSE+ID (seed 0)``."""
        where = f"seed {self.seed}" + ("" if self.split is None else f", split {self.split}")
        return f"{self.label} ({where})"


@dataclass(frozen=True, kw_only=True)
class RunJob(PlannedRun):
    """A planned run as a launcher ships it: plain data, picklable by any engine, JSON for
    the worker.

    ``bench``/``out_dir``: the grid it belongs to (the bench's shared stage-0 cache is under
    ``out_dir``); ``threads``: its pinned torch threads; ``log``: where its output goes;
    ``cwd``: the folder relative settings (a ``--data-root``) are read from, the bench's own.
    """

    out_dir: str
    bench: str
    threads: int
    log: str
    attempt: int = 1
    cwd: str = "."

    @classmethod
    def for_run(cls, run: PlannedRun, **launch: Any) -> RunJob:
        """``run`` with the launch fields (``out_dir``, ``bench``, ``threads``, ``log``, ...)
        added."""
        planned = {f.name: getattr(run, f.name) for f in dataclasses.fields(PlannedRun)}
        return cls(**planned, **launch)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

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


def worker_env(
    threads: int, base: Mapping[str, str] | None = None, cuda_visible_devices: str | None = None
) -> dict[str, str]:
    """The environment of a run's process: pinned threads, headless plots, unbuffered logs."""
    env = dict(os.environ if base is None else base)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    if cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    return env


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once in the parent (never in a freshly forked child)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when this process dies.

    A bench killed with SIGKILL cannot stop its workers; without this they would train on,
    re-parented to init, beside the runs a re-run starts. Armed between fork and exec, so
    it holds during the worker's seconds of imports too; SIGTERM (not SIGKILL) lets a
    worker past its imports record ``interrupted``. A parent that died before it was armed
    is caught by comparing ``getppid``. The child runs only a ready function pointer and
    ``os`` calls (no imports, no lookups: ``preexec_fn`` in a threaded parent must stay
    minimal). Linux only; ``None`` (no preexec) elsewhere. The signal follows the parent
    *thread*: ``execute`` waits for its process in the thread that started it.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    term = int(signal.SIGTERM)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(128 + term)

    return arm


def execute(
    job: RunJob,
    cuda_visible_devices: str | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> JobOutcome:
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
        handle.write(
            f"=== {job.name}, attempt {job.attempt}, on {host}, {job.threads} thread(s)"
            + (f", CUDA_VISIBLE_DEVICES={cuda_visible_devices}" if cuda_visible_devices else "")
            + f", {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        handle.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, job.to_json()],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=job.cwd if os.path.isdir(job.cwd) else None,
            env=worker_env(job.threads, cuda_visible_devices=cuda_visible_devices),
            preexec_fn=die_with_parent(),
        )
        if on_start is not None:
            on_start(proc)
        code = proc.wait()
        handle.write(f"=== exit code {code} after {time.time() - start:.1f}s\n")
    return JobOutcome(
        returncode=code, log=str(log), seconds=round(time.time() - start, 2), host=host
    )
