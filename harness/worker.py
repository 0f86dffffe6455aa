"""One planned bench run in its own process: ``python -m harness.worker JOB_JSON``.

Every launcher runs this (a subprocess, a Ray task's child, a Slurm job's child),
so a run's numbers never depend on which engine ran it. The thread count is pinned
before torch does any work; errors go to the run's log and the exit code says how
it went (0 done, 2 a harness error such as bad settings, 1 anything else).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import torch

from harness.bench import run_row
from harness.errors import HarnessError
from harness.launch import RunJob


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(
            "usage: python -m harness.worker JOB_JSON (written by harness bench's launchers)",
            file=sys.stderr,
        )
        return 2
    # SIGTERM (the launcher's cancel, or its death: harness.launch.die_with_parent) ends the
    # run as Ctrl-C does:
    # its folder records "interrupted" instead of "running" forever
    signal.signal(signal.SIGTERM, _interrupt)
    job = RunJob.from_json(argv[0])
    torch.set_num_threads(job.threads)
    try:
        run_row(
            dict(job.settings),
            job.run_dir,
            job.label,
            job.paper,
            job.query,
            bench=job.bench,
            out_dir=Path(job.out_dir),
            echo=lambda message: print(message, flush=True),
        )
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted (SIGTERM)", file=sys.stderr, flush=True)
        return 130
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
