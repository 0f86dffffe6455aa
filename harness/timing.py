"""Where a run's time goes: wall seconds per stage and, in training, the share spent on data.

Why: without it nobody knows whether a slow run spends its time in stage 0, in stage 1, in
evaluation or in making batches, so nobody knows what to make faster. One object per run
(:class:`RunTiming`) records, in order, each stage it ran:

* training stages (``reid``, ``warmup``, ``critic``, ``sr``: the names of ``log.jsonl`` and the
  checkpoints) are timed by :meth:`RunTiming.stage` around each stage; inside it,
  :meth:`RunTiming.wait` times each call that makes the next batch (indexing the in-memory
  images, augmentation, the LR version): the time the loop is blocked on data;
* the parts around training (``setup``: data preparation and models; ``evaluation``;
  ``report``) are laps, :meth:`RunTiming.lap`: the seconds since the previous stage or lap
  ended, so the caller marks an end without wrapping code in a block.

A stage loaded from a cache (:meth:`RunTiming.cached`) records its small load time and
``cached: true``; a stage that did no work (no batch, no cache) is left out.

A resumed run does not pretend: every number is this process's seconds only (``scope: "this
process"``), the stage and iteration it resumed at are recorded (``resumed_at``), and stages
finished by an earlier process are absent: the earlier process never wrote its timing (it
stopped before ``metrics.json`` was complete), so no total would be true.

On a GPU the batch time is host time: with asynchronous kernels the host may also be blocked
elsewhere (at the next synchronisation), so ``data_share`` is what the host spent making
batches, an upper bound on what a background loader could hide.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["RunTiming"]


class RunTiming:
    """Wall seconds per stage of one run, in this process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.started = clock()
        self.mark = self.started  # where the next lap starts: the end of the last stage or lap
        self.stages: dict[str, dict[str, Any]] = {}
        self.resumed_at: dict[str, Any] | None = None
        self._current: dict[str, Any] | None = None

    def lap(self, name: str) -> float:
        """Record the seconds since the last stage or lap ended as stage ``name``; returns them."""
        now = self.clock()
        seconds = now - self.mark
        self.mark = now
        entry = self.stages.setdefault(name, {"wall_s": 0.0})
        entry["wall_s"] += seconds
        return seconds

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time one training stage; batches made through :meth:`wait` inside count as its data
        time. The stage is recorded only if it made a batch or was loaded from a cache."""
        entry: dict[str, Any] = {"wall_s": 0.0, "batches": 0, "data_wait_s": 0.0}
        outer, self._current = self._current, entry
        t0 = self.clock()
        try:
            yield entry
        finally:
            self._current = outer
            self.mark = self.clock()
            entry["wall_s"] = self.mark - t0
            if entry["batches"] or entry.get("cached"):
                self.stages[name] = entry

    def wait(self, make_batch: Callable[[], T]) -> T:
        """``make_batch()``, its seconds counted as the current stage's time blocked on data."""
        t0 = self.clock()
        batch = make_batch()
        if self._current is not None:
            self._current["data_wait_s"] += self.clock() - t0
            self._current["batches"] += 1
        return batch

    @contextlib.contextmanager
    def aside(self, name: str) -> Iterator[None]:
        """Time work done inside a stage that is not the stage's own (a validation point in
        stage 1): its seconds are recorded in the stage as ``<name>_s``, still part of its wall
        time, so a stage's cost with and without it can be told apart."""
        t0 = self.clock()
        try:
            yield
        finally:
            if self._current is not None:
                key = f"{name}_s"
                self._current[key] = self._current.get(key, 0.0) + self.clock() - t0

    def cached(self) -> None:
        """Say that the current stage was loaded from a cache instead of trained."""
        if self._current is not None:
            self._current["cached"] = True

    def record(self) -> dict[str, Any]:
        """The ``timing`` block of ``metrics.json``: stages in the order they ran, seconds
        rounded to milliseconds, each training stage's ``data_share`` (data wait / wall)."""
        stages = {}
        for name, entry in self.stages.items():
            out: dict[str, Any] = {"wall_s": round(entry["wall_s"], 3)}
            if "batches" in entry:
                out["batches"] = entry["batches"]
                out["data_wait_s"] = round(entry["data_wait_s"], 3)
                share = entry["data_wait_s"] / entry["wall_s"] if entry["wall_s"] > 0 else 0.0
                out["data_share"] = round(share, 4)
            for key, value in entry.items():  # work set aside inside the stage (aside())
                if key.endswith("_s") and key not in ("wall_s", "data_wait_s"):
                    out[key] = round(value, 3)
            if entry.get("cached"):
                out["cached"] = True
            stages[name] = out
        return {
            "order": list(stages),  # the order they ran in (JSON files sort their keys)
            "scope": "this process",
            "resumed_at": self.resumed_at,
            "total_s": round(self.clock() - self.started, 3),
            "stages": stages,
        }
