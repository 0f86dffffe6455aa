"""Is a gap between two leaderboard rows real? A paired bootstrap over query identities.

Two rows of one table are evaluated on the same test queries, so most of what moves one
row's Rank-1 from one draw of people to another (an easy person, a hard one) moves the
other's too. Comparing their separate intervals ignores that and calls real gaps ties. A
paired test resamples the people once and measures both rows on the same resample: the
spread of the difference is what is left once the shared luck cancels.

How (``paired_bootstrap``), per resample:

- the test identities are drawn with replacement (as many as there are), once, and the
  same draw serves both rows; an identity drawn twice counts its queries twice, as in
  :mod:`harness.bootstrap`. Single-gallery-shot runs arrive already averaged over their
  gallery draws (``per_query.json``), which both rows share (the protocol seed draws them);
- a row with several runs pairs them seed with seed on the same split (a seed or split only
  one row has is left out). Runs on the same test people (the seeds of one split) share the
  resample's identity draw; runs on other people (another split) get their own. Where there
  are several pairs, the pairs are drawn with replacement too, and the resample's Δ is the
  mean Δ over the drawn pairs, so the interval also covers training noise between seeds.

Δ is row ``a`` minus row ``b`` (fractions, like the metrics), with the percentile interval
at :data:`LEVEL` over :data:`RESAMPLES` resamples and a two-sided p-value (twice the smaller
tail share at 0). Two rows are "not significantly different" when that interval holds 0.
The draws are seeded (:data:`SEED`), so a leaderboard is the same every time it is written.

Rows that do not share their test queries (other indices, people or LR ratios, another
dataset or protocol version) are refused with :class:`PairingError`, never compared.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.bootstrap import LEVEL, RESAMPLES, QueryOutcomes
from harness.errors import HarnessError

#: the bootstrap's seed: a leaderboard's marks must not change between two writes
SEED = 0


class PairingError(HarnessError):
    """Two rows that cannot be compared query by query."""


@dataclass(frozen=True)
class Paired:
    """Row ``a`` minus row ``b`` in one metric (fractions), with its paired interval."""

    metric: str
    delta: float
    ci: tuple[float, float]
    p_value: float
    pairs: int
    identities: int
    resamples: int = RESAMPLES
    level: float = LEVEL
    paired: bool = True

    @property
    def significant(self) -> bool:
        """The interval of the difference excludes 0."""
        return not (self.ci[0] <= 0.0 <= self.ci[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "delta": self.delta,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "significant": self.significant,
            "pairs": self.pairs,
            "identities": self.identities,
            "resamples": self.resamples,
            "level": self.level,
            "method": "paired bootstrap over query identities"
            if self.paired
            else "independent bootstraps over query identities",
        }


def _draw_weights(rng: np.random.Generator, people: int, resamples: int) -> np.ndarray:
    """``(resamples, people)``: how often each identity is drawn in each resample."""
    draws = rng.integers(0, people, size=(resamples, people))
    flat = (np.arange(resamples)[:, None] * people + draws).ravel()
    return np.bincount(flat, minlength=resamples * people).reshape(resamples, people).astype(float)


def paired_bootstrap(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    metric: str = "rank1",
    *,
    seed: int = SEED,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    paired: bool = True,
) -> Paired:
    """Δ = mean(a) - mean(b) over ``pairs`` of ``(a_values, b_values, identities)``, each
    pair one run of each row on the same queries (``a_values[i]``, ``b_values[i]`` and
    ``identities[i]`` belong to query ``i``).

    ``paired=False`` draws the two rows' identities independently instead: the interval one
    would get from the rows' own intervals, for comparison (and for tests).
    """
    if not pairs:
        raise PairingError("nothing to compare: no pair of runs")
    rng = np.random.default_rng(seed)
    people: dict[bytes, list[int]] = {}  # pairs on the same test people share their draws
    for i, (a, b, ids) in enumerate(pairs):
        if not len(a) == len(b) == len(ids) or len(ids) == 0:
            raise PairingError(f"pair {i}: {len(a)} and {len(b)} values for {len(ids)} queries")
        people.setdefault(np.asarray(ids, dtype=np.int64).tobytes(), []).append(i)
    deltas = np.empty((resamples, len(pairs)))
    identities = 0
    for members in people.values():
        ids = np.asarray(pairs[members[0]][2])
        unique, owner = np.unique(ids, return_inverse=True)
        identities += len(unique)
        count = np.bincount(owner, minlength=len(unique)).astype(float)
        w_a = _draw_weights(rng, len(unique), resamples)
        w_b = w_a if paired else _draw_weights(rng, len(unique), resamples)
        for i in members:
            a, b, _ = pairs[i]
            sum_a = np.bincount(owner, weights=np.asarray(a, float), minlength=len(unique))
            sum_b = np.bincount(owner, weights=np.asarray(b, float), minlength=len(unique))
            deltas[:, i] = (w_a @ sum_a) / (w_a @ count) - (w_b @ sum_b) / (w_b @ count)
    if len(pairs) > 1:  # the seeds too: a resample draws its pairs with replacement
        pick = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
        boot = deltas[np.arange(resamples)[:, None], pick].mean(1)
    else:
        boot = deltas[:, 0]
    point = float(np.mean([np.mean(a) - np.mean(b) for a, b, _ in pairs]))
    alpha = (1 - level) / 2
    lo, hi = (float(v) for v in np.quantile(boot, [alpha, 1 - alpha]))
    p_value = min(1.0, 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))))
    return Paired(
        metric, point, (lo, hi), p_value, len(pairs), identities, resamples, level, paired
    )


def compare(
    a: Mapping[Hashable, QueryOutcomes],
    b: Mapping[Hashable, QueryOutcomes],
    metric: str = "rank1",
    **kwargs: Any,
) -> Paired:
    """Row ``a`` minus row ``b``: each maps a run's (seed, split) to its outcomes on the query
    kind the row reports. Runs are paired by that key; every pair must hold the same test
    queries of the same dataset under the same protocol version, or :class:`PairingError`."""
    keys = [k for k in a if k in b]
    if not keys:
        raise PairingError(
            f"no seed and split in common (one row has {sorted(map(str, a))}, "
            f"the other {sorted(map(str, b))})"
        )
    pairs = []
    for key in keys:
        x, y = a[key], b[key]
        for what in ("data", "protocol_version"):
            if getattr(x, what) != getattr(y, what):
                raise PairingError(
                    f"{key}: different {what.replace('_', ' ')} "
                    f"({getattr(x, what)!r} and {getattr(y, what)!r})"
                )
        if not x.same_queries(y):
            raise PairingError(
                f"{key}: the rows' test queries differ (indices, people or LR ratios); "
                "only rows evaluated on the same queries are paired"
            )
        if metric not in x.values or metric not in y.values:
            raise PairingError(f"no per-query {metric} to compare")
        pairs.append((x.values[metric], y.values[metric], x.pid))
    return paired_bootstrap(pairs, metric, **kwargs)
