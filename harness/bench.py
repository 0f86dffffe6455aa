"""Benchmark specs: a TOML grid of runs (e.g. the paper's ablations), run resumably.

A spec names ``[defaults]`` (RunConfig fields, ``options`` and ``protocol``
tables) and a list of ``[[runs]]``, each with a unique ``label``, its own
settings and optionally the ``paper``'s Rank-1/5/10 (in %) for that row.

Precedence, weakest first: spec ``[defaults]`` < command-line overrides <
per-run keys. The command line can move a whole grid to other data or another
preset, but cannot undo what defines a row (its ``reg``, its ``sr``); nested
``options``/``protocol`` tables merge key by key with the same precedence.

Seeds: the k-th seed of a row sets the RunConfig field ``seed`` to base + k
(base: the merged ``seed``, 0 by default). ``protocol.seed`` is not touched, so
every seed of every row sees the same MLR split (query ratios, LR cameras) and
the spread over seeds measures training noise only.

Splits: ``splits = N`` (or ``--splits N``) repeats every (row, seed) on the dataset's
seeded train/test splits 0..N-1 (the dataset option ``split``; VIPeR's 10 splits), so a
row's spread covers both training noise and the choice of identities.

Presets: ``[presets.<name>]`` tables hold settings that apply only when the run's
preset is ``<name>`` (e.g. a CPU-sized schedule for CI-sized checks); they sit between
``[defaults]`` and the command line.

Reference: ``reference = "<label>"`` (top level) names the row every other row's paired
Δ is printed against in the leaderboard (:mod:`harness.paired`); without it, the best
Rank-1 row.

Query: a row may report another query kind than the SR query with ``query = "hr"`` or
``query = "bicubic"`` (the upper bound and the no-SR baseline of a leaderboard).

A run whose folder already holds ``metrics.json`` with ``status: complete`` is
skipped, so an interrupted bench continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness import leaderboard as lb
from harness import scheduler
from harness.config import ConfigError, ProtocolConfig, RunConfig
from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.launch import LaunchSettings, PlannedRun, RunJob
from harness.presets import default_preset
from harness.publish import write_leaderboard
from harness.registry import get_registry
from harness.resolve import resolve_config
from harness.run import run_experiment
from harness.rundir import (
    SETTING_TABLES,
    check_run_dir,
    is_complete,
    is_started,
    run_log,
    stale_settings,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (tomli is a declared dependency there)
    import tomli as tomllib

RunFn = Callable[[dict[str, Any], Path, str, "dict[str, float] | None", str], None]

TOP_LEVEL_KEYS = (
    "name",
    "description",
    "reference",
    "defaults",
    "presets",
    "splits",
    "runs",
    "tune",
)
QUERY_KINDS = ("sr", "bicubic", "hr")
ROW_KEYS = ("label", "paper", "query", "tune")
RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig)) - {"options", "protocol"}
PROTOCOL_FIELDS = frozenset(f.name for f in dataclasses.fields(ProtocolConfig))
PAPER_KEYS = ("rank1", "rank5", "rank10", "mAP")
NESTED = SETTING_TABLES  # merged key by key, as a run folder compares them


@dataclass(frozen=True)
class RunSpec:
    """One row of a spec: its label, its own settings, the paper's numbers (in %)."""

    label: str
    settings: dict[str, Any]
    paper: dict[str, float] | None = None
    query: str = "sr"
    #: the dataset ``paper`` was reported on (the row's own ``data``, else ``[defaults] data``):
    #: a command line moving the row elsewhere leaves its paper column empty
    paper_data: str | None = None
    #: the row's ``tune`` table (``space``: narrower search ranges for ``harness tune``)
    tune: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchSpec:
    name: str
    description: str
    defaults: dict[str, Any]
    runs: tuple[RunSpec, ...]
    path: Path | None = None
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    splits: int = 1
    #: the ``[tune]`` table: ``trials``, ``metric`` and ``space`` for ``harness tune``
    tune: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None

    @property
    def paper(self) -> dict[str, dict[str, float]]:
        """Label -> the paper's numbers, for rows that name them."""
        return {r.label: r.paper for r in self.runs if r.paper}

    @property
    def paper_on_data(self) -> dict[str, dict[str, Any]]:
        """Label -> the paper's numbers with the dataset they were reported on (``data``), as
        the leaderboard takes them: beside runs on that dataset only."""
        return {r.label: paper_record(r) for r in self.runs if r.paper}


def paper_record(row: RunSpec) -> dict[str, Any] | None:
    """What a run of ``row`` records as its paper numbers: the numbers and, where the spec
    names it, the dataset they were reported on (the leaderboard shows them only beside runs
    on that dataset)."""
    if not row.paper:
        return None
    return {**row.paper, **({"data": row.paper_data} if row.paper_data else {})}


# --------------------------------------------------------------------------- loading


def slug(label: str) -> str:
    """A folder name for a label: "MSE+ID+GAN (INTACT)" -> "mse-id-gan-intact"."""
    text = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return text or "run"


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_settings(where: str, settings: Mapping[str, Any], allow: frozenset[str]) -> None:
    for key, value in settings.items():
        if key in NESTED:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: {key} must be a table, got {value!r}")
            if key == "protocol":
                for pkey in value:
                    if pkey not in PROTOCOL_FIELDS:
                        raise ConfigError(
                            f"{where}: unknown protocol setting {pkey!r}"
                            f"{_suggest(pkey, PROTOCOL_FIELDS)}; "
                            f"known: {', '.join(sorted(PROTOCOL_FIELDS))}"
                        )
            continue
        if key not in RUN_FIELDS and key not in allow:
            hint = (
                f" (a protocol setting: protocol.{key}, or a [protocol] table in a spec)"
                if key in PROTOCOL_FIELDS
                else _suggest(key, RUN_FIELDS | allow)
            )
            raise ConfigError(
                f"{where}: unknown setting {key!r}{hint}; "
                "settings are RunConfig fields (see `harness run --help`) "
                "or options/protocol tables"
            )


def _check_paper(where: str, paper: Any) -> dict[str, float]:
    if not isinstance(paper, Mapping):
        raise ConfigError(f"{where}: paper must be a table like {{ rank1 = 88.1 }}, got {paper!r}")
    out = {}
    for key, value in paper.items():
        if key not in PAPER_KEYS:
            raise ConfigError(
                f"{where}: paper has unknown key {key!r}; allowed: {', '.join(PAPER_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ConfigError(
                f"{where}: paper.{key} must be a percentage in [0, 100], got {value!r}"
            )
        out[key] = float(value)
    return out


def parse_spec(
    data: Mapping[str, Any], source: str = "spec", path: Path | None = None
) -> BenchSpec:
    """Validate a spec already read from TOML; every message names the file and the row."""
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        hints = "".join(_suggest(k, TOP_LEVEL_KEYS) for k in unknown)
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}{hints}; "
            f"allowed: {', '.join(TOP_LEVEL_KEYS)}"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f'{source}: needs a name = "..." (it names the output folder)')
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or ".." in name:
        raise ConfigError(
            f"{source}: name {name!r} must be a plain folder name (letters, digits, '.', '_', '-'; "
            "no '/' or '..'): it names the bench's output folder under runs/bench/"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description must be a string")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{source}: [defaults] must be a table")
    _check_settings(f"{source} [defaults]", defaults, frozenset())
    presets = data.get("presets", {})
    if not isinstance(presets, Mapping) or not all(
        isinstance(v, Mapping) for v in presets.values()
    ):
        raise ConfigError(f"{source}: [presets] must hold tables like [presets.cpu]")
    for preset_name, settings in presets.items():
        _check_settings(f"{source} [presets.{preset_name}]", settings, frozenset())
        if "preset" in settings:
            raise ConfigError(f"{source} [presets.{preset_name}]: cannot set preset itself")
    splits = data.get("splits", 1)
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ConfigError(f"{source}: splits must be a positive integer, got {splits!r}")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{source}: needs at least one [[runs]] table")

    parsed: list[RunSpec] = []
    seen_labels: dict[str, int] = {}
    seen_slugs: dict[str, str] = {}
    for i, run in enumerate(runs, start=1):
        if not isinstance(run, Mapping):
            raise ConfigError(f"{source}: runs[{i}] must be a table")
        label = run.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f'{source}: runs[{i}] has no label; every row needs label = "..."')
        where = f"{source}: run {label!r}"
        if label in seen_labels:
            raise ConfigError(
                f"{source}: duplicate label {label!r} (runs {seen_labels[label]} and {i})"
            )
        seen_labels[label] = i
        folder = slug(label)
        if folder in seen_slugs:
            raise ConfigError(
                f"{source}: labels {seen_slugs[folder]!r} and {label!r} share the folder name "
                f"{folder!r}; make them differ in letters or digits"
            )
        seen_slugs[folder] = label
        settings = {k: v for k, v in run.items() if k not in ROW_KEYS}
        _check_settings(where, settings, frozenset())
        paper = _check_paper(where, run["paper"]) if "paper" in run else None
        paper_data = settings.get("data", defaults.get("data")) if paper else None
        query = run.get("query", "sr")
        if query not in QUERY_KINDS:
            raise ConfigError(
                f"{where}: query must be one of {', '.join(QUERY_KINDS)}, got {query!r}"
            )
        parsed.append(
            RunSpec(
                label=label,
                settings=dict(settings),
                paper=paper,
                query=query,
                paper_data=paper_data if isinstance(paper_data, str) else None,
                tune=_check_tune(f"{where}: tune", run.get("tune", {}), ("space",)),
            )
        )
    reference = data.get("reference")
    if reference is not None and (not isinstance(reference, str) or reference not in seen_labels):
        raise ConfigError(
            f"{source}: reference = {reference!r} names no row"
            f"{_suggest(str(reference), seen_labels)}; it must be one of the rows' labels"
        )
    return BenchSpec(
        name=name.strip(),
        description=description.strip(),
        defaults=dict(defaults),
        runs=tuple(parsed),
        path=path,
        presets={k: dict(v) for k, v in presets.items()},
        splits=splits,
        tune=_check_tune(f"{source} [tune]", data.get("tune", {}), TUNE_KEYS),
        reference=reference,
    )


#: what a spec's ``[tune]`` table may hold (a row's ``tune`` table: only ``space``)
TUNE_KEYS = ("trials", "metric", "space")


def _check_tune(where: str, table: Any, allowed: Sequence[str]) -> dict[str, Any]:
    """A ``tune`` table's shape; its values are checked against the declared spaces when a
    tune resolves each row (:mod:`harness.tune`)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    space = table.get("space", {})
    if not isinstance(space, Mapping):
        raise ConfigError(f"{where}: space must be a table like {{ lambda_a = [1e-5, 1e-3] }}")
    for key, bounds in space.items():  # a row's options narrow them; a scalar never is a space
        if not isinstance(bounds, list) or not bounds:
            raise ConfigError(
                f"{where}: space.{key} must be [low, high] or a list of choices, got {bounds!r}"
            )
    trials = table.get("trials", 1)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        # 2.5 trials would run 2 and say the budget was met
        raise ConfigError(f"{where}: trials must be a whole number >= 1, got {trials!r}")
    return json.loads(json.dumps(dict(table)))


def load_spec(path: str | Path) -> BenchSpec:
    """Read and validate a spec TOML; errors are :class:`harness.ConfigError` naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"bench spec {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"bench spec {path} is a folder; give the .toml file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_spec(data, str(path), path)


# --------------------------------------------------------------------------- planning


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; ``options`` and ``protocol`` merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in NESTED and isinstance(value, Mapping):
                out[key] = {**out.get(key, {}), **value}
            else:
                out[key] = value
    return out


def _shadowed(overrides: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[str, ...]:
    """Command-line overrides a row's own keys take precedence over (told to the user)."""
    out = []
    for key, value in overrides.items():
        if key in NESTED and isinstance(value, Mapping):
            out += [f"{key}.{k}" for k in value if k in run.get(key, {})]
        elif key in run:
            out.append(key)
    return tuple(out)


def select_rows(spec: BenchSpec, labels: Sequence[str]) -> BenchSpec:
    """The spec with only the rows named (by label, in spec order); unknown labels are named."""
    if not labels:
        return spec
    known = [r.label for r in spec.runs]
    unknown = [label for label in labels if label not in known]
    if unknown:
        hints = "".join(_suggest(u, known) for u in unknown)
        raise ConfigError(
            f"{spec.name}: no row labelled {', '.join(map(repr, unknown))}{hints}; "
            f"rows: {', '.join(map(repr, known))}"
        )
    return dataclasses.replace(spec, runs=tuple(r for r in spec.runs if r.label in labels))


def effective_preset(merged: Mapping[str, Any]) -> str:
    """The preset a run will use: its own, else this machine's default."""
    return str(merged.get("preset") or default_preset())


def expand(
    spec: BenchSpec,
    overrides: Mapping[str, Any] | None = None,
    seeds: int = 1,
    out_dir: str | Path | None = None,
    splits: int | None = None,
) -> list[PlannedRun]:
    """Every (row, seed) in spec order, seeds innermost; with several splits, split by split.

    run_dir = out_dir/<slug>/seed<s> with one split, out_dir/<slug>/seed<s>-split<j> with more,
    where s is the run's seed (the spec's or ``--set seed`` base, counting up with ``--seeds``), so
    benches of other seeds can share one output folder.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    splits = spec.splits if splits is None else splits
    if splits < 1:
        raise ConfigError(f"--splits must be >= 1, got {splits}")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_settings("command-line overrides", overrides, frozenset())
    out_dir = Path(out_dir) if out_dir is not None else Path("runs") / "bench" / spec.name
    planned = []
    for run in spec.runs:
        preset = effective_preset(_merge(spec.defaults, overrides, run.settings))
        merged = _merge(spec.defaults, spec.presets.get(preset, {}), overrides, run.settings)
        base = merged.get("seed", 0)
        if isinstance(base, bool) or not isinstance(base, int):
            raise ConfigError(f"run {run.label!r}: seed must be an integer, got {base!r}")
        shadowed = _shadowed(overrides, run.settings)
        for k in range(seeds):
            for j in range(splits):
                settings = json.loads(json.dumps(merged))  # a deep copy each run may own
                settings["seed"] = base + k
                folder = f"seed{base + k}"  # the seed itself: `--set seed=1` writes seed1/
                if splits > 1:
                    settings.setdefault("options", {})["split"] = j
                    folder += f"-split{j}"
                planned.append(
                    PlannedRun(
                        label=run.label,
                        seed=base + k,
                        settings=settings,
                        run_dir=out_dir / slug(run.label) / folder,
                        paper=paper_record(run),
                        ignored_overrides=shadowed,
                        query=run.query,
                        split=j if splits > 1 else None,
                    )
                )
    if splits > 1:  # whole splits first: a stopped bench leaves every row on the same splits
        planned.sort(key=lambda r: r.split or 0)
    return planned


# --------------------------------------------------------------------------- running


def check_plan(plan: Sequence[PlannedRun], registry: Any = None) -> None:
    """Resolve every planned run's settings before the first one trains, so a typo in the
    last row of a grid fails in a second, not after hours of the rows above it."""
    registry = registry or get_registry()
    for run in plan:
        try:
            resolve_config(dict(run.settings), registry)
        except HarnessError as exc:
            raise ConfigError(f"row {run.label!r} (seed {run.seed}): {exc}") from exc


def run_row(
    settings: dict,
    run_dir: Path,
    label: str,
    paper: dict | None,
    query: str,
    *,
    bench: str,
    out_dir: Path,
    registry: Any = None,
    echo: Callable[[str], None] = print,
) -> None:
    """One planned run: resolve its settings, then train (or resume) and evaluate it.

    ``bench`` (the spec's name) is recorded with the run; ``out_dir`` holds the grid's
    shared stage-0 cache. The serial bench and a launched run's worker both come here,
    so a run is the same whichever way it was started.
    """
    registry = registry or get_registry()
    if settings.get("trackers") and not settings.get("tracker_uri"):
        # one local store per bench: each row and seed a run in the spec's MLflow experiment
        settings = {**settings, "tracker_uri": str((out_dir / "mlruns").resolve())}
    config = resolve_config(settings, registry)
    echo(f"== {label} (seed {config.seed}) -> {run_dir}")
    run_experiment(
        config,
        run_dir,
        registry,
        resume=is_started(run_dir),
        echo=echo,
        extra={"label": label, "paper": paper, "bench": bench, "query": query},
        stage0_cache_dir=out_dir / ".stage0-cache",
    )


def in_process(
    bench: str, out_dir: Path, registry: Any = None, echo: Callable[[str], None] = print
) -> RunFn:
    """The run function of a grid run in this process: :func:`run_row` with the grid's name
    and its shared stage caches under ``out_dir`` (a bench's rows, a tune's trials)."""

    def run_fn(settings: dict, run_dir: Path, label: str, paper: dict | None, query: str) -> None:
        run_row(
            settings,
            run_dir,
            label,
            paper,
            query,
            bench=bench,
            out_dir=out_dir,
            registry=registry,
            echo=echo,
        )

    return run_fn


def write_bench_leaderboard(
    spec: BenchSpec, out_dir: str | Path, failed: Mapping[str, str] | None = None
) -> list[Path]:
    """The leaderboard of every seed folder of the spec's rows (unfinished ones are listed).

    ``failed`` (run name -> its log) adds a "Failed runs" section: a launched grid
    writes its leaderboard from what finished and names what did not.
    """
    out_dir = Path(out_dir)
    dirs = [
        d
        for folder in (out_dir / slug(r.label) for r in spec.runs)
        if folder.is_dir()
        for d in sorted(folder.glob("seed*"), key=_seed_order)
        if d.is_dir()
    ]
    groups = lb.group(lb.collect(dirs))
    lb.mark_reference(groups, spec.reference)  # Δ is to it; without one, to the best row
    title = spec.name + (f": {spec.description}" if spec.description else "")
    paths = write_leaderboard(out_dir, groups, paper=spec.paper_on_data, title=title)
    if failed:
        md = out_dir / "leaderboard.md"
        lines = [f"- {name}: failed twice; log {log}" for name, log in sorted(failed.items())]
        atomic_write_text(
            md, md.read_text().rstrip("\n") + "\n\n## Failed runs\n\n" + "\n".join(lines) + "\n"
        )
        board = out_dir / "leaderboard.json"
        doc = json.loads(board.read_text())
        doc["failed"] = dict(failed)
        atomic_write_text(board, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return paths


class BenchFailed(HarnessError):
    """Some runs of a launched grid failed twice; the leaderboard holds the others."""

    def __init__(self, failed: Mapping[str, str]):
        self.failed = dict(failed)
        listing = "; ".join(f"{name}: log {log}" for name, log in sorted(self.failed.items()))
        super().__init__(
            f"{len(self.failed)} run(s) failed after a retry ({listing}); "
            "rerun the same command to retry only them"
        )


def _seed_order(path: Path) -> tuple[int, int, str]:
    """seed2 < seed10; seed0-split2 < seed0-split10."""
    match = re.fullmatch(r"seed(\d+)(?:-split(\d+))?", path.name)
    if not match:
        return (1 << 30, 0, path.name)
    return (int(match.group(1)), int(match.group(2) or 0), path.name)


def run_bench(
    spec: BenchSpec,
    out_dir: str | Path,
    run_fn: RunFn | None = None,
    *,
    seeds: int = 1,
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = print,
    splits: int | None = None,
    registry: Any = None,
    validate: bool | None = None,
    launcher: str | None = None,
    jobs: int | None = None,
    threads_per_run: int | None = None,
    gpus_per_run: float | None = None,
    launcher_options: Mapping[str, Any] | None = None,
    retries: int = 1,
) -> list[Path]:
    """Run every unfinished (row, seed, split), then write the spec's leaderboard.

    Without ``launcher`` the runs go one after another in this process, and the first
    error stops the grid. With one (``local``, ``ray``, ``slurm`` or a plugin's), each run
    is its own process handed to that engine, ``jobs`` at once (:mod:`harness.scheduler`):
    runs sharing a stage-0 or warm-start model wait for the one that trains it, a failed
    run is retried ``retries`` times and then named (:class:`BenchFailed`) while the
    others go on, and the leaderboard is refreshed as runs finish.

    Threads: a run's CPU numbers depend on its torch thread count. ``threads_per_run``
    pins it (in this process too, for a serial bench); launchers default to this
    machine's cores split between ``jobs``. Compare runs made with the same count.

    Every row's settings are resolved first (``validate``; on by default with the
    default ``run_fn``), so a bad name or value anywhere in the grid stops it at once.

    ``run_fn(settings, run_dir, label, paper, query)`` trains one run and writes its folder;
    by default :func:`run_row` (``harness.run.run_experiment`` with the bench's shared
    stage-0 and warm-start cache). If it raises, the leaderboard of what has finished is
    still written, then the error propagates.
    """
    out_dir = Path(out_dir)
    validate = run_fn is None if validate is None else validate
    if launcher is not None and run_fn is not None:
        raise ConfigError(
            "a launcher runs each run in its own process; run_fn works only without one"
        )
    if run_fn is None:
        run_fn = in_process(spec.name, out_dir, registry, progress)

    plan = expand(spec, overrides, seeds, out_dir, splits)
    if validate:
        check_plan(plan, registry)
    for run in plan:
        stale = stale_settings(run.run_dir, run.settings)
        if stale:
            raise ConfigError(
                f"{run.run_dir} holds a run of {run.label!r} with other settings "
                f"({'; '.join(stale)}); give this bench another --out folder or remove that one"
            )
    check_run_dir(out_dir)  # an unwritable --out fails now, not after the first row trained
    if spec.path is not None and spec.path.is_file():
        atomic_write_text(out_dir / "spec.toml", spec.path.read_text())  # provenance
    warned: set[str] = set()
    for run in plan:
        if run.ignored_overrides and run.label not in warned:
            warned.add(run.label)
            progress(
                f"note: {run.label!r} sets {', '.join(run.ignored_overrides)} itself; "
                "the command-line value does not apply to it"
            )
    if launcher is not None:
        return _launch(
            spec,
            out_dir,
            plan,
            launcher,
            registry=registry,
            progress=progress,
            jobs=jobs,
            threads=threads_per_run,
            gpus=gpus_per_run,
            options=launcher_options or {},
            retries=retries,
        )
    done = 0
    threads_before = None
    if threads_per_run is not None:
        threads_before = torch.get_num_threads()
        torch.set_num_threads(_positive("--threads-per-run", threads_per_run))
    try:
        for i, run in enumerate(plan, start=1):
            tag = f"[{i}/{len(plan)}] {run.name}"
            if is_complete(run.run_dir):
                progress(f"{tag}: finished already, skipped ({run.run_dir})")
                continue
            progress(f"{tag}: running -> {run.run_dir}")
            run_fn(dict(run.settings), run.run_dir, run.label, run.paper, run.query)
            done += 1
    except BaseException:
        # Keep what finished visible, but never let a reporting failure hide the real error.
        with contextlib.suppress(Exception):
            write_bench_leaderboard(spec, out_dir)
        raise
    finally:
        if threads_before is not None:
            torch.set_num_threads(threads_before)
    write_bench_leaderboard(spec, out_dir)
    progress(
        f"{spec.name}: {done} run(s) trained, {len(plan) - done} skipped; leaderboard in {out_dir}"
    )
    return [run.run_dir for run in plan]


def _positive(flag: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{flag} must be a positive integer, got {value!r}")
    return value


def _launch(
    spec: BenchSpec,
    out_dir: Path,
    plan: Sequence[PlannedRun],
    launcher: str,
    *,
    registry: Any,
    progress: Callable[[str], None],
    jobs: int | None,
    threads: int | None,
    gpus: float | None,
    options: Mapping[str, Any],
    retries: int,
    board: bool = True,
) -> list[Path]:
    """The grid through a launcher plugin (see :func:`run_bench`); ``board=False`` leaves
    the leaderboard alone (a tune's trials are judged on validation, not shown on test)."""
    registry = registry or get_registry()
    entry = registry.lookup("launcher", launcher)
    if jobs is not None:
        _positive("--jobs", jobs)
    threads = (
        scheduler.default_threads(jobs)
        if threads is None
        else _positive("--threads-per-run", threads)
    )
    if gpus is None:
        gpus = 1.0 if torch.cuda.is_available() else 0.0
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0:
        raise ConfigError(f"--gpus-per-run must be >= 0, got {gpus!r}")
    typed = scheduler.parse_launcher_options(entry.options, options, launcher)
    todo = []
    for i, run in enumerate(plan, start=1):
        if is_complete(run.run_dir):
            progress(f"[{i}/{len(plan)}] {run.name}: finished already, skipped ({run.run_dir})")
        else:
            todo.append(run)
    out_abs = out_dir.resolve()
    shared = scheduler.shared_files(todo, registry, out_abs)
    groups = len({f for files in shared.values() for f in files})
    progress(
        f"{spec.name}: {len(todo)} run(s) on launcher {launcher!r}, "
        f"{jobs if jobs else 'as many as it takes'} at once, {threads} thread(s)"
        f"{f' and {gpus:g} GPU(s)' if gpus else ''} each; "
        f"{groups} shared stage model(s), each trained once"
    )
    instance = entry.factory(
        LaunchSettings(jobs=jobs, threads=threads, gpus=float(gpus), options=typed, out_dir=out_abs)
    )
    cwd = os.getcwd()

    def make_job(run: PlannedRun, attempt: int) -> RunJob:
        run_dir = run.run_dir.resolve()
        return RunJob.for_run(
            dataclasses.replace(run, run_dir=run_dir, settings=dict(run.settings)),
            out_dir=str(out_abs),
            bench=spec.name,
            threads=threads,
            log=str(run_log(run_dir)),
            attempt=attempt,
            cwd=cwd,
        )

    def refresh(report: scheduler.LaunchReport) -> None:
        if not board:
            return
        with contextlib.suppress(Exception):  # a reporting hiccup must not stop the grid
            write_bench_leaderboard(spec, out_dir, failed=report.failed)

    report = scheduler.launch_runs(
        todo,
        make_job,
        instance,
        shared=shared,
        jobs=jobs,
        total=len(plan),
        already_done=len(plan) - len(todo),
        retries=retries,
        progress=progress,
        on_finish=refresh,
    )
    if board:
        write_bench_leaderboard(spec, out_dir, failed=report.failed)
    progress(
        f"{spec.name}: {len(report.finished)} run(s) trained, {len(plan) - len(todo)} skipped, "
        f"{len(report.failed)} failed; leaderboard in {out_dir}"
    )
    if report.failed:
        raise BenchFailed(report.failed)
    return [run.run_dir for run in plan]
