"""Progress a person can follow, on a terminal and in a log file alike.

On a terminal (stderr a TTY) each stage draws its tqdm bar. Where stdout is
not a terminal (``make demo > demo.log``, a Slurm job, CI), nothing would be
drawn there, so each log step also prints one plain line to stdout: the stage,
iteration / total, images per second, the stage's ETA and the run's. The run's
ETA counts the iterations of the stages still to come at the current stage's
pace (a rough figure, marked ``~``: a later stage may be slower per iteration).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """One stage's progress: a tqdm bar on a terminal, plain lines where output is a file.

    ``later``: iterations of the stages after this one (for the run's ETA);
    ``batch``: images per iteration (for images/s); ``enabled``: False on ranks > 0.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        initial: int = 0,
        *,
        later: int = 0,
        batch: int = 1,
        enabled: bool = True,
        stream: Any = None,
    ):
        self.total, self.desc, self.done = total, desc, initial
        self.later, self.batch = later, batch
        self.stream = stream if stream is not None else sys.stdout
        self.plain = enabled and not _is_tty(self.stream)
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            dynamic_ncols=True,
            leave=False,
            disable=None if enabled else True,
        )
        self.start, self.start_done = time.monotonic(), initial

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)

    def set_postfix(self, values: dict[str, str], refresh: bool = False) -> None:
        """Called on log steps: the bar's loss terms, and in a log file one progress line."""
        self.bar.set_postfix(values, refresh=refresh)
        if self.plain:
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        steps = self.done - self.start_done
        per_step = elapsed / steps if steps > 0 else float("nan")
        text = f"{self.desc}: {self.done}/{self.total}"
        if steps > 0 and elapsed > 0:
            stage_left = (self.total - self.done) * per_step
            run_left = stage_left + self.later * per_step
            rate = self.batch * steps / elapsed
            text += (
                f"  {rate:.1f} img/s  stage ETA {_duration(stage_left)}"
                f"  run ETA ~{_duration(run_left)}"
            )
        return text

    def close(self) -> None:
        self.bar.close()


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
