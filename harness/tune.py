"""Equal-budget tuning: every row of a spec gets the same number of trials on the validation
split, then its best settings run on the test split.

Why: a leaderboard row that beats another may only have been tuned better ("A Metric
Learning Reality Check", Musgrave et al., ECCV 2020). Here each row searches the spaces its
plugins declare beside their options (:class:`harness.options.Search`; a spec may narrow
them) with the same number of finished trials, judged by one metric of the validation split
(``metrics.json``'s ``val`` block, protocol ``mlr-2.1``); nothing here reads a test number.

Storage: one Optuna study per row in ``OUT/tune.db`` (SQLite), TPE seeded by the row's label
and the study's trial count (:func:`_seed_of`); a row's first trial is its untuned settings
(its plugins' defaults, or what the spec sets), so a tuned row is never worse on validation
than the same row untuned, and a small budget is a comparison against the defaults rather
than a random draw. A trial is one run folder, ``OUT/<row>/trial<k>``, trained with the
bench's shared stage caches, so a row's trials share stage 0 and the warm start. A killed
tune started again adopts the trials this machine's dead processes left running (their
folders resume from their last checkpoint), so it ends with exactly ``trials`` finished
trials per row; two tunes on one study (two processes, or two machines with one shared
folder) each ask their own trials and together stop at the budget. A failed trial is
recorded as failed and does not count: the budget is finished trials.

Then ``OUT/<row>/seed<k>`` runs each row's best settings on ``--seeds`` seeds and
``OUT/leaderboard.*`` ranks them on the test split, beside ``OUT/tune.md`` (every trial,
per row, with Optuna's optimisation-history figure).

Pruning is not used: trials of a few hundred iterations gain little from it, and a pruned
trial is a trial with a smaller budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from harness import bench as bench_mod
from harness.errors import ConfigError, HarnessError
from harness.io import atomic_write_text
from harness.launch import PlannedRun
from harness.options import Search
from harness.registry import get_registry
from harness.report import figure_text
from harness.resolve import declared_options, resolve_config
from harness.rundir import METRICS as METRICS_FILE
from harness.rundir import check_run_dir, is_complete

#: where the studies live, inside the tune's output folder
STUDY_FILE = "tune.db"
#: the metrics a tune may maximise (of the row's query kind, on the validation split)
METRICS = ("mAP", "rank1", "rank5", "rank10", "mINP")
DEFAULT_METRIC = "mAP"


@dataclass(frozen=True)
class RowSpace:
    """What one row tunes: its base run, each tuned option's search space, and the values
    the row runs with untuned (its first trial, where every one lies in its space)."""

    base: PlannedRun
    space: dict[str, Search]
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def first_trial(self) -> dict[str, Any] | None:
        """The untuned settings, when the space holds them all: tried first, so a tuned row
        is never worse on validation than the same row untuned, whatever the budget."""
        if not self.space or set(self.defaults) != set(self.space):
            return None
        if not all(self.space[k].contains(v) for k, v in self.defaults.items()):
            return None
        return dict(self.defaults)

    @property
    def study_name(self) -> str:
        return bench_mod.slug(self.base.label)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise HarnessError(
            "harness tune needs Optuna: pip install 'crossres-harness[tune]' (or optuna)"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def row_space(
    row: bench_mod.RunSpec, base: PlannedRun, spec: bench_mod.BenchSpec, registry: Any
) -> RowSpace:
    """The options a row tunes: every option its components declare a search for, except
    those the row sets itself (a row pinning a value has chosen it), narrowed by the spec's
    ``[tune] space`` and then the row's own ``tune.space``."""
    config = resolve_config(dict(base.settings), registry)
    if config.protocol.val_ids <= 0:
        raise ConfigError(
            f"row {row.label!r}: tuning reads the validation split, and --val-ids is 0; "
            "give it a share of the training identities (e.g. 0.15)"
        )
    declared = declared_options(config, registry)
    pinned = set((row.settings.get("options") or {}).keys())
    space = {
        key: option.search
        for key, (option, _entry) in declared.items()
        if option.search is not None and key not in pinned
    }
    for where, table in (
        ("[tune] space", spec.tune.get("space", {})),
        ("tune.space", row.tune.get("space", {})),
    ):
        for key, bounds in table.items():
            if key not in declared:
                continue  # a spec-wide space names options some rows do not have
            if key not in space:
                if where == "tune.space":
                    raise ConfigError(
                        f"row {row.label!r}: tune.space names {key!r}, which the row pins "
                        "or which declares no search space"
                    )
                continue
            space[key] = space[key].narrowed(bounds, f"{row.label!r} {key}")
    defaults = {key: config.options[key] for key in space if key in config.options}
    return RowSpace(base=base, space=dict(sorted(space.items())), defaults=defaults)


def _distributions(optuna: Any, space: Mapping[str, Search]) -> dict[str, Any]:
    dist = optuna.distributions
    out = {}
    for key, search in space.items():
        if search.choices is not None:
            out[key] = dist.CategoricalDistribution(list(search.choices))
        elif search.integer:
            out[key] = dist.IntDistribution(int(search.low), int(search.high), log=search.log)
        else:
            out[key] = dist.FloatDistribution(search.low, search.high, log=search.log)
    return out


def _seed_of(label: str, asked: int = 0) -> int:
    """The sampler's seed for a row's next trial: from the row's label, so adding a row never
    changes another's trials, and from the number of trials its study already holds.

    Why the count: two processes sharing a study each hold a sampler; seeded by the label
    alone, both drew the same random sequence, so a second process's first trial repeated
    the first process's next one (a wasted trial, and fewer distinct settings for that row).
    Seeded by the count, each trial number has its own draw, in one process or several,
    and one process alone still asks the same trials every time it is run."""
    key = f"{label}\n{asked}" if asked else label
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str) -> bool:
    """Whether the process that owns a running trial is alive (only knowable on its host)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's trial: assume it is running
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def trial_dir(out_dir: Path, row: RowSpace, folder: int) -> Path:
    return out_dir / row.study_name / f"trial{folder}"


def objective_value(run_dir: Path, query: str, metric: str) -> float:
    """The trial's score: ``metric`` of the row's query kind on the validation split."""
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        return float(metrics["val"]["queries"][query][metric])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(
            f"{run_dir}/metrics.json has no val.queries.{query}.{metric}; "
            "a tune needs runs with a validation split"
        ) from exc


@dataclass
class TuneResult:
    """Per row: its study's finished trials and the best one's settings."""

    rows: list[RowSpace]
    best: dict[str, dict[str, Any]]
    values: dict[str, float]
    final_dirs: list[Path]


def run_tune(
    spec: bench_mod.BenchSpec,
    out_dir: str | Path,
    *,
    trials: int | None = None,
    seeds: int = 1,
    metric: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    registry: Any = None,
    progress: Callable[[str], None] = print,
    launcher: str | None = None,
    jobs: int | None = None,
    threads_per_run: int | None = None,
    gpus_per_run: float | None = None,
    launcher_options: Mapping[str, Any] | None = None,
    final: bool = True,
    run_fn: bench_mod.RunFn | None = None,
) -> TuneResult:
    """Tune every row to ``trials`` finished trials, then run each row's best on the test.

    ``run_fn`` replaces the in-process trainer (as :func:`harness.bench.run_bench`'s does);
    it cannot be combined with a launcher."""
    optuna = _import_optuna()
    registry = registry or get_registry()
    out_dir = Path(out_dir)
    trials = int(spec.tune.get("trials", 0) if trials is None else trials)
    if trials < 1:
        raise ConfigError("give --trials N (or trials = N in the spec's [tune] table), N >= 1")
    metric = metric or spec.tune.get("metric", DEFAULT_METRIC)
    if metric not in METRICS:
        raise ConfigError(f"tune metric {metric!r}: choose one of {', '.join(METRICS)}")
    base_plan = bench_mod.expand(spec, overrides, 1, out_dir, splits=1)
    bench_mod.check_plan(base_plan, registry)
    rows = [row_space(r, b, spec, registry) for r, b in zip(spec.runs, base_plan, strict=True)]
    check_run_dir(out_dir)  # an unwritable --out fails before the first trial trains
    storage = f"sqlite:///{(out_dir / STUDY_FILE).resolve()}"
    if spec.path is not None and spec.path.is_file():
        atomic_write_text(out_dir / "spec.toml", spec.path.read_text())
    batch = max(1, jobs or 1)
    if jobs is not None and launcher is None:
        launcher = "local"

    if run_fn is not None and launcher is not None:
        raise ConfigError(
            "a launcher runs each trial in its own process; run_fn works only without one"
        )

    in_process = run_fn or bench_mod.in_process(spec.name, out_dir, registry, progress)

    def run_batch(plan: list[PlannedRun]) -> None:
        if launcher is None:
            for run in plan:
                in_process(dict(run.settings), run.run_dir, run.label, None, run.query)
            return
        try:
            bench_mod._launch(
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
                retries=0,
                board=False,
            )
        except bench_mod.BenchFailed:
            pass  # each failed trial is told FAIL below

    best: dict[str, dict[str, Any]] = {}
    values: dict[str, float] = {}
    for row in rows:
        study = optuna.create_study(
            study_name=row.study_name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=_seed_of(row.base.label)),
            load_if_exists=True,
        )
        if row.space:
            _tune_row(optuna, study, row, trials, metric, out_dir, batch, run_batch, progress)
            done = _finished(optuna, study)
            top = max(done, key=lambda t: (t.value, -t.number))
            best[row.base.label] = dict(top.params)
            values[row.base.label] = float(top.value)
            progress(
                f"{row.base.label}: best of {len(done)} trials: val {metric} "
                f"{100 * top.value:.1f} with {_params_text(top.params)} (trial {top.number})"
            )
        else:
            best[row.base.label] = {}
            progress(f"{row.base.label}: nothing to tune (no option declares a search space)")
    write_tune_report(out_dir, rows, storage, metric, trials)
    final_dirs: list[Path] = []
    if final:
        tuned = _best_spec(spec, best)
        final_dirs = bench_mod.run_bench(
            tuned,
            out_dir,
            seeds=seeds,
            overrides=overrides,
            progress=progress,
            splits=1,
            registry=registry,
            launcher=launcher,
            jobs=jobs,
            threads_per_run=threads_per_run,
            gpus_per_run=gpus_per_run,
            launcher_options=launcher_options,
            run_fn=run_fn,
        )
    return TuneResult(rows=rows, best=best, values=values, final_dirs=final_dirs)


def _finished(optuna: Any, study: Any) -> list[Any]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _adopt_orphans(optuna: Any, study: Any) -> None:
    """Trials left running by a process of this machine that died: failed, and their
    settings asked again with the same folder, which resumes from its last checkpoint."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        if _alive(trial.user_attrs.get("owner", "")):
            continue
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(
            trial.params,
            user_attrs={"folder": trial.user_attrs.get("folder", trial.number)},
            skip_if_exists=False,
        )


def _tune_row(
    optuna: Any,
    study: Any,
    row: RowSpace,
    trials: int,
    metric: str,
    out_dir: Path,
    batch: int,
    run_batch: Callable[[list[PlannedRun]], None],
    progress: Callable[[str], None],
) -> None:
    distributions = _distributions(optuna, row.space)
    _adopt_orphans(optuna, study)
    first = row.first_trial
    if first is not None and not study.get_trials(deepcopy=False):
        # skip_if_exists: two tunes starting one study together enqueue it once
        study.enqueue_trial(first, skip_if_exists=True)
    while True:
        done = len(_finished(optuna, study))
        running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
        want = min(batch, trials - done - running)
        if want <= 0:
            if done >= trials:
                return
            raise HarnessError(
                f"row {row.base.label!r}: {running} trial(s) are running in another process; "
                "run this tune again when they have finished"
            )
        asked = []
        for _ in range(want):
            study.sampler = optuna.samplers.TPESampler(
                seed=_seed_of(row.base.label, len(study.get_trials(deepcopy=False)))
            )
            trial = study.ask(distributions)
            folder = int(trial.user_attrs.get("folder", trial.number))
            trial.set_user_attr("folder", folder)
            trial.set_user_attr("owner", _owner())
            asked.append((trial, trial_dir(out_dir, row, folder)))
        plan = []
        for trial, run_dir in asked:
            settings = json.loads(json.dumps(row.base.settings))
            settings.setdefault("options", {}).update(trial.params)
            label = f"{row.base.label} trial {trial.number}"
            progress(
                f"[{row.base.label}: trial {done + running + len(plan) + 1}/{trials}] "
                f"{_params_text(trial.params)} -> {run_dir}"
            )
            plan.append(
                dataclasses.replace(row.base, label=label, settings=settings, run_dir=run_dir)
            )
        run_batch(plan)
        for (trial, run_dir), run in zip(asked, plan, strict=True):
            if is_complete(run_dir):
                study.tell(trial, objective_value(run_dir, run.query, metric))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                progress(f"{run.label}: failed; it does not count, another trial replaces it")


def _best_spec(spec: bench_mod.BenchSpec, best: Mapping[str, Mapping[str, Any]]) -> Any:
    """The spec with each row's options set to its best trial's."""
    runs = []
    for row in spec.runs:
        settings = json.loads(json.dumps(row.settings))
        if best.get(row.label):
            settings["options"] = {**settings.get("options", {}), **best[row.label]}
        runs.append(dataclasses.replace(row, settings=settings))
    return dataclasses.replace(spec, runs=tuple(runs))


def write_tune_report(
    out_dir: Path, rows: Sequence[RowSpace], storage: str, metric: str, budget: int
) -> Path:
    """``tune.md`` (every trial of every row, its space, its best) and, per row,
    ``<row>/history.png`` (Optuna's optimisation-history figure)."""
    optuna = _import_optuna()
    lines = [
        f"# Tuning: {budget} finished trials per row, validation-split {metric} "
        "(the test split is never read)",
        "",
    ]
    for row in rows:
        name = row.base.label
        lines += [f"## {name}", ""]
        if not row.space:
            lines += ["Nothing to tune: no option of this row declares a search space.", ""]
            continue
        spaces = ", ".join(f"`{k}` {s.describe()}" for k, s in row.space.items())
        lines += [f"Space: {spaces}.", ""]
        untuned = row.first_trial
        if untuned is None:
            lines += ["The row's untuned settings lie outside this space: no untuned trial.", ""]
        study = optuna.load_study(study_name=row.study_name, storage=storage)
        keys = list(row.space)
        lines += [
            "| trial | state | " + " | ".join(keys) + f" | val {metric} |",
            "|---:|---|" + "---:|" * len(keys) + "---:|",
        ]
        finished = _finished(optuna, study)
        top = max(finished, key=lambda t: (t.value, -t.number)) if finished else None
        for t in study.get_trials(deepcopy=False):
            cells = [
                f"{t.params[k]:.3g}"
                if isinstance(t.params.get(k), float)
                else str(t.params.get(k, ""))
                for k in keys
            ]
            value = "" if t.value is None else f"{100 * t.value:.1f}"
            mark = " (best)" if top is not None and t.number == top.number else ""
            if untuned is not None and t.params == untuned:
                mark += " (untuned)"
            lines.append(
                f"| {t.number} | {t.state.name.lower()}{mark} | "
                + " | ".join(cells)
                + f" | {value} |"
            )
        if finished:
            with warnings.catch_warnings():  # Optuna marks its matplotlib figures experimental
                warnings.simplefilter("ignore")
                ax = optuna.visualization.matplotlib.plot_optimization_history(study)
            ax.set_title(figure_text(f"{name}: val {metric}", limit=90))
            figure = out_dir / row.study_name / "history.png"
            figure.parent.mkdir(parents=True, exist_ok=True)
            ax.figure.savefig(figure, dpi=100, bbox_inches="tight")
            plt.close(ax.figure)
            lines += ["", f"![{name}]({row.study_name}/history.png)"]
        lines.append("")
    path = out_dir / "tune.md"
    atomic_write_text(path, "\n".join(lines))
    return path
