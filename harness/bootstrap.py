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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.metrics import RankResult, SingleShotResult

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
