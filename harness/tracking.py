"""A run's experiment trackers: one fan-out from the run to every ``--tracker`` plugin.

Why a fan-out: the run calls four things (open, a log line, the results, close) and never
knows which trackers listen, so TensorBoard, MLflow and a third party's W&B plugin all
come through ``harness_register_trackers`` alike (:mod:`harness.hookspecs`).

The rules every tracker gets from here, whichever plugin it is:

* **Fail early.** Every tracker is opened before data is read or a model trained; a
  missing library (``requires``), a bad ``--tracker-uri`` or an unknown name fails the
  run with one line naming the tracker.
* **Never change a result.** A tracker that fails after it opened is dropped with one
  warning; the run, its files and its numbers go on as if it had never been asked for.
* **Metric names.** A log line's numbers are logged as ``<stage>/<term>`` at step
  ``iteration`` (``reid/ID/id``, ``sr/G/pixel``): each stage counts its own iterations,
  as ``log.jsonl`` does. Final metrics are ``test/<kind>/<metric>`` (and
  ``test/<kind>/x<ratio>/<metric>``, ``val/...``) at step 0.
* **Resume continues.** A resumed run's trackers skip every log line at or before the
  last one the interrupted attempt logged (read from ``log.jsonl`` before the resume
  trims it), so no step is logged twice; each tracker reopens its own run (TensorBoard
  appends to ``RUN/tb/``; MLflow reopens the run whose id it left in ``RUN/mlflow.json``).
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.checkpoint import STAGE_ORDER
from harness.errors import HarnessError
from harness.registrars import TrackerEntry

#: the run folder's files a tracker receives as artefacts, where the run wrote them
ARTEFACTS = ("cmc.png", "sr_samples.png", "ranks.png", "ranks.json")
#: log-line fields that are not measurements
NOT_METRICS = frozenset({"stage", "iteration", "time"})
#: result fields that are not metrics of their own (curves, intervals, bootstrap facts)
NOT_RESULTS = frozenset({"cmc", "cmc_std", "bootstrap", "per_ratio"})


@dataclass(frozen=True)
class TrackerSettings:
    """What a tracker factory receives.

    run_dir: the run folder (a tracker writing files writes them here, or beside it).
    name: the run's name: the bench row's label and seed, else the folder's name.
    group: the bench spec's name where a bench started the run (an MLflow experiment),
        else ``None``.
    uri: ``--tracker-uri`` (``None``: the tracker's default, a local store).
    resume: the run continues an interrupted attempt: reopen its tracked run.
    """

    run_dir: Path
    name: str
    group: str | None = None
    uri: str | None = None
    resume: bool = False


class Tracker(Protocol):
    """What a tracker factory returns (see ``harness_register_trackers``)."""

    def log_params(self, params: Mapping[str, str]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def close(self, status: str) -> None: ...


Echo = Callable[[str], None]


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as ``{"protocol.ratios": "2.0,3.0,4.0", ...}``: trackers take flat
    string parameters."""
    out: dict[str, str] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = "" if value is None else str(value)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def record_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """A log line's numbers (loss terms, diagnostics) as ``<stage>/<name>``."""
    stage = str(record.get("stage", "run"))
    out = {}
    for key, value in record.items():
        number = _number(value)
        if key not in NOT_METRICS and number is not None:
            out[f"{stage}/{key}"] = number
    return out


def _results(block: Mapping[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, result in (block.get("queries") or {}).items():
        for key, value in result.items():
            number = _number(value)
            if key not in NOT_RESULTS and number is not None:
                out[f"{prefix}/{kind}/{key}"] = number
        for ratio, sub in (result.get("per_ratio") or {}).items():
            for key, value in sub.items():
                number = _number(value)
                if key not in NOT_RESULTS and number is not None:
                    out[f"{prefix}/{kind}/x{ratio}/{key}"] = number
    return out


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The test metrics of every query kind (overall and per ratio), and the ``val`` block's
    where the run has one, as flat names."""
    out = _results(metrics, "test")
    if isinstance(metrics.get("val"), Mapping):
        out.update(_results(metrics["val"], "val"))
    return out


def _position(record: Mapping[str, Any]) -> tuple[int, int]:
    return (STAGE_ORDER.get(str(record.get("stage")), -1), int(record.get("iteration", 0)))


def last_logged(log_path: Path) -> tuple[int, int] | None:
    """The (stage, iteration) of the last line in ``log.jsonl``: what trackers already got."""
    if not log_path.is_file():
        return None
    last = None
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by the crash
        if isinstance(record, dict) and "stage" in record:
            try:
                last = max(last or (-1, -1), _position(record))
            except (ValueError, TypeError):
                continue  # a stray line (the resume's trim names and drops it)
    return last


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RunTrackers:
    """The trackers of one run; empty (every call a no-op) until :meth:`open`."""

    def __init__(self, echo: Echo = print) -> None:
        self.echo = echo
        self.open_trackers: list[tuple[str, Tracker]] = []
        self.resume_after: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.open_trackers)

    def open(
        self,
        names: Sequence[str],
        settings: TrackerSettings,
        registry: Any,
        log_path: Path | None = None,
    ) -> None:
        """Open every named tracker now; one failing closes those opened and raises one line."""
        if not names:
            return
        if settings.resume and log_path is not None:
            self.resume_after = last_logged(log_path)
        for name in names:
            entry = registry.lookup("tracker", name)
            try:
                self.open_trackers.append((name, self._make(entry, settings)))
            except BaseException as exc:
                self.close("failed")
                if isinstance(exc, HarnessError):
                    raise
                raise HarnessError(
                    f"tracker {name!r} could not start: {type(exc).__name__}: {_first_line(exc)}"
                ) from exc

    @staticmethod
    def _make(entry: Any, settings: TrackerSettings) -> Tracker:
        if isinstance(entry, TrackerEntry) and entry.requires:
            if importlib.util.find_spec(entry.requires) is None:
                hint = f" ({entry.install_hint})" if entry.install_hint else ""
                raise HarnessError(
                    f"tracker {entry.name!r} needs the {entry.requires} package, "
                    f"which is not installed{hint}"
                )
        return entry.factory(settings)

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        """Call every tracker; one that raises is dropped with a warning, the run goes on."""
        for name, tracker in list(self.open_trackers):
            try:
                call(tracker)
            except Exception as exc:  # noqa: BLE001 - a tracker never fails a run once it runs
                self.open_trackers.remove((name, tracker))
                self.echo(
                    f"warning: tracker {name!r} failed to {what} and is dropped for the rest "
                    f"of this run: {type(exc).__name__}: {_first_line(exc)}"
                )

    def log_record(self, record: Mapping[str, Any]) -> None:
        """One ``log.jsonl`` line: its loss terms and diagnostics, at its stage's iteration."""
        if not self.open_trackers or "stage" not in record:
            return
        if self.resume_after is not None and _position(record) <= self.resume_after:
            return  # the interrupted attempt logged it already
        metrics = record_metrics(record)
        if metrics:
            step = int(record.get("iteration", 0))
            self._each("log metrics", lambda t: t.log_metrics(metrics, step))

    def log_config(self, doc: Mapping[str, Any]) -> None:
        """The resolved config (``config.json``), flattened, as parameters."""
        if self.open_trackers:
            params = flatten(doc)
            self._each("log parameters", lambda t: t.log_params(params))

    def log_results(self, metrics: Mapping[str, Any], run_dir: Path) -> None:
        """The final metrics at step 0, then the run's figures and ranked lists as artefacts."""
        if not self.open_trackers:
            return
        final = final_metrics(metrics)
        if final:
            self._each("log the final metrics", lambda t: t.log_metrics(final, 0))
        for path in artefacts(run_dir):
            self._each(f"log {path.name}", lambda t, path=path: t.log_artifact(path))

    def close(self, status: str) -> None:
        """Close every tracker with the run's status; closing twice is a no-op."""
        trackers, self.open_trackers = self.open_trackers, []
        for name, tracker in trackers:
            try:
                tracker.close(status)
            except Exception as exc:  # noqa: BLE001 - the run's own outcome stands
                self.echo(f"warning: tracker {name!r} failed to close: {_first_line(exc)}")


def artefacts(run_dir: Path, names: Iterable[str] = ARTEFACTS) -> list[Path]:
    """The run's figures and ranked lists that exist (sr_samples.png needs an SR query,
    ranks.png a dataset whose images may be shown)."""
    return [run_dir / n for n in names if (run_dir / n).is_file()]


def run_name(run_dir: Path, extra: Mapping[str, Any], seed: int) -> str:
    """A bench row's label and seed (``intact s0``), else the run folder's name."""
    label = extra.get("label")
    return f"{label} s{seed}" if label else run_dir.name
