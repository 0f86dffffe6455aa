"""The ``local`` launcher: N runs at once on this machine, each its own process.

A thread pool (``concurrent.futures``) waits on the run processes; with GPUs, each
run gets its own through ``CUDA_VISIBLE_DEVICES`` and at most as many runs as there
are GPUs run at once; on CPU each run gets ``--threads-per-run`` threads.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from harness import hookimpl
from harness.launch import JobOutcome, LaunchSettings, RunJob, execute


def gpu_slots(visible: str | None, count: int, per_run: int) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` values for concurrent runs, ``per_run`` GPUs each.

    Honours the caller's own ``CUDA_VISIBLE_DEVICES`` (the GPUs this machine lends us);
    GPUs left over after whole slots are unused.
    """
    ids = (
        [v.strip() for v in visible.split(",") if v.strip()]
        if visible
        else [str(i) for i in range(count)]
    )
    per_run = max(1, per_run)
    return [",".join(ids[i : i + per_run]) for i in range(0, len(ids) - per_run + 1, per_run)]


class LocalLauncher:
    def __init__(self, settings: LaunchSettings):
        slots: list[str] = []
        if settings.gpus > 0:
            slots = gpu_slots(
                os.environ.get("CUDA_VISIBLE_DEVICES"),
                torch.cuda.device_count(),
                int(round(settings.gpus)),
            )
        workers = settings.jobs or 1
        if slots:
            workers = min(workers, len(slots))
        self.slots: queue.Queue[str] | None = None
        if slots:
            self.slots = queue.Queue()
            for slot in slots:
                self.slots.put(slot)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="harness-run")
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def submit(self, job: RunJob) -> Future[JobOutcome]:
        return self.pool.submit(self._run, job)

    def _run(self, job: RunJob) -> JobOutcome:
        slot = self.slots.get() if self.slots is not None else None
        proc: list[subprocess.Popen] = []

        def started(p: subprocess.Popen) -> None:
            proc.append(p)
            with self.lock:
                self.procs.add(p)

        try:
            return execute(job, slot, on_start=started)
        finally:
            with self.lock:
                self.procs.difference_update(proc)
            if slot is not None and self.slots is not None:
                self.slots.put(slot)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            with self.lock:
                for p in self.procs:
                    p.terminate()
        self.pool.shutdown(wait=True, cancel_futures=cancel)


@hookimpl
def harness_register_launchers(registry) -> None:
    registry.add(
        "local",
        LocalLauncher,
        "runs on this machine, --jobs at once (one GPU each with GPUs), each its own process",
    )
