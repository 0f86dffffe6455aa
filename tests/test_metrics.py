"""Ranking and image-quality metrics: hand-computed cases, agreement with torchreid's Python
evaluate_rank, chunking, the single-gallery-shot protocol, PSNR/SSIM, and properties."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.metrics import (
    ImageQuality,
    NoMatchError,
    RankResult,
    cmc_at,
    evaluate_rank,
    evaluate_rank_from_features,
    pairwise_distance,
    psnr_ssim,
    single_gallery_shot_cmc,
)


def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid's eval_market1501 loop with a stable sort, plus mINP (Ye et al. 2021)."""
    cmcs, aps, inps = [], [], []
    for i in range(len(distmat)):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = (g_pids[order] == q_pids[i])[keep].astype(np.int64)
        if not raw.any():
            continue
        cmc = np.minimum(raw.cumsum(), 1)
        cmcs.append(
            np.concatenate([cmc, np.ones(max(0, max_rank - len(cmc)), np.int64)])[:max_rank]
        )
        aps.append((raw.cumsum() / np.arange(1, len(raw) + 1) * raw).sum() / raw.sum())
        inps.append(raw.sum() / (np.flatnonzero(raw)[-1] + 1))
    return np.mean(cmcs, 0), float(np.mean(aps)), float(np.mean(inps)), len(distmat) - len(aps)


def random_problem(rng, nq, ng, n_ids, n_cams, dtype=np.float64):
    """Random ids and cameras; tie-free distances (uniform floats)."""
    q_pids = rng.integers(0, n_ids, nq)
    g_pids = rng.integers(0, n_ids, ng)
    q_cams = rng.integers(0, n_cams, nq)
    g_cams = rng.integers(0, n_cams, ng)
    return rng.random((nq, ng)).astype(dtype), q_pids, g_pids, q_cams, g_cams


def assert_same(a: RankResult, b: RankResult, atol=1e-12):
    np.testing.assert_allclose(a.cmc, b.cmc, rtol=0, atol=atol)
    assert a.mAP == pytest.approx(b.mAP, abs=atol)
    assert a.mINP == pytest.approx(b.mINP, abs=atol)
    assert (a.num_valid, a.num_skipped) == (b.num_valid, b.num_skipped)


# ----------------------------------------------------------------------------- hand-computed

# Gallery:        g0      g1      g2      g3      g4      g5
G_PIDS = np.array([1, 1, 2, 1, 3, 2])
G_CAMS = np.array([0, 1, 1, 2, 0, 0])
Q_PIDS = np.array([1, 2])
Q_CAMS = np.array([0, 0])
DIST = np.array(
    [
        # q0 (id 1, cam 0): g0 is id 1 in cam 0 -> removed. Kept order: g1 (match), g2, g3 (match),
        # g4, g5. Matches at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 5/6, INP = 2/3.
        [0.05, 0.10, 0.20, 0.30, 0.40, 0.50],
        # q1 (id 2, cam 0): g5 is id 2 in cam 0 -> removed (it is the closest!). Kept order: g3, g1,
        # g0, g4, g2 (match). Match at rank 5: AP = 1/5, INP = 1/5.
        [0.30, 0.20, 0.60, 0.10, 0.40, 0.01],
    ]
)
# CMC: rank 1..4 -> 1/2 (q0 only), rank 5 and on -> 2/2.
# mAP = (5/6 + 1/5) / 2 = 31/60; mINP = (2/3 + 1/5) / 2 = 13/30.


def test_hand_computed_two_queries_six_gallery():
    cmc, mAP, mINP = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=6)
    np.testing.assert_allclose(cmc, [0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    assert mAP == pytest.approx(31 / 60)
    assert mINP == pytest.approx(13 / 30)


def test_same_camera_removal_changes_the_rank():
    # Give g5 camera 1: it is then a true match for q1 at rank 1 (AP 1), g2 the second match at
    # rank 6 (AP = (1/1 + 2/6) / 2 = 2/3), INP = 2/6.
    g_cams = G_CAMS.copy()
    g_cams[5] = 1
    res = evaluate_rank(DIST[1:], Q_PIDS[1:], G_PIDS, Q_CAMS[1:], g_cams, max_rank=6)
    np.testing.assert_allclose(res.cmc, [1, 1, 1, 1, 1, 1])
    assert res.mAP == pytest.approx(2 / 3)
    assert res.mINP == pytest.approx(1 / 3)


def test_other_identity_in_query_camera_is_kept():
    # q0's closest kept sample g4 (id 3) shares q0's camera; it must stay and push the match to 2.
    d = np.array([[0.9, 0.5, 0.8, 0.7, 0.1, 0.6]])
    res = evaluate_rank(d, Q_PIDS[:1], G_PIDS, Q_CAMS[:1], G_CAMS, max_rank=3)
    # kept order: g4, g1 (match), g5, g3 (match), g2 -> ranks 2 and 4: AP = (1/2 + 2/4) / 2
    np.testing.assert_allclose(res.cmc, [0, 1, 1])
    assert res.mAP == pytest.approx(0.5)
    assert res.mINP == pytest.approx(0.5)


def test_queries_without_match_are_skipped_and_counted():
    # q0 as above; the second query (id 9) has no sample in the gallery at all.
    q_pids = np.array([1, 9])
    q_cams = np.array([0, 0])
    res = evaluate_rank(DIST, q_pids, G_PIDS, q_cams, G_CAMS, max_rank=6)
    assert (res.num_valid, res.num_skipped) == (1, 1)
    np.testing.assert_allclose(res.cmc, [1, 1, 1, 1, 1, 1])  # only q0 counts
    assert res.mAP == pytest.approx(5 / 6)


def test_error_when_no_query_has_a_valid_match():
    # Each query's identity is in the gallery only under the query's own camera.
    with pytest.raises(ValueError, match="all 2 queries"):
        evaluate_rank(np.zeros((2, 3)) + [[0.1, 0.2, 0.3]], [1, 2], [1, 2, 3], [0, 1], [0, 1, 0])


def test_unpacks_as_three_values_and_exposes_counts():
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=6)
    cmc, mAP, mINP = res
    assert len(res) == 3 and res[1] == mAP and res.num_valid == 2 and res.num_skipped == 0
    assert cmc.shape == (6,)


def test_torch_thread_count_is_restored():
    before = torch.get_num_threads()
    evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError):
        evaluate_rank(np.full_like(DIST, np.nan), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert torch.get_num_threads() == before


def test_cmc_has_max_rank_entries_beyond_a_small_gallery():
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert res.cmc.shape == (50,)
    np.testing.assert_allclose(res.cmc[4:], 1.0)


def test_exact_ties_break_by_gallery_index():
    # A non-match and a match at the same distance: the earlier gallery index ranks first.
    d = np.array([[0.5, 0.5]])
    first_neg = evaluate_rank(d, [1], [2, 1], [0], [0, 1], max_rank=2)
    first_match = evaluate_rank(d, [1], [1, 2], [0], [1, 0], max_rank=2)
    assert first_neg.mAP == pytest.approx(0.5) and first_neg.cmc[0] == 0
    assert first_match.mAP == pytest.approx(1.0) and first_match.cmc[0] == 1


def test_accepts_tensors_and_lists_alike():
    ref = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=6)
    as_t = evaluate_rank(
        torch.tensor(DIST, dtype=torch.float32),
        torch.tensor(Q_PIDS),
        torch.tensor(G_PIDS),
        torch.tensor(Q_CAMS),
        torch.tensor(G_CAMS),
        max_rank=6,
    )
    as_l = evaluate_rank(
        DIST.tolist(), Q_PIDS.tolist(), G_PIDS.tolist(), Q_CAMS.tolist(), G_CAMS.tolist(), 6
    )
    assert_same(ref, as_t)
    assert_same(ref, as_l)


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(np.where(DIST > 0.5, np.nan, DIST), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="g_pids has 5 entries, expected 6"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS[:5], Q_CAMS, G_CAMS)
    with pytest.raises(TypeError, match="q_pids must hold integers"):
        evaluate_rank(DIST, Q_PIDS.astype(float), G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(DIST[0], Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)


# ----------------------------------------------------------------------------- torchreid


@pytest.fixture(scope="module")
def torchreid_rank():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import evaluate_rank as tr

    def run(*args, max_rank=50):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tr(*args, max_rank=max_rank, use_metric_cuhk03=False, use_cython=False)

    return run


@pytest.mark.parametrize(
    "nq, ng, n_ids, n_cams", [(6, 60, 4, 2), (40, 400, 25, 3), (120, 2500, 80, 6)]
)
def test_agrees_with_torchreid_on_tie_free_problems(torchreid_rank, nq, ng, n_ids, n_cams):
    rng = np.random.default_rng(nq)
    d, qp, gp, qc, gc = random_problem(rng, nq, ng, n_ids, n_cams)
    ours = evaluate_rank(d, qp, gp, qc, gc, max_rank=50)
    cmc, mAP = torchreid_rank(d, qp, gp, qc, gc)
    np.testing.assert_allclose(ours.cmc[: len(cmc)], cmc, rtol=0, atol=1e-6)  # theirs: float32
    assert ours.mAP == pytest.approx(mAP, rel=1e-12)
    ref = reference_rank(d, qp, gp, qc, gc)
    assert ours.mINP == pytest.approx(ref[2], rel=1e-12)
    assert ours.num_skipped == ref[3]


def test_agrees_with_torchreid_on_feature_distances(torchreid_rank):
    # The usual pipeline: features -> squared Euclidean -> ranks (float64, so free of ties).
    rng = np.random.default_rng(3)
    qp, gp = rng.integers(0, 30, 50), rng.integers(0, 30, 500)
    qc, gc = rng.integers(0, 4, 50), rng.integers(0, 4, 500)
    centres = rng.standard_normal((30, 16))
    qf = torch.tensor(centres[qp] + rng.standard_normal((50, 16)))
    gf = torch.tensor(centres[gp] + rng.standard_normal((500, 16)))
    d = pairwise_distance(qf, gf).numpy()
    ours = evaluate_rank(d, qp, gp, qc, gc)
    cmc, mAP = torchreid_rank(d, qp, gp, qc, gc)
    np.testing.assert_allclose(ours.cmc, cmc, rtol=0, atol=1e-6)
    assert ours.mAP == pytest.approx(mAP, rel=1e-12)
    assert 0.3 < ours.cmc[0] < 1.0  # a problem where ranking matters


# ----------------------------------------------------------------------------- chunking


def test_chunk_size_does_not_change_results():
    rng = np.random.default_rng(7)
    d, qp, gp, qc, gc = random_problem(rng, 37, 300, 12, 3, dtype=np.float32)
    full = evaluate_rank(d, qp, gp, qc, gc)
    for chunk in (1, 4, 10, 36, 37, 1000):
        assert_same(full, evaluate_rank(d, qp, gp, qc, gc, chunk_size=chunk), atol=1e-15)


def test_ties_everywhere_match_the_stable_reference():
    # Integer distances: ties between matches, non-matches and removed samples in every row.
    rng = np.random.default_rng(11)
    for _ in range(5):
        d, qp, gp, qc, gc = random_problem(rng, 25, 120, 6, 3)
        d = np.floor(d * 6)
        ours = evaluate_rank(d, qp, gp, qc, gc, chunk_size=8)
        cmc, mAP, mINP, skipped = reference_rank(d, qp, gp, qc, gc)
        np.testing.assert_allclose(ours.cmc, cmc, atol=1e-12)
        assert (ours.mAP, ours.mINP, ours.num_skipped) == (
            pytest.approx(mAP, abs=1e-12),
            pytest.approx(mINP, abs=1e-12),
            skipped,
        )


def test_only_samples_nearer_than_the_farthest_match_are_ranked_and_counts_stay_exact():
    # Many blocks of rows (the CPU path gathers each row's samples up to its farthest match),
    # infinite distances (a match at +inf: every sample is near; -inf samples), queries without
    # a match and the gallery's own distances repeated exactly, against the stable reference.
    rng = np.random.default_rng(5)
    d, qp, gp, qc, gc = random_problem(rng, 70, 400, 15, 3)
    d[3, :] = np.inf  # every sample of query 3 at +inf: all tied, its matches included
    d[5, ::7] = -np.inf
    d[9, gp == qp[9]] = np.inf  # query 9's matches farther than every other sample
    d[11] = d[10]
    qp[12] = 999  # no match in the gallery: skipped
    ours = evaluate_rank(d, qp, gp, qc, gc, chunk_size=33)
    cmc, mAP, mINP, skipped = reference_rank(d, qp, gp, qc, gc)
    np.testing.assert_allclose(ours.cmc, cmc, rtol=0, atol=1e-12)
    assert (ours.mAP, ours.mINP) == (pytest.approx(mAP, abs=1e-12), pytest.approx(mINP, abs=1e-12))
    assert ours.num_skipped == skipped >= 1


def test_a_nan_is_refused_even_beyond_every_match_and_in_a_query_without_one():
    rng = np.random.default_rng(6)
    d, qp, gp, qc, gc = random_problem(rng, 40, 200, 10, 3)
    far = d.copy()
    far[30, np.argmax(np.where(gp == qp[30], -1.0, d[30]))] = np.nan  # not near any match
    with pytest.raises(ValueError, match=r"distances of queries \d+:\d+ contain NaN"):
        evaluate_rank(far, qp, gp, qc, gc)
    lonely = d.copy()
    qp[7], lonely[7, 0] = 999, np.nan  # query 7 has no match at all
    with pytest.raises(ValueError, match="contain NaN"):
        evaluate_rank(lonely, qp, gp, qc, gc)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_from_features_equals_the_distance_matrix_path(metric):
    rng = np.random.default_rng(5)
    qp, gp = rng.integers(0, 10, 45), rng.integers(0, 10, 210)
    qc, gc = rng.integers(0, 3, 45), rng.integers(0, 3, 210)
    qf = torch.tensor(rng.standard_normal((45, 8)))
    gf = torch.tensor(rng.standard_normal((210, 8)))
    full = evaluate_rank(pairwise_distance(qf, gf, metric), qp, gp, qc, gc)
    chunked = evaluate_rank_from_features(qf, gf, qp, gp, qc, gc, metric=metric, chunk_size=7)
    assert_same(full, chunked)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_rank_from_features(qf, gf, qp, gp, qc, gc, metric="manhattan")


def test_pairwise_distance_values():
    q = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    g = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    torch.testing.assert_close(pairwise_distance(q, g), torch.tensor([[25.0, 4.0], [20.0, 5.0]]))
    torch.testing.assert_close(
        pairwise_distance(q[1:], g, "cosine"), torch.tensor([[1 - 3 / 5, 1.0]])
    )


# ----------------------------------------------------------------------------- single shot


def test_single_shot_with_one_image_per_identity_is_trial_independent():
    rng = np.random.default_rng(2)
    gp = np.arange(20)
    gc = np.ones(20, dtype=np.int64)
    qp = rng.permutation(20)[:12]
    qc = np.zeros(12, dtype=np.int64)
    d = rng.random((12, 20))
    res = single_gallery_shot_cmc(d, qp, gp, qc, gc, trials=5, seed=3)
    plain = evaluate_rank(d, qp, gp, qc, gc)
    np.testing.assert_allclose(res.cmc, plain.cmc)
    np.testing.assert_allclose(res.cmc_std, 0.0)
    assert res.mAP == pytest.approx(plain.mAP) and res.mINP == pytest.approx(plain.mINP)


def test_single_shot_known_answer():
    # Query id 1 (cam 0). Gallery: id 1 at 0.1 and at 0.9 (cam 1), id 2 at 0.5. A trial that draws
    # the near image of id 1 ranks it first (rank-1 hit), the far one second: rank-2 CMC is always
    # 1 and the rank-1 CMC is the share m of "near" draws, with standard deviation sqrt(m(1-m)).
    d = np.array([[0.1, 0.9, 0.5]])
    res = single_gallery_shot_cmc(d, [1], [1, 1, 2], [0], [1, 1, 1], trials=40, seed=0, max_rank=3)
    m = res.cmc[0]
    assert 0 < m < 1 and round(m * 40) == pytest.approx(m * 40)
    np.testing.assert_allclose(res.cmc[1:], 1.0)
    assert res.cmc_std[0] == pytest.approx(math.sqrt(m * (1 - m)))
    np.testing.assert_allclose(res.cmc_std[1:], 0.0)
    assert res.mAP == pytest.approx(m * 1.0 + (1 - m) * 0.5)
    again = single_gallery_shot_cmc(
        d, [1], [1, 1, 2], [0], [1, 1, 1], trials=40, seed=0, max_rank=3
    )
    np.testing.assert_array_equal(res.cmc, again.cmc)


def test_single_shot_leaves_out_and_counts_a_draw_without_any_match():
    # Query id 1 on camera 0. Gallery: id 1 on camera 0 (the query's own camera: never a
    # match), id 1 on camera 1 at 0.3, id 2 at 0.5. A draw of the first leaves no query with a
    # match: it is left out of the means and counted; every other draw ranks the match first.
    d = np.array([[0.1, 0.3, 0.5]])
    res = single_gallery_shot_cmc(d, [1], [1, 1, 2], [0], [0, 1, 1], trials=40, seed=0, max_rank=2)
    assert 0 < res.trials_skipped < 40 and len(res.per_trial) == 40 - res.trials_skipped
    assert res.trials == 40
    np.testing.assert_allclose(res.cmc, 1.0)
    np.testing.assert_allclose(res.cmc_std, 0.0)
    assert res.mAP == 1.0 and res.mINP == 1.0
    assert res.num_skipped == pytest.approx(res.trials_skipped / 40)  # one query per skipped draw
    # no match in any draw: one clear error (still a ValueError), not an average of nothing
    with pytest.raises(NoMatchError, match="no query has a true match in any of the 3 gallery"):
        single_gallery_shot_cmc(d[:, :1], [1], [1], [0], [0], trials=3)
    assert issubclass(NoMatchError, ValueError)


# ----------------------------------------------------------------------------- cmc_at


def test_cmc_at_reads_ranks_and_saturates():
    cmc = np.array([0.2, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert cmc_at(cmc) == {"rank1": 0.2, "rank5": 0.7, "rank10": 0.8}
    assert cmc_at(cmc, ks=(2,)) == {"rank2": 0.4}
    with pytest.raises(ValueError, match="ranks start at 1"):
        cmc_at(cmc, ks=(0,))


# ----------------------------------------------------------------------------- image quality


def test_psnr_of_identical_images_is_infinite_and_ssim_one():
    hr = torch.rand(2, 3, 32, 16)
    psnr, ssim = psnr_ssim(hr.clone(), hr)
    assert psnr == math.inf
    assert ssim == pytest.approx(1.0, abs=1e-5)


def test_psnr_is_the_per_image_mean_of_the_formula():
    hr = torch.rand(2, 3, 32, 16) * 0.6 + 0.2  # room for the offsets without clamping
    sr = hr.clone()
    sr[0] += 0.1  # MSE 1e-2 -> 20 dB
    sr[1] -= 0.01  # MSE 1e-4 -> 40 dB
    psnr, ssim = psnr_ssim(sr, hr)
    assert psnr == pytest.approx(30.0, abs=1e-3)  # not the 22.97 dB of the pooled MSE
    assert 0.0 < ssim < 1.0


def test_sr_is_clamped_to_the_unit_range():
    hr = torch.full((1, 3, 16, 8), 0.8)
    psnr, _ = psnr_ssim(hr + 0.5, hr)  # clamped to 1.0: error 0.2, MSE 0.04
    assert psnr == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-3)


def test_image_quality_accumulates_per_image():
    torch.manual_seed(0)
    hr = torch.rand(4, 3, 32, 16)
    sr = (hr + 0.05 * torch.randn_like(hr)).clamp(0, 1)
    meter = ImageQuality()
    assert math.isnan(meter.compute()["psnr"])
    meter.update(sr[:1], hr[:1])
    meter.update(sr[1:], hr[1:])
    psnr, ssim = psnr_ssim(sr, hr)
    out = meter.compute()
    assert out["psnr"] == pytest.approx(psnr, rel=1e-6)
    assert out["ssim"] == pytest.approx(ssim, rel=1e-6)
    with pytest.raises(ValueError, match="equal"):
        meter.update(sr, hr[:, :, :16])


# ----------------------------------------------------------------------------- properties


@st.composite
def problems(draw, ties: bool = False):
    nq = draw(st.integers(1, 8))
    ng = draw(st.integers(1, 30))
    n_ids = draw(st.integers(1, 5))
    n_cams = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d, qp, gp, qc, gc = random_problem(rng, nq, ng, n_ids, n_cams)
    if ties:
        d = np.floor(d * draw(st.integers(1, 4)))
    return d, qp, gp, qc, gc


def has_valid_query(d, qp, gp, qc, gc):
    return bool(((qp[:, None] == gp[None]) & (qc[:, None] != gc[None])).any())


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@PROPERTY
@given(problems())
def test_property_ranges_and_monotone_cmc(problem):
    if not has_valid_query(*problem):
        with pytest.raises(ValueError, match="no query has a true match"):
            evaluate_rank(*problem)
        return
    cmc, mAP, mINP = evaluate_rank(*problem, max_rank=10)
    assert np.all(np.diff(cmc) >= 0)
    assert 0 <= cmc[0] and cmc[-1] <= 1
    assert 0 < mAP <= 1 and 0 < mINP <= 1


@PROPERTY
@given(problems(), st.randoms(use_true_random=False))
def test_property_gallery_and_query_permutation_invariance(problem, rnd):
    d, qp, gp, qc, gc = problem
    if not has_valid_query(*problem):
        return
    gperm = np.array(rnd.sample(range(len(gp)), len(gp)))
    qperm = np.array(rnd.sample(range(len(qp)), len(qp)))
    base = evaluate_rank(d, qp, gp, qc, gc)
    moved = evaluate_rank(
        d[qperm][:, gperm], qp[qperm], gp[gperm], qc[qperm], gc[gperm], chunk_size=3
    )
    assert_same(base, moved)


@PROPERTY
@given(problems(ties=True))
def test_property_matches_the_stable_reference_with_ties(problem):
    if not has_valid_query(*problem):
        return
    ours = evaluate_rank(*problem, chunk_size=2)
    cmc, mAP, mINP, skipped = reference_rank(*problem)
    np.testing.assert_allclose(ours.cmc, cmc, atol=1e-12)
    assert ours.mAP == pytest.approx(mAP, abs=1e-12)
    assert ours.mINP == pytest.approx(mINP, abs=1e-12)
    assert ours.num_skipped == skipped


def _eval_speed():
    """benchmarks/eval_speed.py as a module (benchmarks/ is not a package)."""
    path = Path(__file__).parents[1] / "benchmarks" / "eval_speed.py"
    spec = importlib.util.spec_from_file_location("eval_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_speed_refuses_a_missing_cython_source_in_one_line_before_any_work(
    tmp_path, capsys, monkeypatch
):
    eval_speed = _eval_speed()
    # Nothing may be built or compiled for a wrong path: fail if the problem is even generated.
    monkeypatch.setattr(eval_speed, "market_like_ids", lambda *a, **k: pytest.fail("built"))
    missing = tmp_path / "nowhere" / "rank_cy.pyx"
    assert eval_speed.main(["--cython-source", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--cython-source {missing} is not a file" in err and "rank_cy.pyx" in err


def test_eval_speed_skips_the_cython_column_with_a_note(tmp_path, capsys, monkeypatch):
    eval_speed = _eval_speed()
    assert eval_speed.main(["--queries", "30", "--gallery", "200", "--skip-reference"]) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if "Cython" in ln]
    assert notes == ["torchreid Cython: " + eval_speed.NO_CYTHON_SOURCE]

    # Cython not installed: a one-line reason, nothing compiled into the build folder.
    source = tmp_path / "rank_cy.pyx"
    source.write_text("# not compiled\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "Cython" else real(name, *a)
    )
    build = tmp_path / "build"
    build.mkdir()
    reason = eval_speed.compile_cython(source, build)
    assert reason == "Cython is not installed (not installed by this script); column skipped"
    assert list(build.iterdir()) == []
