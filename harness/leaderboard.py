"""Run folders -> one table: mean ± std over seeds, beside the paper's numbers.

Runs are grouped by their recipe: the saved RunConfig without the fields that
only say *where* or *how fast* it ran (seed, protocol seed, data folder, device,
workers, logging cadence). The protocol seed is left out on purpose: a bench
varies only the run seed, so every seed sees the same MLR split, but runs
collected by hand may differ in it and still measure the same recipe. A bench
spec's ``label`` (stored in config.json with the bench's name) replaces the
recipe as the key, together with the bench and the dataset, so a row keeps its
name and one spec run on two datasets gives two rows; a label whose runs
disagree on anything else is flagged.

Unfinished runs (``status`` other than ``complete``) never enter the numbers;
they are listed under the table so a half-finished grid cannot pass for a
finished one.

Rows of one table are compared query by query (:func:`compare_rows`, :mod:`harness.paired`):
which rows are not significantly different from the best, and each row's Δ to a reference
row, from the runs' ``per_query.json``; both renderers show the same marks and numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import paired as pt
from harness.bootstrap import RESAMPLES, QueryOutcomes, read_per_query
from harness.config import SETTINGS
from harness.report import cmc_figure, ordered_kinds

#: Saved-config fields that do not change what a run measures; left out of the group key.
#: Read from each setting's declaration (``setting(recipe=False)`` in :mod:`harness.config`).
IGNORED_FIELDS = frozenset(s.name for s in SETTINGS if not s.recipe)

#: Scalar metrics summarised per query kind (and per ratio where present).
SCALAR_METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP", "psnr", "ssim")

#: Core fields a row is named by when it has no label.
NAME_FIELDS = ("sr", "reid", "reg")

#: Characters of a row name shown in tables and legends; the full name is one click away.
SHORT_NAME = 36


# --------------------------------------------------------------------------- data types


@dataclass
class RunResult:
    """One run folder as read from disk; ``status`` says whether its numbers count."""

    run_dir: Path
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    paper: dict[str, float] | None = None
    seed: int | None = None
    protocol_version: str | None = None
    bench: str | None = None
    query: str = "sr"
    _per_query: tuple[dict[str, QueryOutcomes] | None, str | None] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def outcomes(self, kind: str) -> tuple[QueryOutcomes | None, str | None]:
        """This run's per-query outcomes on one query kind (read once), or why there are none."""
        if self._per_query is None:
            self._per_query = read_per_query(self.run_dir)
        found, problem = self._per_query
        if found is None:
            return None, problem
        if kind not in found:
            return None, f"per_query.json has no {kind} queries"
        return found[kind], None

    @property
    def key(self) -> str:
        """Runs with equal keys are seeds of one recipe."""
        if self.label:
            return json.dumps(["label", self.bench, self.label, self.config.get("data")])
        if not self.config:
            return json.dumps(["folder", str(self.run_dir)])
        return json.dumps(["config", recipe(self.config)], sort_keys=True, default=str)


@dataclass
class Stat:
    """Mean and sample std (ddof=1; 0 for a single run) over the runs that report a value.

    ``over`` says what the std is taken over: ``runs`` (seeds and splits), or ``trials``
    (the gallery draws of one single-gallery-shot run, when a row has only one run).
    """

    mean: float
    std: float
    n: int
    over: str = "runs"

    def to_dict(self) -> dict[str, float | int | str]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "over": self.over}


@dataclass
class Group:
    """Seeds of one recipe, with the statistics the tables show."""

    key: str
    name: str
    runs: list[RunResult]
    pending: list[RunResult] = field(default_factory=list)
    label: str | None = None
    bench: str | None = None
    paper: dict[str, float] | None = None
    query: str = "sr"
    stats: dict[str, dict[str, Stat]] = field(default_factory=dict)
    per_ratio: dict[str, dict[str, dict[str, Stat]]] = field(default_factory=dict)
    cmc: dict[str, list[float]] = field(default_factory=dict)
    cmc_std: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    name_parts: list[str] = field(default_factory=list)
    short_parts: list[str] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    reference: bool = False  # the row a bench spec names as its table's reference

    @property
    def short(self) -> str:
        return short_name(self)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    @property
    def config(self) -> dict[str, Any]:
        source = self.runs or self.pending
        return source[0].config if source else {}

    @property
    def protocol_versions(self) -> list[str]:
        return sorted({r.protocol_version or "?" for r in self.runs})

    @property
    def eval_style(self) -> str | None:
        styles = {r.metrics.get("eval_style") for r in self.runs} - {None}
        return ", ".join(sorted(styles)) if styles else None

    def stat(self, kind: str, metric: str) -> Stat | None:
        return self.stats.get(kind, {}).get(metric)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "short": self.short,
            "label": self.label,
            "bench": self.bench,
            "query": self.query,
            "n": self.n,
            "seeds": self.seeds,
            "run_dirs": [str(r.run_dir) for r in self.runs],
            "pending": [{"run_dir": str(r.run_dir), "status": r.status} for r in self.pending],
            "config": self.config,
            "protocol_versions": self.protocol_versions,
            "eval_style": self.eval_style,
            "paper": self.paper,
            "queries": {
                kind: {m: s.to_dict() for m, s in metrics.items()}
                for kind, metrics in self.stats.items()
            },
            "per_ratio": {
                kind: {
                    ratio: {m: s.to_dict() for m, s in metrics.items()}
                    for ratio, metrics in ratios.items()
                }
                for kind, ratios in self.per_ratio.items()
            },
            "cmc_mean": self.cmc,
            "cmc_std": self.cmc_std,
            "diagnostics": self.diagnostics,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- collect and group


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"options": {"a": 1}}`` -> ``{"options.a": 1}``; lists become tuples (hashable)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = tuple(value)
        else:
            out[name] = value
    return out


def recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """The saved config with bookkeeping fields (:data:`IGNORED_FIELDS`) removed, flattened."""
    return {k: v for k, v in sorted(flatten(config).items()) if k not in IGNORED_FIELDS}


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name} ({exc})"
    if not isinstance(data, dict):
        return None, f"unreadable {path.name} (not a JSON object)"
    return data, None


#: what every query block of a complete run holds: the number tables rank by, and the curve
#: the CMC plot averages (a run without it would leave the plot's mean over fewer runs)
REQUIRED_METRICS = ("rank1", "cmc")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _field_problem(key: str, value: Any) -> str | None:
    """Why one field of a query block is unreadable (``rank1 is 'high', not a number``)."""
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    if key in SCALAR_METRICS or key.endswith("_se"):
        return None if _is_number(value) else f"{key} is {shown}, not a number"
    if key.endswith("_ci"):
        pair = isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))
        return None if pair else f"{key} is {shown}, not a [low, high] pair of numbers"
    if key in ("cmc", "cmc_std"):
        curve = isinstance(value, list) and bool(value) and all(map(_is_number, value))
        return None if curve else f"{key} is {shown}, not a list of numbers"
    if key == "per_ratio":
        if not isinstance(value, Mapping):
            return f"{key} is {shown}, not a table"
        for ratio, block in value.items():
            if not isinstance(block, Mapping):
                return f"{key}.{ratio} is not a table"
            for metric in SCALAR_METRICS:
                problem = _field_problem(metric, block.get(metric, 0.0))
                if problem:
                    return f"{key}.{ratio}.{problem}"
    return None


def metrics_problem(metrics: Mapping[str, Any]) -> str | None:
    """What of a complete run's ``metrics.json`` the leaderboard cannot read (a tampered or
    hand-edited field), or None. Such a run is not included, with this reason, so one bad
    file neither stops the leaderboard nor enters its numbers."""
    queries = metrics.get("queries")
    if not isinstance(queries, Mapping):
        return "complete but without queries"
    for kind, block in queries.items():
        if not isinstance(block, Mapping):
            return f"metrics.json: queries.{kind} is not a table"
        for key in REQUIRED_METRICS:
            if key not in block:
                return f"metrics.json: queries.{kind} has no {key}"
        for key, value in block.items():
            problem = _field_problem(key, value)
            if problem:
                return f"metrics.json: queries.{kind}.{problem}"
    for key in ("protocol_version", "eval_style"):
        if metrics.get(key) is not None and not isinstance(metrics[key], str):
            return f"metrics.json: {key} is {metrics[key]!r:.40}, not a string"
    return None


def read_run(run_dir: str | Path) -> RunResult:
    """One run folder; problems become its ``status`` instead of exceptions."""
    run_dir = Path(run_dir)
    doc, problem = _read_json(run_dir / "config.json")
    if doc is None:
        return RunResult(run_dir, status=problem or "no config.json")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    seed = doc.get("seed", config.get("seed"))
    if seed is not None and not _is_number(seed):
        return RunResult(run_dir, status=f"config.json: seed is {seed!r:.40}, not a number")
    result = RunResult(
        run_dir,
        status="complete",
        config=config,
        label=doc.get("label") or None,
        bench=doc.get("bench") or None,
        paper=dict(doc["paper"]) if isinstance(doc.get("paper"), Mapping) else None,
        seed=int(seed) if seed is not None else None,
        protocol_version=doc.get("protocol_version"),
        query=str(doc.get("query") or "sr"),
    )
    metrics, problem = _read_json(run_dir / "metrics.json")
    if metrics is None:
        result.status = problem or "no metrics.json"
        return result
    result.metrics = metrics
    result.status = str(metrics.get("status", "no status"))
    problem = metrics_problem(metrics) if result.complete else None
    if problem:
        result.status = problem
    result.protocol_version = metrics.get("protocol_version") or result.protocol_version
    return result


def collect(run_dirs: Iterable[str | Path]) -> list[RunResult]:
    """Read every folder; unfinished ones are kept but flagged (``complete`` is False)."""
    return [read_run(d) for d in run_dirs]


def _summary(values: Sequence[float]) -> Stat:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return Stat(float(arr.mean()), std, len(arr))


def _scalars(source: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for metric in SCALAR_METRICS:
        value = source.get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[metric] = float(value)
    return out


def _summarise(group: Group) -> None:
    values: dict[str, dict[str, list[float]]] = {}
    ratio_values: dict[str, dict[str, dict[str, list[float]]]] = {}
    curves: dict[str, list[list[float]]] = {}
    for run in group.runs:
        for kind, q in run.metrics.get("queries", {}).items():
            if not isinstance(q, Mapping):
                continue
            for metric, v in _scalars(q).items():
                values.setdefault(kind, {}).setdefault(metric, []).append(v)
            for ratio, sub in (q.get("per_ratio") or {}).items():
                for metric, v in _scalars(sub).items():
                    bucket = ratio_values.setdefault(kind, {}).setdefault(str(ratio), {})
                    bucket.setdefault(metric, []).append(v)
            if q.get("cmc"):
                curves.setdefault(kind, []).append([float(v) for v in q["cmc"]])
    group.stats = {
        kind: {m: _summary(v) for m, v in metrics.items()}
        for kind, metrics in sorted(
            values.items(), key=lambda kv: ordered_kinds(values).index(kv[0])
        )
    }
    group.per_ratio = {
        kind: {
            ratio: {m: _summary(v) for m, v in metrics.items()}
            for ratio, metrics in sorted(ratios.items(), key=lambda kv: _ratio_order(kv[0]))
        }
        for kind, ratios in ratio_values.items()
    }
    if group.n == 1:
        _trial_spread(group)
    group.diagnostics = mean_diagnostics(r.metrics.get("diagnostics") for r in group.runs)
    for kind, runs in curves.items():
        length = min(len(c) for c in runs)
        arr = np.asarray([c[:length] for c in runs], dtype=np.float64)
        group.cmc[kind] = arr.mean(0).tolist()
        group.cmc_std[kind] = (arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(length)).tolist()


def _numeric_leaves(
    block: Any, prefix: tuple[str, ...] = ()
) -> Iterable[tuple[tuple[str, ...], float]]:
    if isinstance(block, Mapping):
        for key, value in block.items():
            yield from _numeric_leaves(value, (*prefix, str(key)))
    elif isinstance(block, int | float) and not isinstance(block, bool) and prefix:
        yield prefix, float(block)


def mean_diagnostics(blocks: Iterable[Any]) -> dict[str, Any]:
    """The runs' ``diagnostics`` blocks (metrics.json) averaged leaf by leaf, like the other
    metrics: each number is the mean over the runs that report it; the nesting and the order
    of the first run that has a key are kept (a row's diagnostics read in its runs' order)."""
    sums: dict[tuple[str, ...], list[float]] = {}
    for block in blocks:
        for path, value in _numeric_leaves(block):
            sums.setdefault(path, []).append(value)
    out: dict[str, Any] = {}
    for path, values in sums.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):  # a key that is a number in one run, a table in another
                break
        else:
            if not isinstance(node.get(path[-1]), dict):
                node[path[-1]] = float(np.mean(values))
    return out


def _diag_number(value: float) -> str:
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.1e}"


#: diagnostics keys :func:`diagnostics_text` words itself; any other key is printed as it is named
_DIAG_KNOWN = (
    "grad_share",
    "critic_r2",
    "critic_r2_at_start",
    "critic_r2_end",
    "critic_gap",
    "dis_path_share",
    "d_accuracy",
    "critic_warmup_iters",
)

#: G's terms in the order of its objective (metrics.json stores keys sorted); others follow
_TERM_ORDER = ("mse", "id", "gan", "dis")


def diagnostics_text(diag: Mapping[str, Any]) -> str:
    """One line a person reads beside a row: which terms move G, and whether its critic knows
    anything. ``grad share mse 0.80 · id 0.10 · dis 0.20; critic R² 0.55 (0.50 at start);
    gap 0.12; L_dis via f_c 30%; D acc 0.70; critic warm-up 200 iters`` (keys absent from
    ``diag`` are left out; keys this function does not know are printed by name). A share is
    a term's gradient norm on G over the total's, so shares need not sum to 1."""

    def num(key: str) -> float | None:
        value = diag.get(key)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    def shares(block: Any) -> str:
        items = [
            (k, v)
            for k, v in (block or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        items.sort(
            key=lambda kv: _TERM_ORDER.index(kv[0]) if kv[0] in _TERM_ORDER else len(_TERM_ORDER)
        )
        return " · ".join(f"{k} {_diag_number(float(v))}" for k, v in items)

    parts = []
    if isinstance(diag.get("grad_share"), Mapping) and shares(diag["grad_share"]):
        parts.append("grad share " + shares(diag["grad_share"]))
    r2 = num("critic_r2")
    when = [
        f"{_diag_number(v)} at {at}"
        for at, v in (("start", num("critic_r2_at_start")), ("end", num("critic_r2_end")))
        if v is not None
    ]
    if r2 is not None:
        parts.append(f"critic R² {_diag_number(r2)}" + (f" ({', '.join(when)})" if when else ""))
    elif when:
        parts.append(f"critic R² {', '.join(when)}")
    if num("critic_gap") is not None:
        parts.append(f"gap {_diag_number(num('critic_gap'))}")
    path = diag.get("dis_path_share")
    fc = path.get("fc") if isinstance(path, Mapping) else None
    if isinstance(fc, int | float) and not isinstance(fc, bool):
        parts.append(
            f"L_dis via f_c {100.0 * fc:.0f}%"
            if abs(fc) >= 0.01 or fc == 0
            else f"L_dis via f_c {100.0 * fc:.1f}%"
        )
    if num("d_accuracy") is not None:
        parts.append(f"D acc {_diag_number(num('d_accuracy'))}")
    if num("critic_warmup_iters") is not None:
        parts.append(f"critic warm-up {num('critic_warmup_iters'):g} iters")
    for key, value in diag.items():
        if key in _DIAG_KNOWN:
            continue
        if isinstance(value, Mapping) and shares(value):
            parts.append(f"{key} {shares(value)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key} {_diag_number(float(value))}")
    return "; ".join(parts)


def _trial_spread(group: Group) -> None:
    """One single-gallery-shot run: show the spread over its gallery trials instead of 0."""
    for kind, q in group.runs[0].metrics.get("queries", {}).items():
        std = q.get("cmc_std") if isinstance(q, Mapping) else None
        if not std:
            continue
        for metric, rank in (("rank1", 1), ("rank5", 5), ("rank10", 10)):
            stat = group.stats.get(kind, {}).get(metric)
            if stat is not None and len(std) >= rank:
                group.stats[kind][metric] = Stat(stat.mean, float(std[rank - 1]), 1, over="trials")


def _ratio_order(ratio: str) -> tuple[float, str]:
    try:
        return float(ratio), ratio
    except ValueError:
        return math.inf, ratio


def _check_group(group: Group) -> None:
    recipes = [recipe(r.config) for r in group.runs if r.config]
    if group.label and len(recipes) > 1:
        keys = set().union(*recipes) - {SPLIT_KEY}  # splits of one row differ there by design
        differ = sorted(
            k for k in keys if len({json.dumps(r.get(k), default=str) for r in recipes}) > 1
        )
        if differ:
            group.notes.append(
                f"label {group.label!r} groups runs whose configs differ in: {', '.join(differ)}"
            )
    draws = [(r.seed, flatten(r.config).get(SPLIT_KEY)) for r in group.runs if r.seed is not None]
    repeated = sorted({d for d in draws if draws.count(d) > 1}, key=str)
    if repeated:
        shown = ", ".join(
            str(s) if split is None else f"{s} (split {split})" for s, split in repeated
        )
        group.notes.append(
            f"{group.name}: seed(s) {shown} appear more than once; "
            "the std understates the spread over seeds"
        )
    if len(group.protocol_versions) > 1:
        group.notes.append(
            f"{group.name}: mixes protocol versions {', '.join(group.protocol_versions)}"
        )


def _declared(rec: Mapping[str, Any], key: str) -> bool:
    """A row declares a setting when its config holds a value for it (``None`` is "not this
    row's option": a plugin option the row's plugins do not have)."""
    return rec.get(key) is not None


def _differing(recipes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Settings (beyond sr/reid/reg and the dataset) whose values differ among the rows that
    declare them; an option a row does not have is not a difference."""
    keys = sorted(set().union(*recipes)) if recipes else []
    out = []
    for k in keys:
        if k in NAME_FIELDS or k == "data":
            continue
        declared = [r for r in recipes if _declared(r, k)]
        if len({json.dumps(r[k], default=str) for r in declared}) > 1:
            out.append(k)
    return out


def _setting_name(key: str) -> str:
    """``options.lambda_a`` reads as ``lambda_a``: plugin options and core fields never share
    a name (the registry refuses it), so the prefix adds only width."""
    return key.removeprefix("options.")


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _name_groups(groups: list[Group]) -> None:
    """Label if given (with its bench where labels repeat), else ``sr/reid/reg`` plus the
    settings that tell unlabelled rows apart (see :func:`_differing`)."""
    benches: dict[str, set[str | None]] = {}
    for g in groups:
        if g.label:
            benches.setdefault(g.label, set()).add(g.bench)
    for g in groups:
        if g.label:
            g.name = f"{g.bench or '?'}: {g.label}" if len(benches[g.label]) > 1 else g.label
            g.name_parts = [g.name]
    unlabelled = [g for g in groups if not g.label]
    recipes = [recipe(g.config) for g in unlabelled]
    differ = _differing(recipes)
    for group, rec in zip(unlabelled, recipes, strict=True):
        if not group.config:
            group.name = str((group.runs or group.pending)[0].run_dir)
            group.name_parts = [group.name]
            continue
        parts = ["/".join(str(rec.get(k, "?")) for k in NAME_FIELDS)]
        parts += [f"{_setting_name(k)}={_value_text(rec[k])}" for k in differ if _declared(rec, k)]
        group.name_parts = parts
        group.name = " ".join(parts)
    heads = {g.name_parts[0] for g in unlabelled if g.config}
    for group in unlabelled:
        # A cut name must still tell rows apart: where every row shares sr/reid/reg, the
        # short name spends its characters on the settings that differ.
        if len(heads) == 1 and len(group.name_parts) > 1:
            group.short_parts = group.name_parts[1:]


def short_name(group: Group, limit: int = SHORT_NAME) -> str:
    """The name cut to about ``limit`` characters for tables and legends: whole settings
    while they fit, then ``+N`` for the rest (a label is cut with an ellipsis); the full name
    stays in :attr:`Group.name`."""
    if len(group.name) <= limit:
        return group.name
    parts = group.short_parts or group.name_parts or [group.name]
    head = parts[0] if len(parts[0]) <= limit else parts[0][: limit - 1] + "…"
    kept = [head]
    for i, part in enumerate(parts[1:], start=1):
        rest = len(parts) - i - 1
        tail = f" +{rest}" if rest else ""
        if len(" ".join([*kept, part])) + len(tail) > limit:
            break
        kept.append(part)
    dropped = len(parts) - len(kept)
    return " ".join(kept) + (f" +{dropped}" if dropped else "")


def board_key(g: Group) -> tuple[str, str]:
    """Rows are comparable only on one dataset under one protocol version: the table a group
    belongs to."""
    data = str(g.config.get("data", "?")) if g.config else "?"
    versions = (
        g.protocol_versions
        if g.runs
        else sorted(
            {
                str((r.config.get("protocol") or {}).get("version") or r.protocol_version or "?")
                for r in g.pending
            }
        )
    )
    return data, ", ".join(versions)


@dataclass
class Board:
    """One table and one CMC plot: the groups of one dataset under one protocol version."""

    data: str
    protocol: str
    groups: list[Group]

    @property
    def benches(self) -> list[str]:
        return sorted({g.bench for g in self.groups if g.bench})

    @property
    def eval_style(self) -> str | None:
        styles = {g.eval_style for g in self.groups if g.eval_style}
        return ", ".join(sorted(styles)) if styles else None

    @property
    def title(self) -> str:
        style = f", {self.eval_style}" if self.eval_style else ""
        return f"{self.data}{style} (protocol {self.protocol})"

    @property
    def slug(self) -> str:
        text = f"{self.data}-{self.protocol}".lower()
        return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-") or "board"


def boards(groups: Iterable[Any]) -> list[Board]:
    """Groups split by dataset and protocol version (:func:`board_key`), in first-seen order;
    runs of different datasets are never ranked or averaged together."""
    out: dict[tuple[str, str], Board] = {}
    for g in as_groups(groups):
        key = board_key(g)
        out.setdefault(key, Board(key[0], key[1], [])).groups.append(g)
    return list(out.values())


def group(results: Iterable[RunResult]) -> list[Group]:
    """Seeds of one recipe (or one label) into one row, in first-seen order."""
    groups: dict[str, Group] = {}
    for run in results:
        g = groups.get(run.key)
        if g is None:
            g = groups[run.key] = Group(
                key=run.key,
                name=run.label or "",
                runs=[],
                label=run.label,
                bench=run.bench,
                query=run.query,
            )
        (g.runs if run.complete else g.pending).append(run)
        if g.paper is None and run.paper:
            g.paper = run.paper
    out = list(groups.values())
    for board in boards(out):
        _name_groups(board.groups)  # names tell apart the rows of one table
    for g in out:
        _summarise(g)
        _check_group(g)
    return out


def as_groups(items: Iterable[Any]) -> list[Group]:
    items = list(items)
    if items and all(isinstance(i, RunResult) for i in items):
        return group(items)
    return items


# --------------------------------------------------------------------------- rendering


def _fmt(stat: Stat | None, scale: float = 100.0, digits: int = 1) -> str:
    if stat is None or math.isnan(stat.mean):
        return "-"
    if math.isinf(stat.mean):
        return "inf"
    text = f"{scale * stat.mean:.{digits}f}"
    if (stat.n > 1 or stat.over == "trials") and math.isfinite(stat.std):
        text += f" ± {scale * stat.std:.{digits}f}" + ("†" if stat.over == "trials" else "")
    return text


@dataclass
class Cell:
    """One table cell: the text markdown shows and the value a click sorts by."""

    text: str
    sort: float | str | None = None
    mark: str = ""  # a paired-comparison mark (:data:`MARKS`), shown after the text


def _stat_cell(stat: Stat | None, scale: float = 100.0, digits: int = 1) -> Cell:
    value = None if stat is None or math.isnan(stat.mean) else scale * stat.mean
    return Cell(_fmt(stat, scale, digits), value)


def _paper_for(
    g: Group, paper: Mapping[str, Mapping[str, float]] | None
) -> Mapping[str, float] | None:
    """The paper's numbers beside row ``g``: ``paper``'s (by label or name), else what its runs
    recorded. None where they name the dataset they were reported on (``data``) and the row
    ran on another (a spec's row moved with ``--data``): a Δ to them would compare other
    people."""
    found: Mapping[str, Any] | None = g.paper
    if paper:
        for key in (g.label, g.name):
            if key is not None and key in paper:
                found = paper[key]
                break
    if found and found.get("data") is not None and found["data"] != g.config.get("data"):
        return None
    return found


def _ratio_label(ratio: str) -> str:
    return f"R-1 ×{ratio}"


def rank1_interval(group: Group) -> tuple[float, float] | None:
    """The 95% interval of the row's Rank-1 (fractions), from each run's bootstrap over query
    identities (:mod:`harness.bootstrap`); ``None`` where a run predates it.

    One run: its percentile interval. Several: mean ± 1.96 se, where se combines the
    identity resampling and the spread between runs. Seeds on one split share their test
    people, so their identity errors move together (the split's se is the seeds' mean se);
    different splits hold different people, so theirs average out.
    """
    q = group.query
    blocks = [r.metrics.get("queries", {}).get(q, {}) for r in group.runs]
    if not blocks or any(not isinstance(b, Mapping) or "rank1_se" not in b for b in blocks):
        return None
    if len(blocks) == 1:
        lo, hi = blocks[0]["rank1_ci"]
        return float(lo), float(hi)
    by_split: dict[Any, list[float]] = {}
    for run, block in zip(group.runs, blocks, strict=True):
        by_split.setdefault(flatten(run.config).get(SPLIT_KEY), []).append(float(block["rank1_se"]))
    identity = math.sqrt(sum(np.mean(v) ** 2 for v in by_split.values())) / len(by_split)
    values = [float(b["rank1"]) for b in blocks]
    between = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    mean, se = float(np.mean(values)), math.hypot(identity, between)
    return mean - 1.96 * se, mean + 1.96 * se


# --------------------------------------------------------------------------- paired comparisons

#: the metrics rows are compared in, each on the row's own query kind (:mod:`harness.paired`)
PAIRED_METRICS = ("rank1", "mAP")
#: the marks a metric's cell carries: the table's best row, and rows not apart from it
MARKS = {"best": "★", "tied": "≈"}
_METRIC_NAMES = {"rank1": "R-1", "mAP": "mAP"}


@dataclass
class RowComparison:
    """One row against its table's best row and its reference row, per metric.

    ``mark[metric]`` is ``best``, ``tied`` (the paired interval of the difference to the
    best row holds 0) or ``apart``; a metric without a paired test has no mark.
    """

    mark: dict[str, str] = field(default_factory=dict)
    vs_best: dict[str, pt.Paired] = field(default_factory=dict)
    vs_reference: dict[str, pt.Paired] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            metric: {
                "mark": self.mark.get(metric),
                "vs_best": self.vs_best[metric].to_dict() if metric in self.vs_best else None,
                "vs_reference": (
                    self.vs_reference[metric].to_dict() if metric in self.vs_reference else None
                ),
            }
            for metric in PAIRED_METRICS
        }


@dataclass
class Comparison:
    """A table's paired comparisons: which rows tie with its best row, and each row's Δ to
    its reference row (the one a bench spec names, else the best Rank-1 row)."""

    best: dict[str, Group] = field(default_factory=dict)
    reference: Group | None = None
    named: bool = False
    rows: dict[int, RowComparison] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, g: Group) -> RowComparison:
        return self.rows.get(id(g), RowComparison())

    @property
    def any(self) -> bool:
        return any(r.vs_best or r.vs_reference for r in self.rows.values())

    def line(self) -> str:
        """Which rows the marks and Δ are taken against, in words (under a table)."""
        if not self.any:
            return ""
        best = "; ".join(f"best {_METRIC_NAMES[m]}: {g.name}" for m, g in self.best.items())
        ref = self.reference.name if self.reference else "-"
        why = "named by the bench spec" if self.named else "the best R-1 row"
        return f"Paired comparisons: {best}; Δ is to the reference row {ref} ({why})."


def mark_reference(groups: Iterable[Group], label: str | None) -> bool:
    """Flag the rows labelled (or named) ``label`` as their table's reference; whether any was."""
    found = False
    for g in groups:
        g.reference = label is not None and label in (g.label, g.name)
        found = found or g.reference
    return found


def _pairing_key(run: RunResult) -> tuple[Any, Any]:
    """Runs of two rows are paired by seed and split (:mod:`harness.paired`)."""
    return run.seed, flatten(run.config).get(SPLIT_KEY)


def _row_outcomes(g: Group) -> tuple[dict[Any, QueryOutcomes] | None, str | None]:
    found = {}
    for run in g.runs:
        outcome, problem = run.outcomes(g.query)
        if outcome is None:
            return None, problem
        found[_pairing_key(run)] = outcome
    return found, None


def _best(rows: Sequence[Group], metric: str) -> Group | None:
    scored = [(g.stat(g.query, metric), g) for g in rows]
    scored = [(s.mean, g) for s, g in scored if s is not None and math.isfinite(s.mean)]
    return max(scored, key=lambda t: t[0])[1] if scored else None


def compare_rows(groups: Sequence[Group]) -> Comparison:
    """The paired comparisons of one table's finished rows (:mod:`harness.paired`).

    The best row of each metric is chosen among the rows that report the SR query (the HR
    and bicubic query rows are bounds and baselines, not contenders), or among all rows
    where none does. Rows whose runs lack per-query outcomes (runs from before
    ``per_query.json``) or hold other test queries get no paired comparison and a note.
    """
    shown = [g for g in groups if g.n > 0]
    out = Comparison()
    if len(shown) < 2 or len({board_key(g) for g in shown}) > 1:
        return out  # rows of different tables are never compared
    contenders = [g for g in shown if g.query == "sr"] or shown
    out.best = {m: b for m in PAIRED_METRICS if (b := _best(contenders, m)) is not None}
    named = [g for g in shown if g.reference]
    out.reference = named[0] if named else out.best.get("rank1")
    out.named = bool(named)
    outcomes: dict[int, dict[Any, QueryOutcomes] | None] = {}
    missing: dict[str, list[str]] = {}
    for g in shown:
        outcomes[id(g)], problem = _row_outcomes(g)
        if problem:
            missing.setdefault(problem, []).append(g.name)
    for problem, names in missing.items():
        who = "any row" if len(names) == len(shown) else ", ".join(names)
        out.notes.append(f"no paired comparison for {who}: {problem}")
    refused: set[tuple[int, int]] = set()

    def test(g: Group, other: Group, metric: str) -> pt.Paired | None:
        a, b = outcomes[id(g)], outcomes[id(other)]
        if a is None or b is None:
            return None
        try:
            return pt.compare(a, b, metric)
        except pt.PairingError as exc:
            pair = (id(g), id(other))
            if pair not in refused:
                refused.add(pair)
                out.notes.append(f"{g.name} and {other.name} are not paired: {exc}")
            return None

    for g in shown:
        row = out.rows.setdefault(id(g), RowComparison())
        for metric, best in out.best.items():
            if g is best:
                row.mark[metric] = "best"
            elif (result := test(g, best, metric)) is not None:
                row.vs_best[metric] = result
                row.mark[metric] = "apart" if result.significant else "tied"
            ref = out.reference
            if ref is None or g is ref:
                continue
            result = row.vs_best.get(metric) if ref is best else test(g, ref, metric)
            if result is not None:
                row.vs_reference[metric] = result
    return out


def _delta_cell(g: Group, cmp: Comparison, metric: str) -> Cell:
    if g is cmp.reference:
        return Cell("ref", 0.0)
    result = cmp.row(g).vs_reference.get(metric)
    if result is None:
        return Cell("-")
    lo, hi = result.ci
    text = f"{100 * result.delta:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return Cell(text, 100 * result.delta)


def _marked(cell: Cell, g: Group, cmp: Comparison, metric: str) -> Cell:
    """The cell with its mark; none where the table has no paired test at all (runs from
    before per_query.json), so a best row is never marked without its rivals."""
    if cmp.any:
        cell.mark = MARKS.get(cmp.row(g).mark.get(metric, ""), "")
    return cell


def table_cells(
    groups: Sequence[Group], paper: Mapping[str, Mapping[str, float]] | None = None
) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells shared by the markdown and HTML renderings (finished groups only).

    A ``Data`` column appears only when the groups span several datasets; a per-dataset
    board (:func:`boards`) names its dataset in its heading instead, which keeps a Table-1
    sized board within a 1280-pixel window.
    """
    shown = [g for g in groups if g.n > 0]
    ratios = sorted(
        {r for g in shown for r in g.per_ratio.get(g.query, {})},
        key=_ratio_order,
    )
    others = ordered_kinds(k for g in shown for k in g.stats if k != "sr")
    papers = [_paper_for(g, paper) for g in shown]
    with_paper = any(papers)
    with_query = any(g.query != "sr" for g in shown)
    with_data = len({str(g.config.get("data", "?")) for g in shown}) > 1
    header = ["Run"] + (["Data"] if with_data else []) + (["Query"] if with_query else [])
    intervals = [rank1_interval(g) for g in shown]
    with_ci = any(ci is not None for ci in intervals)
    cmp = compare_rows(shown)
    with_delta = cmp.any and cmp.reference is not None
    header += ["Runs", "R-1"] + (["R-1 95% CI"] if with_ci else [])
    header += ([DELTA_HEADERS["rank1"]] if with_delta else []) + ["R-5", "R-10", "mAP"]
    header += [DELTA_HEADERS["mAP"]] if with_delta else []
    header += [_ratio_label(r) for r in ratios]
    header += ["PSNR", "SSIM"]
    header += [f"{'HR' if k == 'hr' else k} R-1" for k in others]
    if with_paper:
        header += ["Paper R-1/5/10", "Δ R-1"]
    rows = []
    for g, pap, ci in zip(shown, papers, intervals, strict=True):
        q = g.query
        row = [Cell(g.name, g.name.lower())]
        if with_data:
            data = str(g.config.get("data", "?"))
            if g.eval_style == "single-gallery-shot":
                data += " (single-shot)"
            row.append(Cell(data, data))
        if with_query:
            row.append(Cell(QUERY_NAMES.get(q, q), QUERY_NAMES.get(q, q).lower()))
        row.append(Cell(str(g.n), float(g.n)))
        row.append(_marked(_stat_cell(g.stat(q, "rank1")), g, cmp, "rank1"))
        if with_ci:
            text = "-" if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
            row.append(Cell(text, None if ci is None else 100 * ci[0]))
        if with_delta:
            row.append(_delta_cell(g, cmp, "rank1"))
        row += [_stat_cell(g.stat(q, m)) for m in ("rank5", "rank10")]
        row.append(_marked(_stat_cell(g.stat(q, "mAP")), g, cmp, "mAP"))
        if with_delta:
            row.append(_delta_cell(g, cmp, "mAP"))
        row += [_stat_cell(g.per_ratio.get(q, {}).get(r, {}).get("rank1")) for r in ratios]
        row += [_stat_cell(g.stat(q, "psnr"), 1.0, 2), _stat_cell(g.stat(q, "ssim"), 1.0, 3)]
        row += [_stat_cell(g.stat(k, "rank1")) for k in others]
        if with_paper:
            if pap:
                nums = [pap.get(k) for k in ("rank1", "rank5", "rank10")]
                text = " / ".join("-" if v is None else f"{float(v):.1f}" for v in nums)
                row.append(Cell(text, None if nums[0] is None else float(nums[0])))
                ours = g.stat(q, "rank1")
                if ours is not None and pap.get("rank1") is not None and math.isfinite(ours.mean):
                    delta = 100.0 * ours.mean - float(pap["rank1"])
                    row.append(Cell(f"{delta:+.1f}", delta))
                else:
                    row.append(Cell("-"))
            else:
                row += [Cell(""), Cell("")]
        rows.append(row)
    return header, rows


def table(
    groups: Sequence[Group], paper: Mapping[str, Mapping[str, float]] | None = None
) -> tuple[list[str], list[list[str]]]:
    """:func:`table_cells` as plain text."""
    header, rows = table_cells(groups, paper)
    return header, [[f"{c.text} {c.mark}" if c.mark else c.text for c in row] for row in rows]


def protocol_line(groups: Sequence[Group]) -> str:
    versions = sorted({v for g in groups if g.n for v in g.protocol_versions})
    if not versions:
        return "protocol ?"
    if len(versions) == 1:
        return f"protocol {versions[0]}"
    return f"protocols {', '.join(versions)} (rows under different protocols are not comparable)"


def notes(groups: Sequence[Group]) -> list[str]:
    """Why something is missing or suspicious: unfinished runs, label clashes, repeated seeds."""
    out = [n for g in groups for n in g.notes]
    for g in groups:
        for run in g.pending:
            out.append(f"not included: {run.run_dir} ({run.status})")
    for board in boards(groups):
        out += compare_rows(board.groups).notes
    return out


SPLIT_KEY = "options.split"  # a dataset's seeded train/test split (VIPeR's 10)
TEXT_COLUMNS = ("Run", "Data", "Query")  # left-aligned; numbers are right-aligned
QUERY_NAMES = {"sr": "SR", "bicubic": "bicubic", "hr": "HR"}

LEGEND = (
    "SR query (LR query -> SR -> re-id) unless a column says otherwise; Rank-k and mAP in %, "
    "mean ± std over runs (seeds x splits; sample std), † = ± over the gallery trials of a "
    "single run; PSNR in dB. Δ R-1 is ours minus the paper's. R-1 95% CI: a bootstrap over "
    "query identities (one run: its percentile interval; several: mean ± 1.96 se, identity "
    "resampling and the spread between runs combined). "
    f"{MARKS['best']} marks a table's best row in R-1 and in mAP (among its SR-query rows), "
    f"{MARKS['tied']} a row not significantly different from it, and Δ R-1 / Δ mAP vs ref is "
    "the row minus the table's reference row (named under the table) in points, with its 95% "
    "interval. Both come from a paired bootstrap over query identities "
    f"({RESAMPLES} resamples, seeded): each resample draws the test people once for both rows, "
    "pairs their runs seed with seed (and split with split) and draws the pairs too; "
    f"{MARKS['tied']}: the 95% interval of the difference to the best row holds 0."
)
DELTA_HEADERS = {"rank1": "Δ R-1 vs ref", "mAP": "Δ mAP vs ref"}


def legend_names(groups: Sequence[Group]) -> dict[int, str]:
    """Short names for legends, made unique within one plot (``#2`` where two cut alike)."""
    out: dict[int, str] = {}
    seen: dict[str, int] = {}
    for g in groups:
        name = g.short
        seen[name] = seen.get(name, 0) + 1
        out[id(g)] = name if seen[name] == 1 else f"{name} #{seen[name]}"
    return out


def cmc_plot(groups: Sequence[Group], title: str = "Mean CMC") -> Any:
    """Mean CMC of each finished group (its row's query kind), ±1 std over runs where there
    are several; the legend holds the short row names, outside the axes."""
    names = legend_names(groups)
    curves = {names[id(g)]: g.cmc[g.query] for g in groups if g.n and g.query in g.cmc}
    bands = {names[id(g)]: g.cmc_std[g.query] for g in groups if g.n > 1 and g.query in g.cmc_std}
    return cmc_figure(curves, title, bands)


def to_json(groups: Iterable[Any], paper: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """leaderboard.json (docs/results.md): every row's statistics, each table's rows and
    paired comparisons, and the notes."""
    groups = as_groups(groups)
    compared = {id(b.groups[0]): compare_rows(b.groups) for b in boards(groups) if b.groups}
    rows = []
    for g in groups:
        d = g.to_dict()
        d["paper"] = _paper_for(g, paper)
        d["paired"] = next((c.row(g).to_dict() for c in compared.values() if id(g) in c.rows), None)
        rows.append(d)
    versions = sorted({v for g in groups if g.n for v in g.protocol_versions})
    tables = []
    for b in boards(groups):
        cmp = compared[id(b.groups[0])]
        tables.append(
            {
                "data": b.data,
                "protocol": b.protocol,
                "title": b.title,
                "rows": [g.name for g in b.groups],
                "best": {m: g.name for m, g in cmp.best.items()},
                "reference": cmp.reference.name if cmp.reference else None,
                "reference_named": cmp.named,
            }
        )
    return {
        "schema": LEADERBOARD_SCHEMA,
        "protocol_versions": versions,
        "paired": {
            "method": "paired bootstrap over query identities",
            "resamples": RESAMPLES,
            "level": pt.LEVEL,
            "seed": pt.SEED,
            "metrics": list(PAIRED_METRICS),
            "marks": MARKS,
        },
        "boards": tables,
        "groups": rows,
        "notes": notes(groups),
    }


#: leaderboard.json's layout version (docs/results.md)
LEADERBOARD_SCHEMA = 1
