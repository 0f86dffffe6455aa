"""Seconds to rank a Market-1501-sized problem: ours against torchreid's evaluators.

Everything runs in this process on the same seeded distance matrix (3,368 queries x 15,913
gallery, 751 identities over 6 cameras, each identity with ~17 gallery images spread over the
cameras it is seen by, plus 2,798 distractors, as in Market-1501's test split): ours
(``harness.metrics.evaluate_rank``, ranking only the samples up to each query's farthest match),
ours as it was (sorting whole rows, kept here as the reference it replaced), ``np.argsort`` of
the matrix alone, torchreid's Python path and, given ``--cython-source`` (torchreid's
``rank_cy.pyx``: not in its wheel, take it from a copy of the torchreid source), its Cython
evaluator compiled into a temporary folder (skipped with a one-line note when no source is given
or Cython is not installed; a source path that is not a file is refused before any work).
Times are ratios against the others timed in the same run (on a shared machine only ratios
mean anything). The script checks that every evaluator's numbers agree with ours (CMC, mAP) and
exits 1 when one does not.

    python benchmarks/eval_speed.py                         # full size, ~4 min (torchreid Python)
    python benchmarks/eval_speed.py --skip-reference        # ours only
    python benchmarks/eval_speed.py --cython-source PATH/rank_cy.pyx  # + torchreid Cython
    python benchmarks/eval_speed.py --queries 500 --gallery 3000
    python benchmarks/eval_speed.py --scale 20000x100000    # bounded-memory run from features
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import harness.metrics
from harness.metrics import evaluate_rank, evaluate_rank_from_features, pairwise_distance

MARKET = {"queries": 3368, "gallery": 15913, "ids": 751, "cams": 6, "distractors": 2798}
NO_CYTHON_SOURCE = (
    "not timed (no --cython-source: torchreid's wheel lacks rank_cy.pyx, give the path of "
    "torchreid/metrics/rank_cylib/rank_cy.pyx in a copy of its source)"
)


def market_like_ids(
    num_q: int, num_g: int, rng: np.random.Generator, cams: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(q_pids, g_pids, q_camids, g_camids) shaped like Market-1501's test split: every identity
    is seen by 2..cams cameras, has one query per camera and gallery images in each of them (so
    some are removed as same-camera), and a share of the gallery are distractors (pid 0)."""
    num_ids = max(1, round(MARKET["ids"] * num_q / MARKET["queries"]))
    # Cameras per identity: at least 2, extra ones spread at random until the query count fits.
    k = np.full(num_ids, min(2, cams))
    extra = max(0, num_q - int(k.sum()))
    for _ in range(extra):
        open_ = np.flatnonzero(k < cams)
        if open_.size == 0:
            break
        k[rng.choice(open_)] += 1
    id_cams = [rng.permutation(cams)[:ki] for ki in k]
    q_pids = np.repeat(np.arange(1, num_ids + 1), k)[:num_q]
    q_cams = np.concatenate(id_cams)[:num_q]

    num_distractors = round(num_g * MARKET["distractors"] / MARKET["gallery"])
    num_id_images = max(int(k.sum()), num_g - num_distractors)
    num_distractors = num_g - num_id_images
    # One image per (identity, camera), the rest spread with uneven weights (some people linger).
    pairs = np.array([(pid, c) for pid, cs in enumerate(id_cams, start=1) for c in cs])
    weights = rng.gamma(2.0, 1.0, len(pairs))
    rest = rng.choice(len(pairs), num_id_images - len(pairs), p=weights / weights.sum())
    chosen = np.concatenate([np.arange(len(pairs)), rest])
    g_pids = np.concatenate([pairs[chosen, 0], np.zeros(num_distractors, dtype=np.int64)])
    g_cams = np.concatenate([pairs[chosen, 1], rng.integers(0, cams, num_distractors)])
    perm = rng.permutation(num_g)
    return q_pids, g_pids[perm], q_cams, g_cams[perm]


def market_like_features(
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    rng: np.random.Generator,
    dim: int = 128,
    noise: float = 0.9,
    cams: int = 6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features = identity centre + camera bias + noise; distractors get centres of their own."""
    num_ids = int(max(q_pids.max(), g_pids.max())) + 1
    centres = rng.standard_normal((num_ids, dim)) / np.sqrt(dim)
    bias = rng.standard_normal((cams, dim)) / np.sqrt(dim) * 0.5

    def feats(pids: np.ndarray, camids: np.ndarray) -> np.ndarray:
        base = centres[pids].copy()
        distractor = pids == 0
        base[distractor] = rng.standard_normal((int(distractor.sum()), dim)) / np.sqrt(dim)
        return base + bias[camids] + rng.standard_normal((len(pids), dim)) / np.sqrt(dim) * noise

    qf = torch.from_numpy(feats(q_pids, q_cams)).float()
    gf = torch.from_numpy(feats(g_pids, g_cams)).float()
    return qf, gf


def tied_queries(distmat, q_pids, g_pids, q_cams, g_cams) -> int:
    """Queries where a non-match is exactly as far as a true match (the tie-break then matters)."""
    count = 0
    for i, row in enumerate(distmat):
        same = g_pids == q_pids[i]
        match = same & (g_cams != q_cams[i])
        count += bool(np.isin(row[~same], row[match]).any())
    return count


def _count_closer_whole_rows(d, pd, n_pos, offset):
    """The evaluator before issue 27: sort every row's values (numpy), then search the match
    distances in them. Kept to time the change against."""
    if bool(torch.isnan(d).any()):
        raise ValueError(f"distances of queries {offset}:{offset + len(d)} contain NaN")
    row_sorted = torch.from_numpy(np.sort(d.numpy(), axis=1))
    return torch.searchsorted(row_sorted, pd), torch.searchsorted(row_sorted, pd, right=True)


def evaluate_rank_whole_rows(*args, **kwargs):
    """``evaluate_rank`` with the old counting step."""
    new = harness.metrics._count_closer
    harness.metrics._count_closer = _count_closer_whole_rows
    try:
        return evaluate_rank(*args, **kwargs)
    finally:
        harness.metrics._count_closer = new


def compile_cython(source: Path, workdir: Path) -> Callable | str:
    """torchreid's ``evaluate_cy`` built from ``source`` (rank_cy.pyx) in ``workdir``, or a
    one-line reason why not (Cython is not installed, or the build failed)."""
    if importlib.util.find_spec("Cython") is None:
        return "Cython is not installed (not installed by this script); column skipped"
    if not source.is_file():
        return f"{source} is not a file; column skipped"
    shutil.copy(source, workdir / "rank_cy.pyx")
    (workdir / "setup.py").write_text(
        "import numpy as np\n"
        "from setuptools import Extension, setup\n"
        "from Cython.Build import cythonize\n"
        "setup(name='rank_cy', ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'],"
        " include_dirs=[np.get_include()])], language_level=3))\n"
    )
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        return f"building {source} failed: {(build.stderr.strip().splitlines() or ['?'])[-1]}"
    sys.path.insert(0, str(workdir))
    try:
        from rank_cy import evaluate_cy
    finally:
        sys.path.remove(str(workdir))
    return evaluate_cy


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def rank_table(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    ids = market_like_ids(args.queries, args.gallery, rng)
    qf, gf = market_like_features(*ids, rng, noise=args.noise)
    distmat = pairwise_distance(
        qf.to(getattr(torch, args.dtype)), gf.to(getattr(torch, args.dtype))
    )
    distmat_np = distmat.numpy()
    q_pids, g_pids, q_cams, g_cams = ids
    print(
        f"problem: {args.queries} queries x {args.gallery} gallery, "
        f"{len(np.unique(q_pids))} query ids, "
        f"{int((g_pids == 0).sum())} distractors, {args.dtype} distances, "
        f"{torch.get_num_threads()} torch threads"
    )

    _, t_sort = timed(np.argsort, distmat_np, axis=1)
    ours, t_ours = timed(evaluate_rank, distmat_np, q_pids, g_pids, q_cams, g_cams, 50)
    ours_again, t_ours2 = timed(evaluate_rank, distmat_np, q_pids, g_pids, q_cams, g_cams, 50)
    t_ours = min(t_ours, t_ours2)
    old, t_old = timed(evaluate_rank_whole_rows, distmat_np, q_pids, g_pids, q_cams, g_cams, 50)
    print(
        f"ours:     {t_ours:8.3f} s   rank1 {ours.cmc[0]:.4f}  mAP {ours.mAP:.4f}  "
        f"mINP {ours.mINP:.4f}  skipped {ours.num_skipped}"
    )
    rows = [("ours, whole rows sorted (before)", t_old), ("np.argsort of the matrix alone", t_sort)]
    same = old.mAP == ours.mAP and np.array_equal(old.cmc, ours.cmc)
    ties = tied_queries(distmat_np, q_pids, g_pids, q_cams, g_cams)
    if not args.cython_source:
        print(f"torchreid Cython: {NO_CYTHON_SOURCE}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            evaluate_cy = compile_cython(Path(args.cython_source).expanduser(), Path(tmp))
            if isinstance(evaluate_cy, str):
                print(f"torchreid Cython: {evaluate_cy}")
            else:
                # Best of two, as ours: neither side pays a first call's warm-up.
                (cmc_cy, map_cy), t_cy = timed(
                    evaluate_cy, distmat_np, q_pids, g_pids, q_cams, g_cams, 50
                )
                _, t_cy2 = timed(evaluate_cy, distmat_np, q_pids, g_pids, q_cams, g_cams, 50)
                t_cy = min(t_cy, t_cy2)
                # Cython casts the distances to float32 and sums AP in float32: a few 1e-6
                cy_same = agree(ours, cmc_cy, map_cy, map_tol=1e-5, cmc_tol=1e-5)
                same &= cy_same
                rows.append(("torchreid Cython (evaluate_cy)", t_cy))
                print(
                    f"torchreid Cython: rank1 {cmc_cy[0]:.4f}  mAP {map_cy:.4f}  agree {cy_same} "
                    f"(max |dCMC| {np.abs(ours.cmc[: len(cmc_cy)] - cmc_cy).max():.2e}, "
                    f"|dmAP| {abs(ours.mAP - map_cy):.2e})"
                )
    if not args.skip_reference:
        from torchreid.reid.metrics import evaluate_rank as torchreid_rank

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (cmc_ref, map_ref), t_ref = timed(
                torchreid_rank,
                distmat_np,
                q_pids,
                g_pids,
                q_cams,
                g_cams,
                50,
                use_metric_cuhk03=False,
                use_cython=False,
            )
        # torchreid accumulates its CMC in float32; mAP is float64 in both. Exact distance ties
        # between a match and a non-match are broken by argsort's whim in torchreid and by
        # gallery index in ours, so only tie-free problems (float64 distances) are held to 1e-12.
        ref_same = agree(ours, cmc_ref, map_ref, map_tol=1e-12 if ties == 0 else 1e-6)
        same &= ref_same
        rows.append(("torchreid Python (use_cython=False)", t_ref))
        print(
            f"torchreid Python: rank1 {cmc_ref[0]:.4f}  mAP {map_ref:.4f}  agree {ref_same} "
            f"(max |dCMC| {np.abs(ours.cmc[: len(cmc_ref)] - cmc_ref).max():.2e}, "
            f"|dmAP| {abs(ours.mAP - map_ref):.2e})"
        )
    print(f"\n| | time | ours is |\n|---|---|---|\n| ours (`evaluate_rank`) | {t_ours:.3f} s | |")
    for name, t in rows:
        print(f"| {name} | {t:.3f} s | {t / t_ours:.1f}x faster |")
    print(
        f"\nall agree: {same} ({ties} queries with a match tied to a non-match; "
        f"ours before and after identical: {old.mAP == ours.mAP})"
    )
    return 0 if same else 1


def agree(ours, cmc, mAP, map_tol: float, cmc_tol: float = 1e-6) -> bool:
    n = len(cmc)
    return bool(
        np.allclose(ours.cmc[:n], cmc, rtol=0, atol=cmc_tol)
        and np.isclose(ours.mAP, mAP, rtol=map_tol, atol=0)
    )


def scale_demo(spec: str, args: argparse.Namespace) -> int:
    num_q, num_g = (int(v) for v in spec.lower().split("x"))
    rng = np.random.default_rng(args.seed)
    ids = market_like_ids(num_q, num_g, rng)
    qf, gf = market_like_features(*ids, rng, noise=args.noise)
    chunk = args.chunk_size
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result, t = timed(
        evaluate_rank_from_features, qf, gf, *ids, metric="euclidean", chunk_size=chunk
    )
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dense_gb = num_q * num_g * 4 / 1e9
    print(
        f"scale: {num_q} x {num_g} from features in {t:.2f} s; rank1 {result.cmc[0]:.4f} "
        f"mAP {result.mAP:.4f} mINP {result.mINP:.4f}; peak RSS {rss0:.0f} -> {rss1:.0f} MB "
        f"(a dense float32 matrix would be {dense_gb:.1f} GB)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=MARKET["queries"])
    parser.add_argument("--gallery", type=int, default=MARKET["gallery"])
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float64",
        help="of the distances; float32 has exact ties that torchreid breaks differently",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--noise",
        type=float,
        default=1.1,
        help="feature noise: 1.1 gives a mid-level model, 3 a nearly random one",
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="no torchreid Python column (~2 min)"
    )
    parser.add_argument(
        "--cython-source",
        metavar="PATH",
        help="torchreid's rank_cy.pyx: compiled here with Cython to time torchreid's Cython path",
    )
    parser.add_argument("--scale", metavar="QxG", help="e.g. 20000x100000: bounded-memory run")
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args(argv)
    if args.cython_source and not Path(args.cython_source).expanduser().is_file():
        # Checked before the problem is built: a wrong path fails in a second, not after minutes.
        print(
            f"eval_speed: --cython-source {args.cython_source} is not a file (give torchreid's "
            "torchreid/metrics/rank_cylib/rank_cy.pyx from a copy of its source)",
            file=sys.stderr,
        )
        return 2
    if args.scale:
        return scale_demo(args.scale, args)
    return rank_table(args)


if __name__ == "__main__":
    sys.exit(main())
