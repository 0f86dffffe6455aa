"""harness.paired (a paired bootstrap over query identities) and the per-query outcomes it reads
(harness.bootstrap's per_query.json, written at evaluation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.bootstrap import (
    PER_QUERY_FILE,
    QueryOutcomes,
    per_query_block,
    read_per_query,
)
from harness.data.prepare import prepare_data
from harness.evaluate import _rank, evaluate_models
from harness.models import build_models
from harness.paired import PairingError, compare, paired_bootstrap
from tests.helpers import smoke_config


def outcomes(
    rank1, pids=None, *, index=None, ratio=None, data="synthetic", protocol="mlr-2.0"
) -> QueryOutcomes:
    rank1 = np.asarray(rank1, dtype=float)
    n = len(rank1)
    return QueryOutcomes(
        index=np.arange(n) if index is None else np.asarray(index),
        pid=np.arange(n) // 2 if pids is None else np.asarray(pids),
        ratio=np.full(n, 2.0) if ratio is None else np.asarray(ratio, dtype=float),
        values={"rank1": rank1, "mAP": rank1 * 0.8},
        data=data,
        protocol_version=protocol,
    )


def _hits(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(float)


# --------------------------------------------------------------------------- the bootstrap


def test_identical_rows_differ_by_nothing():
    a = outcomes(_hits(200, 0.5, 0))
    result = compare({(0, None): a}, {(0, None): a})
    assert result.delta == 0 and result.ci == (0.0, 0.0) and result.p_value == 1.0
    assert not result.significant and result.pairs == 1 and result.identities == 100


def test_one_query_apart_is_a_tie_and_far_apart_is_not():
    base = _hits(200, 0.5, 1)
    one_more = base.copy()
    one_more[np.flatnonzero(base == 0)[0]] = 1.0  # the same ranking but one query
    near = compare({0: outcomes(one_more)}, {0: outcomes(base)})
    assert near.delta == pytest.approx(1 / 200) and not near.significant
    assert near.ci[0] <= 0 <= near.ci[1] and near.p_value > 0.05
    far = compare({0: outcomes(_hits(200, 0.9, 2))}, {0: outcomes(base)})
    assert far.significant and far.ci[0] > 0 and far.p_value < 0.01


def test_pairing_narrows_the_interval_of_correlated_rows():
    # b is a with 10 of 200 queries flipped: the rows share almost all their luck, which a
    # paired draw cancels and two independent draws do not
    a = _hits(200, 0.5, 3)
    b = a.copy()
    b[:10] = 1 - b[:10]
    pids = np.arange(200) // 2
    paired = paired_bootstrap([(a, b, pids)])
    unpaired = paired_bootstrap([(a, b, pids)], paired=False)
    assert paired.delta == unpaired.delta
    width = lambda r: r.ci[1] - r.ci[0]  # noqa: E731
    assert width(paired) < 0.4 * width(unpaired)


def test_the_seed_fixes_the_draws():
    a, b = outcomes(_hits(100, 0.4, 4)), outcomes(_hits(100, 0.6, 5))
    assert compare({0: a}, {0: b}) == compare({0: a}, {0: b})
    assert compare({0: a}, {0: b}, seed=1).ci != compare({0: a}, {0: b}).ci


def test_seeds_pair_with_seeds_and_a_lone_seed_is_left_out():
    a = {(s, None): outcomes(_hits(100, 0.6, 10 + s)) for s in range(3)}
    b = {(s, None): outcomes(_hits(100, 0.4, 20 + s)) for s in range(2)}
    result = compare(a, b)
    assert result.pairs == 2 and result.identities == 50  # both seeds: the same 50 people
    expected = np.mean([a[k].values["rank1"].mean() - b[k].values["rank1"].mean() for k in b])
    assert result.delta == pytest.approx(expected)


def test_other_splits_are_other_people():
    a = {(0, j): outcomes(_hits(40, 0.6, j), pids=np.arange(40) // 2 + 100 * j) for j in range(2)}
    b = {(0, j): outcomes(_hits(40, 0.5, 9 + j), pids=np.arange(40) // 2 + 100 * j) for j in (0, 1)}
    assert compare(a, b).identities == 40  # 20 people in each split, drawn separately


def test_rows_with_other_queries_are_refused():
    a = outcomes(_hits(20, 0.5, 6))
    with pytest.raises(PairingError, match="test queries differ"):
        compare({0: a}, {0: outcomes(_hits(20, 0.5, 7), pids=np.arange(20))})
    with pytest.raises(PairingError, match="test queries differ"):
        compare({0: a}, {0: outcomes(_hits(20, 0.5, 7), index=np.arange(1, 21))})
    with pytest.raises(PairingError, match="test queries differ"):
        compare({0: a}, {0: outcomes(_hits(20, 0.5, 7), ratio=np.full(20, 3.0))})
    with pytest.raises(PairingError, match="different data"):
        compare({0: a}, {0: outcomes(_hits(20, 0.5, 7), data="market1501")})
    with pytest.raises(PairingError, match="different protocol version"):
        compare({0: a}, {0: outcomes(_hits(20, 0.5, 7), protocol="mlr-1.0")})
    with pytest.raises(PairingError, match="no seed and split in common"):
        compare({(0, None): a}, {(1, None): a})


# --------------------------------------------------------------------------- per_query.json


def _toy(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q_pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    g_pids = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    dist = torch.rand(8, 8, generator=g)
    return dist, q_pids, g_pids, torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)


@pytest.mark.parametrize("single_shot", [False, True])
def test_a_per_query_block_averages_to_the_metrics(tmp_path, single_shot):
    dist, qp, gp, qc, gc = _toy(3)
    metrics, ranking = _rank(dist, qp, gp, qc, gc, single_shot, trials=4, seed=0)
    ratios = np.array([2, 3, 4, 2, 3, 4, 2, 3], dtype=float)
    block = per_query_block(ranking, qp.numpy(), ratios)
    doc = {"schema": 1, "data": "toy", "protocol_version": "mlr-2.0", "queries": {"sr": block}}
    (tmp_path / PER_QUERY_FILE).write_text(json.dumps(doc))
    found, problem = read_per_query(tmp_path)
    assert problem is None
    sr = found["sr"]
    assert sr.pid.tolist() == qp.numpy()[sr.index].tolist()
    assert sr.ratio.tolist() == ratios[sr.index].tolist()
    for name in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert sr.values[name].mean() == pytest.approx(metrics[name], abs=1e-6), name


def test_missing_or_foreign_per_query_files_say_why(tmp_path):
    assert read_per_query(tmp_path) == (None, read_per_query(tmp_path)[1])
    assert "harness eval writes it" in read_per_query(tmp_path)[1]
    (tmp_path / PER_QUERY_FILE).write_text(json.dumps({"schema": 99, "queries": {}}))
    assert "schema 99" in read_per_query(tmp_path)[1]
    (tmp_path / PER_QUERY_FILE).write_text("{torn")
    assert "unreadable" in read_per_query(tmp_path)[1]


@pytest.mark.slow
def test_evaluation_writes_per_query_outcomes_that_match_its_metrics(registry, tmp_path):
    config = smoke_config(registry, sr="bicubic", reg="none")
    data = prepare_data(config, registry)
    config = config.replace(hr_height=data.hr_size[0], hr_width=data.hr_size[1])
    models, _ = build_models(config, registry, data.num_classes)
    metrics, _ = evaluate_models(
        models["G"], models["reid"], data, config, torch.device("cpu"), run_dir=tmp_path
    )
    doc = json.loads((tmp_path / PER_QUERY_FILE).read_text())
    assert doc["schema"] == 1 and doc["num_queries"] == len(data.query_pids)
    found, problem = read_per_query(tmp_path)
    assert problem is None and set(found) == {"sr", "bicubic", "hr"}
    for kind, got in found.items():
        q = metrics["queries"][kind]
        assert got.values["rank1"].mean() == pytest.approx(q["rank1"], abs=1e-6)
        assert got.values["mAP"].mean() == pytest.approx(q["mAP"], abs=1e-6)
        assert got.pid.tolist() == data.query_pids[got.index].tolist()
        assert got.ratio.tolist() == pytest.approx(data.query_ratios[got.index].tolist())
    # a run compared with itself on the same queries: nothing between them
    assert compare({0: found["sr"]}, {0: found["sr"]}).delta == 0
