"""The ``ray`` launcher: each run a Ray task asking for its CPUs and GPUs.

On an existing cluster (``-L address=ray://head:10001`` or ``auto``) or on a local
one that ``ray.init()`` starts. Ray places the tasks; the task runs the run in a
child process (:func:`harness.launch.execute`), so a pooled Ray worker's state never
reaches the numbers. Workers need this package installed and the bench folder on a
shared filesystem. Ray is imported only here, when this launcher is chosen.

A local cluster runs its workers at niceness 0 (:data:`LOCAL_SYSTEM_CONFIG`). Ray's default,
15, keeps its own daemons responsive on a shared machine; here the runs are the cluster's
whole work, and at 15 a run and the child process it trains in lose the CPU to any other
process on the machine: on the 2-core CI box a one-row smoke bench took 105 s beside one
other test process and 384 s beside three, against 26 s for the same run under submitit.
A cluster named by ``address`` keeps the settings its operator gave it.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from harness import Option, hookimpl
from harness.errors import HarnessError
from harness.launch import JobOutcome, LaunchSettings, RunJob, execute

#: Ray system settings of a local cluster this launcher starts (see the module docstring)
LOCAL_SYSTEM_CONFIG: dict[str, Any] = {"worker_niceness": 0}


def _task(job_json: str) -> JobOutcome:
    """What a Ray worker runs (a module-level function: workers import it by name)."""
    return execute(RunJob.from_json(job_json))


class RayLauncher:
    def __init__(self, settings: LaunchSettings):
        try:
            import ray  # optional and heavy: only a bench that chose this launcher needs it
        except ImportError as exc:
            raise HarnessError(
                "the ray launcher needs Ray: pip install 'crossres-harness[ray]' "
                "(or pip install 'ray>=2.9')"
            ) from exc
        self.ray = ray
        self.owned = False
        address = settings.options.get("address") or None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = (
                {"address": address}
                if address
                else {
                    # a local cluster sized to the runs asked for, so Ray runs --jobs of them
                    # at once
                    "num_cpus": settings.threads * settings.jobs if settings.jobs else None,
                    "_system_config": LOCAL_SYSTEM_CONFIG,
                }
            )
            try:
                ray.init(
                    **{k: v for k, v in kwargs.items() if v is not None},
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise HarnessError(
                    f"cannot start or reach a Ray cluster ({address or 'local'}): {exc}"
                ) from exc
            self.owned = True
        self.remote = ray.remote(_task).options(
            num_cpus=settings.threads, num_gpus=settings.gpus, max_retries=0
        )
        self.refs: list[Any] = []

    def submit(self, job: RunJob) -> Future[JobOutcome]:
        ref = self.remote.remote(job.to_json())
        self.refs.append(ref)
        return ref.future()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self.refs:
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: S112 - finished or lost already
                    continue
        if self.owned:
            self.ray.shutdown()


@hookimpl
def harness_register_launchers(registry) -> None:
    registry.add(
        "ray",
        RayLauncher,
        "each run a Ray task with its CPU/GPU request (existing or local cluster)",
        options={
            "address": Option(
                "", "Ray cluster address (auto, ray://host:10001); empty: start a local one"
            )
        },
    )
