"""harness.bootstrap: confidence intervals over query identities, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.bootstrap import bootstrap, per_query_values, rank_intervals
from harness.evaluate import rank_metrics
from harness.metrics import evaluate_rank, single_gallery_shot_cmc


def test_two_identities_one_always_found_one_never():
    # identity 0: both queries hit at rank 1; identity 1: both miss. Resampling two identities
    # gives Rank-1 0, 0.5 or 1 with probability 1/4, 1/2, 1/4: se sqrt(1/8), interval [0, 1].
    values = {"rank1": np.array([1.0, 1.0, 0.0, 0.0])}
    out = bootstrap(values, [0, 0, 1, 1], seed=0, resamples=20000)
    assert out["rank1_se"] == pytest.approx(np.sqrt(1 / 8), abs=0.01)
    assert out["rank1_ci"] == [0.0, 1.0]


def test_identities_not_queries_are_the_unit():
    # one identity with 9 hits and 9 identities with one miss each: resampling queries would
    # give a narrow interval; resampling identities weighs the big identity as one draw of ten
    values = {"rank1": np.array([1.0] * 9 + [0.0] * 9)}
    ids = [0] * 9 + list(range(1, 10))
    by_id = bootstrap(values, ids, seed=1)
    by_query = bootstrap(values, list(range(18)), seed=1)
    assert by_id["rank1_se"] > 1.5 * by_query["rank1_se"]


def test_a_perfect_model_has_no_spread_and_the_seed_fixes_the_draws():
    values = {"mAP": np.ones(6)}
    assert bootstrap(values, [0, 0, 1, 1, 2, 2], seed=3) == {"mAP_se": 0.0, "mAP_ci": [1.0, 1.0]}
    noisy = {"mAP": np.array([0.2, 0.9, 0.4, 0.7, 0.1, 1.0])}
    assert bootstrap(noisy, [0, 0, 1, 1, 2, 2], seed=3) == bootstrap(
        noisy, [0, 0, 1, 1, 2, 2], seed=3
    )


def _toy(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q_pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    g_pids = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    dist = torch.rand(8, 8, generator=g)
    return dist, q_pids, g_pids, torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)


def test_per_query_values_average_to_the_reported_metrics():
    dist, qp, gp, qc, gc = _toy()
    result = evaluate_rank(dist, qp, gp, qc, gc, max_rank=10)
    index, values = per_query_values(result)
    assert list(index) == list(range(8))
    assert values["rank1"].mean() == pytest.approx(result.cmc[0])
    assert values["rank5"].mean() == pytest.approx(result.cmc[4])
    assert values["mAP"].mean() == pytest.approx(result.mAP)
    assert values["mINP"].mean() == pytest.approx(result.mINP)


def test_single_gallery_shot_values_are_averaged_over_the_draws_first():
    dist, qp, gp, qc, gc = _toy(1)
    result = single_gallery_shot_cmc(dist, qp, gp, qc, gc, trials=5, seed=2, max_rank=4)
    _, values = per_query_values(result)
    assert values["rank1"].mean() == pytest.approx(result.cmc[0])
    assert values["mAP"].mean() == pytest.approx(result.mAP)
    # a query's value is its hit rate over the 5 draws
    assert set(np.round(values["rank1"] * 5, 6)) <= {0, 1, 2, 3, 4, 5}


@pytest.mark.parametrize("single_shot", [False, True])
def test_every_rank_metric_carries_its_interval(single_shot):
    dist, qp, gp, qc, gc = _toy(2)
    out = rank_metrics(dist, qp, gp, qc, gc, single_gallery_shot=single_shot, trials=3, seed=0)
    for name in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        lo, hi = out[f"{name}_ci"]
        assert lo <= out[name] + 1e-12 and out[name] <= hi + 1e-12 and out[f"{name}_se"] >= 0
    assert out["bootstrap"]["unit"] == "query identity" and out["bootstrap"]["identities"] == 4
    assert (
        rank_intervals(evaluate_rank(dist, qp, gp, qc, gc), qp.numpy(), 0)["rank1_ci"]
        == (
            rank_metrics(dist, qp, gp, qc, gc, single_gallery_shot=False, trials=1, seed=0)[
                "rank1_ci"
            ]
        )
    )
