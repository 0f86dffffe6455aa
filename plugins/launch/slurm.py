"""The ``slurm`` launcher: each run a Slurm job, submitted through submitit.

Partition, time limit, memory and account come from ``-L`` options, CPUs per job
from ``--threads-per-run`` and GPUs from ``--gpus-per-run``. ``-L cluster=local``
runs the very same job objects as local processes (submitit's LocalExecutor), which
is how the tests check this launcher without a cluster. submitit is imported only here.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harness import Option, hookimpl
from harness.errors import HarnessError
from harness.launch import JobOutcome, LaunchSettings, RunJob, execute


class SlurmLauncher:
    def __init__(self, settings: LaunchSettings):
        try:
            import submitit  # optional: only a bench that chose this launcher needs it
        except ImportError as exc:
            raise HarnessError(
                "the slurm launcher needs submitit: pip install 'crossres-harness[slurm]' "
                "(or pip install 'submitit>=1.5')"
            ) from exc
        opts = settings.options
        folder = settings.out_dir / ".submitit" / "%j"
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=opts["cluster"])
        except Exception as exc:
            raise HarnessError(
                f"cannot use submitit's {opts['cluster']!r} executor: {exc}; "
                "-L cluster=local runs the same jobs as local processes"
            ) from exc
        params: dict[str, Any] = {
            "timeout_min": int(opts["time_min"]),
            "cpus_per_task": settings.threads,
            "gpus_per_node": int(round(settings.gpus)),
            "tasks_per_node": 1,
            "nodes": 1,
            "name": "harness-bench",
        }
        if opts["mem_gb"]:
            params["mem_gb"] = opts["mem_gb"]
        if opts["partition"]:
            params["slurm_partition"] = opts["partition"]
        if opts["account"]:
            params["slurm_account"] = opts["account"]
        self.executor.update_parameters(**params)
        # submitit jobs are polled, not futures: one waiting thread per job in flight
        self.waiters = ThreadPoolExecutor(
            max_workers=max(1, settings.jobs or 64), thread_name_prefix="harness-slurm"
        )
        self.jobs: list[Any] = []

    def submit(self, job: RunJob) -> Future[JobOutcome]:
        handle = self.executor.submit(execute, job)
        self.jobs.append(handle)
        return self.waiters.submit(handle.result)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for handle in self.jobs:
                try:
                    handle.cancel(check=False)
                except Exception:  # noqa: S112 - finished already
                    continue
        self.waiters.shutdown(wait=not cancel, cancel_futures=cancel)


@hookimpl
def harness_register_launchers(registry) -> None:
    registry.add(
        "slurm",
        SlurmLauncher,
        "each run a Slurm job through submitit (-L cluster=local: local processes)",
        options={
            "partition": Option("", "Slurm partition (empty: the cluster's default)"),
            "time_min": Option(240, "time limit of each job, in minutes", min=1),
            "mem_gb": Option(0, "memory per job in GB (0: the partition's default)", min=0),
            "account": Option("", "Slurm account to charge (empty: your default)"),
            "cluster": Option(
                "slurm",
                "submitit executor: slurm, or local (same jobs as local "
                "processes), or debug (in this process)",
                choices=("slurm", "local", "debug"),
            ),
        },
    )
