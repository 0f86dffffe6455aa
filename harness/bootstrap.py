"""Confidence intervals for a run's ranking metrics: a seeded bootstrap over query identities.

Why identities, not queries: a person's queries are not independent (same
appearance, same clothes), so resampling single queries would understate the
spread. Each resample draws as many identities as the test set has, with
replacement, and recomputes Rank-k, mAP and mINP over the queries of the drawn
identities (an identity drawn twice counts twice). With 100 test identities one
query is about one Rank-1 point, and the interval says how far a row could move
on another draw of the same people.

Single-gallery-shot evaluation (VIPeR, CUHK03, CAVIAR) averages several random
gallery draws: each query's values are first averaged over the draws, then the
identities are resampled, so the interval covers the people, not the draws
(their spread stays in ``cmc_std``).

The numbers are stored beside each metric as ``<metric>_se`` (the bootstrap
standard error) and ``<metric>_ci`` (the percentile interval), as fractions like
the metrics, with ``bootstrap`` saying how they were made (lm-evaluation-harness
stores ``<metric>_stderr`` the same way).

Each query's own outcomes (rank-k hits, AP, INP, with its index, person and LR ratio) go to
the run folder's ``per_query.json`` (:func:`per_query_block`, :func:`read_per_query`), so two
rows can later be resampled together (:mod:`harness.paired`). docs/results.md has the layout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics import RankResult, SingleShotResult
from harness.rundir import PER_QUERY

#: resamples per interval: enough for a stable 95% percentile interval at this size
RESAMPLES = 1000
LEVEL = 0.95
RANKS = (1, 5, 10)


def per_query_values(
    result: RankResult | SingleShotResult,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The query indices and, per metric, each query's value (averaged over gallery draws)."""
    trials = result.per_trial if isinstance(result, SingleShotResult) else (result,)
    index = np.unique(np.concatenate([t.query_index for t in trials]))
    position = {int(q): i for i, q in enumerate(index)}
    sums = {name: np.zeros(len(index)) for name in (*(f"rank{k}" for k in RANKS), "mAP", "mINP")}
    counts = np.zeros(len(index))
    for t in trials:
        rows = np.array([position[int(q)] for q in t.query_index], dtype=np.int64)
        counts[rows] += 1
        for k in RANKS:
            np.add.at(sums[f"rank{k}"], rows, (t.first_rank < k).astype(float))
        np.add.at(sums["mAP"], rows, t.ap)
        np.add.at(sums["mINP"], rows, t.inp)
    return index, {name: total / np.maximum(counts, 1) for name, total in sums.items()}


def bootstrap(
    values: Mapping[str, np.ndarray],
    identities: Sequence[int] | np.ndarray,
    seed: int,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> dict[str, Any]:
    """``{<metric>_se, <metric>_ci}`` of the mean of each per-query value, resampling identities.

    ``values[name][i]`` and ``identities[i]`` belong to query ``i``.
    """
    ids = np.asarray(identities)
    unique, owner = np.unique(ids, return_inverse=True)
    count = np.bincount(owner, minlength=len(unique)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(unique), size=(resamples, len(unique)))
    drawn_count = count[draws].sum(1)
    out: dict[str, Any] = {}
    alpha = (1 - level) / 2
    for name, per_query in values.items():
        per_id = np.bincount(
            owner, weights=np.asarray(per_query, dtype=float), minlength=len(unique)
        )
        means = per_id[draws].sum(1) / drawn_count
        out[f"{name}_se"] = float(means.std(ddof=1))
        out[f"{name}_ci"] = [float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))]
    return out


def rank_intervals(
    result: RankResult | SingleShotResult, q_pids: Sequence[int] | np.ndarray, seed: int
) -> dict[str, Any]:
    """The bootstrap intervals of Rank-1/5/10, mAP and mINP of one evaluation, plus how made."""
    index, values = per_query_values(result)
    pids = np.asarray(q_pids)[index]
    return {
        **bootstrap(values, pids, seed),
        "bootstrap": {
            "resamples": RESAMPLES,
            "level": LEVEL,
            "unit": "query identity",
            "identities": int(len(np.unique(pids))),
            "seed": int(seed),
        },
    }


# --------------------------------------------------------------------------- per-query outcomes

#: the run folder's per-query file (written at evaluation; read by paired comparisons)
PER_QUERY_FILE = PER_QUERY
#: its layout version (docs/results.md)
PER_QUERY_SCHEMA = 1
#: metrics.json's name of each metric -> its per-query column (mAP is the mean of AP)
PER_QUERY_COLUMNS = {"rank1": "rank1", "rank5": "rank5", "rank10": "rank10"}
PER_QUERY_COLUMNS |= {"mAP": "AP", "mINP": "INP"}


def _compact(values: np.ndarray) -> list[float | int]:
    """Six decimals (a mean over 3,368 Market queries moves by < 1e-6); whole numbers as ints,
    so a market-style hit column reads 0/1."""
    out: list[float | int] = []
    for v in np.round(np.asarray(values, dtype=float), 6):
        out.append(int(v) if float(v).is_integer() else float(v))
    return out


def per_query_block(
    result: RankResult | SingleShotResult,
    q_pids: Sequence[int] | np.ndarray,
    q_ratios: Sequence[float] | np.ndarray,
) -> dict[str, list[float | int]]:
    """One query kind's columns for :data:`PER_QUERY_FILE`: each evaluated query's index (its
    position in split.json's query list), person id, LR ratio, rank-1/5/10 hit, AP and INP,
    averaged over gallery draws where there are several (:func:`per_query_values`)."""
    index, values = per_query_values(result)
    block: dict[str, list[float | int]] = {
        "index": [int(i) for i in index],
        "pid": [int(p) for p in np.asarray(q_pids)[index]],
        "ratio": [float(r) for r in np.asarray(q_ratios, dtype=float)[index]],
    }
    for name, column in PER_QUERY_COLUMNS.items():
        block[column] = _compact(values[name])
    return block


@dataclass(frozen=True)
class QueryOutcomes:
    """One query kind of one run, query by query: what a paired comparison resamples.

    ``values`` is keyed by metrics.json's names (``rank1``, ``mAP``, ...): the mean of
    ``values["mAP"]`` is the run's mAP.
    """

    index: np.ndarray
    pid: np.ndarray
    ratio: np.ndarray
    values: dict[str, np.ndarray]
    data: str | None = None
    protocol_version: str | None = None

    def same_queries(self, other: QueryOutcomes) -> bool:
        """Same test queries: indices, people and LR ratios, in order."""
        return (
            np.array_equal(self.index, other.index)
            and np.array_equal(self.pid, other.pid)
            and np.allclose(self.ratio, other.ratio)
        )


def read_per_query(run_dir: str | Path) -> tuple[dict[str, QueryOutcomes] | None, str | None]:
    """A run folder's per-query outcomes by query kind, or ``(None, why not)``: a run from
    before the file existed (``harness eval`` writes it), or a damaged one."""
    path = Path(run_dir) / PER_QUERY_FILE
    if not path.is_file():
        return None, f"no {PER_QUERY_FILE} (a run from before it existed; harness eval writes it)"
    try:
        doc = json.loads(path.read_text())
        if doc.get("schema") != PER_QUERY_SCHEMA:
            return (
                None,
                f"{PER_QUERY_FILE} has schema {doc.get('schema')!r}, not {PER_QUERY_SCHEMA}",
            )
        out = {}
        for kind, block in doc["queries"].items():
            n = len(block["index"])
            columns = {
                name: np.asarray(block[col], dtype=float) for name, col in PER_QUERY_COLUMNS.items()
            }
            if any(len(v) != n for v in (block["pid"], block["ratio"], *columns.values())):
                return None, f"{PER_QUERY_FILE}: the {kind} columns differ in length"
            out[str(kind)] = QueryOutcomes(
                index=np.asarray(block["index"], dtype=np.int64),
                pid=np.asarray(block["pid"], dtype=np.int64),
                ratio=np.asarray(block["ratio"], dtype=float),
                values=columns,
                data=doc.get("data"),
                protocol_version=doc.get("protocol_version"),
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"unreadable {PER_QUERY_FILE} ({type(exc).__name__}: {exc})"
    return out, None
