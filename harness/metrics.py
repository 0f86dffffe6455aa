"""Ranking and image-quality metrics: pure array code that knows nothing of models.

Ranking follows the Market-1501 protocol of ``torchreid.reid.metrics.evaluate_rank``
(``use_metric_cuhk03=False``): for each query, gallery samples of the query's identity seen by
the query's camera are removed; queries left without a true match are skipped. CMC, mAP and
mINP (Ye et al., "Deep learning for person re-identification", 2021) are fractions in [0, 1].

Why it is fast: a query's AP, first-match and last-match ranks only need the kept position of
each *true match*, which is (#matches before it) + (#other samples closer) - (#removed samples
closer). Only samples no farther than the query's farthest match can be closer than a match, and
with any useful model they are a few percent of the gallery; so each row is compared once with
its farthest match, those few samples are sorted (values only), and a batched ``searchsorted``
of the match distances into them gives every count: no per-query Python loop, no ``argsort``,
no sort of whole rows (a GPU, where sorting is cheap, sorts whole rows instead). Rows where a
non-match is exactly as far as a match are re-ranked with a stable ``argsort``, so results
always equal "stable sort of each row, then torchreid's loop". torchreid itself uses
``np.argsort`` (unstable), so on exact ties its numbers may differ from ours; on tie-free
distances they agree to rounding.

Memory is bounded by ``chunk_size`` query rows at a time; :func:`evaluate_rank_from_features`
computes distances per chunk, so a 100k x 100k problem never holds a dense matrix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import kornia
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ImageQuality",
    "NoMatchError",
    "RankResult",
    "SingleShotResult",
    "cmc_at",
    "evaluate_rank",
    "evaluate_rank_from_features",
    "pairwise_distance",
    "psnr_ssim",
    "single_gallery_shot_cmc",
]

ArrayLike = Any  # numpy array, torch tensor or sequence of numbers
DistanceFn = Callable[[int, int], Tensor]

# Rows compared and gathered at a time on CPU (:func:`_count_closer`): small enough that a
# block of Market-sized rows stays in cache between its passes.
_BLOCK_ROWS = 16

# Elements of one query chunk (rows x gallery) when no chunk_size is given: 16M elements keep the
# working set (the chunk's distances and their sorted copy) near 130 MB in float32.
_CHUNK_ELEMENTS = 1 << 24


class NoMatchError(ValueError):
    """No query has a true match: nothing to average. A subclass so that callers can tell
    this (a split or a gallery draw that cannot be ranked) from malformed input."""


@dataclass(frozen=True)
class RankResult:
    """CMC, mAP and mINP; unpacks as the 3-tuple ``cmc, mAP, mINP`` (torchreid's habit plus
    mINP), while the counts of valid and skipped queries stay reachable as attributes."""

    cmc: np.ndarray  # [max_rank] float64, fraction of valid queries matched within rank k+1
    mAP: float
    mINP: float
    num_valid: int  # queries with at least one true match after same-camera removal
    num_skipped: int  # queries without one: left out of every average, as torchreid does
    #: per valid query, in query order: its index, 0-based first-match rank, AP and INP (what
    #: a bootstrap over query identities resamples, :mod:`harness.bootstrap`)
    query_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    first_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ap: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inp: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __iter__(self) -> Iterator[Any]:
        return iter((self.cmc, self.mAP, self.mINP))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        return (self.cmc, self.mAP, self.mINP)[index]


@dataclass(frozen=True)
class SingleShotResult:
    """Single-gallery-shot CMC averaged over random gallery draws (the trials that could be
    ranked: see ``trials_skipped``)."""

    cmc: np.ndarray  # [max_rank] mean over ranked trials
    cmc_std: np.ndarray  # [max_rank] standard deviation over ranked trials (ddof=0)
    mAP: float  # mean over ranked trials
    mINP: float  # mean over ranked trials
    trials: int  # gallery draws made
    num_skipped: float  # mean number of skipped queries per draw (a skipped trial: all of them)
    #: each ranked trial's result, per-query values included (:mod:`harness.bootstrap`)
    per_trial: tuple[RankResult, ...] = ()
    #: draws in which no query had a true match, left out of every average
    trials_skipped: int = 0


# --------------------------------------------------------------------------- inputs


def _tensor(x: ArrayLike, device: torch.device | None = None) -> Tensor:
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device) if device is not None else t


def _ids(x: ArrayLike, n: int, name: str, device: torch.device) -> Tensor:
    t = _tensor(x, device).reshape(-1)
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} entries, expected {n}")
    return t.long()


class _Gallery:
    """Gallery ids grouped by identity, so each query's same-id samples are a slice."""

    def __init__(self, g_pids: Tensor, g_camids: Tensor) -> None:
        self.pids, self.cams = g_pids, g_camids
        self.order = torch.sort(g_pids, stable=True).indices
        self.unique, counts = torch.unique_consecutive(g_pids[self.order], return_counts=True)
        self.counts = counts
        self.starts = torch.cumsum(counts, 0) - counts

    def same_id(self, q_pids: Tensor) -> tuple[Tensor, Tensor]:
        """(start, count) of each query's identity in ``order``; count 0 if absent."""
        if self.unique.numel() == 0:
            zero = torch.zeros_like(q_pids)
            return zero, zero
        pos = torch.searchsorted(self.unique, q_pids).clamp_(max=self.unique.numel() - 1)
        found = self.unique[pos] == q_pids
        return self.starts[pos], torch.where(found, self.counts[pos], 0)


# --------------------------------------------------------------------------- per-chunk ranking


def _same_id(
    d: Tensor, q_pids: Tensor, q_cams: Tensor, gal: _Gallery
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each row's same-identity samples as padded slots: gallery index, distance, slot in use,
    and true-match flag (same identity, other camera; the rest are removed)."""
    start, count = gal.same_id(q_pids)
    width = int(count.max()) if len(count) else 0
    slot = torch.arange(width, device=d.device)
    in_id = slot < count[:, None]
    gidx = gal.order[(start[:, None] + slot).clamp_(max=max(len(gal.order) - 1, 0))]
    pos = in_id & (gal.cams[gidx] != q_cams[:, None])
    return gidx, d.gather(1, gidx), in_id, pos


def _rank_sorted(
    d: Tensor, q_pids: Tensor, q_cams: Tensor, gal: _Gallery
) -> tuple[Tensor, Tensor, Tensor]:
    """First-match rank, AP and INP from a stable sort of whole rows: torchreid's per-query loop,
    vectorised over rows. Used for the rows where exact ties make the tie-break matter."""
    cols = torch.sort(d, dim=1, stable=True).indices
    same = gal.pids[cols] == q_pids[:, None]
    junk = same & (gal.cams[cols] == q_cams[:, None])
    pos = same & ~junk
    kept_pos = torch.cumsum(~junk, 1)  # 1-based position among kept samples
    hits = torch.cumsum(pos, 1)
    n_pos = hits[:, -1]
    ap = torch.where(pos, hits.double() / kept_pos.double(), 0.0).sum(1) / n_pos.clamp(min=1)
    first_idx = pos.int().argmax(1, keepdim=True)
    last_idx = cols.shape[1] - 1 - pos.flip(1).int().argmax(1, keepdim=True)
    first = kept_pos.gather(1, first_idx)[:, 0] - 1
    inp = n_pos.double() / kept_pos.gather(1, last_idx)[:, 0].double().clamp(min=1)
    return first, ap, inp


def _count_closer(d: Tensor, pd: Tensor, n_pos: Tensor, offset: int) -> tuple[Tensor, Tensor]:
    """For each row's sorted match distances ``pd``: how many samples of the row are strictly
    closer (``<``), and how many are as close or closer (``<=``).

    Why not sort whole rows: only samples no farther than the row's farthest match can be
    closer than a match, and with any useful model they are a few percent of the gallery
    (1.5% on the Market-sized benchmark). On CPU each block of rows is compared once with its
    farthest match, the few near samples are gathered into a padded block and sorted, and the
    match distances are searched in it: the counts equal those from a sort of the whole row,
    for a fraction of the work. On a GPU a sort of the whole rows is fast and simple, so it
    stays. ``offset`` (the first row's query index) is for the NaN message only.
    """
    if d.device.type != "cpu":
        if bool(torch.isnan(d).any()):
            raise ValueError(f"distances of queries {offset}:{offset + len(d)} contain NaN")
        row_sorted = torch.sort(d, dim=1).values
        return torch.searchsorted(row_sorted, pd), torch.searchsorted(row_sorted, pd, right=True)
    far = torch.full((len(d),), -torch.inf, dtype=d.dtype)  # no match: no sample is needed
    if pd.shape[1]:
        farthest = pd.gather(1, (n_pos - 1).clamp(min=0)[:, None])[:, 0]
        far = torch.where(n_pos > 0, farthest, far)
    far = far.numpy()
    rows = d.numpy()
    closer = torch.zeros(pd.shape, dtype=torch.long)
    closer_eq = torch.zeros(pd.shape, dtype=torch.long)
    for a in range(0, len(rows), _BLOCK_ROWS):
        b = min(a + _BLOCK_ROWS, len(rows))
        block = rows[a:b]
        # not (d > far) rather than d <= far: a NaN sample is gathered too, and refused below
        near = np.greater(block, far[a:b, None])
        np.logical_not(near, out=near)
        flat = np.flatnonzero(near)
        values = block.ravel().take(flat)  # row by row, each row's near samples in gallery order
        if bool(np.isnan(values).any()):
            raise ValueError(f"distances of queries {offset + a}:{offset + b} contain NaN")
        row_of = flat // block.shape[1]
        count = np.bincount(row_of, minlength=b - a)
        width = int(count.max()) if len(flat) else 0
        if width == 0:
            continue
        col_of = np.arange(len(flat)) - (np.cumsum(count) - count)[row_of]
        padded = np.full((b - a, width), np.inf, dtype=block.dtype)
        padded[row_of, col_of] = values
        padded.sort(axis=1)
        near_sorted, match = torch.from_numpy(padded), pd[a:b].contiguous()
        closer[a:b] = torch.searchsorted(near_sorted, match)
        # the inf padding must not count when a match is itself at inf
        closer_eq[a:b] = torch.minimum(
            torch.searchsorted(near_sorted, match, right=True), torch.from_numpy(count)[:, None]
        )
    return closer, closer_eq


def _rank_chunk(
    d: Tensor, q_pids: Tensor, q_cams: Tensor, gal: _Gallery, offset: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """First-match rank (0-based), AP, INP and validity of each row of one chunk.

    A true match's kept position is (#matches before it) + (#non-matches closer), and the
    latter is (#samples closer) - (#same-identity samples closer): :func:`_count_closer`. Where
    a non-match is exactly as far as a match, the row is re-ranked by a stable sort instead
    (``right`` and ``left`` counts differ).
    """
    n, dev = len(d), d.device
    first = torch.zeros(n, dtype=torch.long, device=dev)
    ap = torch.zeros(n, dtype=torch.float64, device=dev)
    inp = torch.zeros(n, dtype=torch.float64, device=dev)
    gidx, d_same, in_id, pos = _same_id(d, q_pids, q_cams, gal)
    n_pos = pos.sum(1)
    valid = n_pos > 0
    k = int(n_pos.max())
    pd = torch.where(pos, d_same, torch.inf).sort(dim=1).values[:, :k].contiguous()
    closer, closer_eq = _count_closer(d, pd, n_pos, offset)  # NaN refused here
    if not bool(valid.any()):
        return first, ap, inp, valid
    same_sorted = torch.where(in_id, d_same, torch.inf).sort(dim=1).values.contiguous()
    closer -= torch.searchsorted(same_sorted, pd)
    # min(): the inf padding of same_sorted must not count when a match is itself at inf
    closer_eq -= torch.minimum(
        torch.searchsorted(same_sorted, pd, right=True), in_id.sum(1, keepdim=True)
    )
    is_match = torch.arange(k, device=dev) < n_pos[:, None]
    tied = ((closer != closer_eq) & is_match).any(1)

    rank = torch.arange(k, device=dev) + closer  # 0-based kept position of each sorted match
    hits = torch.arange(1, k + 1, device=dev, dtype=torch.float64)
    first = rank[:, 0].clone()
    ap = torch.where(is_match, hits / (rank + 1).double(), 0.0).sum(1) / n_pos.clamp(min=1)
    last = rank.gather(1, (n_pos - 1).clamp(min=0)[:, None])[:, 0]
    inp = n_pos.double() / (last + 1).double()
    if bool(tied.any()):
        rows = tied.nonzero()[:, 0]
        first[rows], ap[rows], inp[rows] = _rank_sorted(d[rows], q_pids[rows], q_cams[rows], gal)
    return first, ap, inp, valid


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the CPU ranking on one intra-op thread: its torch ops are small next to the numpy
    sort (single-threaded anyway), and on a shared machine thread barriers made it twice as slow."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rank_chunks(
    dist_rows: DistanceFn,
    num_q: int,
    num_g: int,
    q_pids: Tensor,
    q_cams: Tensor,
    gal: _Gallery,
    chunk_size: int,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[int], list[Tensor]]:
    firsts, aps, inps, valids, indices = [], [], [], [], []
    for lo in range(0, num_q, chunk_size):
        hi = min(lo + chunk_size, num_q)
        d = dist_rows(lo, hi)
        if d.shape != (hi - lo, num_g):
            raise ValueError(
                f"distance rows {lo}:{hi} have shape {tuple(d.shape)}, expected {(hi - lo, num_g)}"
            )
        if d.dtype not in (torch.float32, torch.float64):
            d = d.double() if not d.is_floating_point() else d.float()  # exact for f16/bf16
        d = d.contiguous()
        with _one_cpu_thread(d.device):  # not around dist_rows: a matmul there wants threads
            first, ap, inp, valid = _rank_chunk(d, q_pids[lo:hi], q_cams[lo:hi], gal, lo)
        firsts.append(first[valid].cpu())
        aps.append(ap[valid].cpu())
        inps.append(inp[valid].cpu())
        valids.append(int(valid.sum()))
        indices.append(lo + valid.nonzero()[:, 0].cpu())
    return firsts, aps, inps, valids, indices


def _evaluate(
    dist_rows: DistanceFn,
    num_q: int,
    num_g: int,
    q_pids: Tensor,
    g_pids: Tensor,
    q_cams: Tensor,
    g_cams: Tensor,
    max_rank: int,
    chunk_size: int | None,
) -> RankResult:
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(num_g, 1))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    gal = _Gallery(g_pids, g_cams)
    firsts, aps, inps, valids, indices = _rank_chunks(
        dist_rows, num_q, num_g, q_pids, q_cams, gal, chunk_size
    )
    num_valid = sum(valids)
    if num_valid == 0:
        raise NoMatchError(
            f"no query has a true match in the gallery: all {num_q} queries were skipped "
            "(same identity on a different camera is required; check pids and camids)"
        )
    first = torch.cat(firsts)
    counts = torch.bincount(first.clamp(max=max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = (torch.cumsum(counts, 0).double() / num_valid).numpy()
    ap, inp = torch.cat(aps), torch.cat(inps)
    return RankResult(
        cmc=cmc,
        mAP=float(ap.mean()),
        mINP=float(inp.mean()),
        num_valid=num_valid,
        num_skipped=num_q - num_valid,
        query_index=torch.cat(indices).numpy(),
        first_rank=first.numpy(),
        ap=ap.numpy(),
        inp=inp.numpy(),
    )


# --------------------------------------------------------------------------- public ranking


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    *,
    chunk_size: int | None = None,
) -> RankResult:
    """Market-1501 CMC, mAP and mINP of a query x gallery distance matrix (smaller = closer).

    Numbers equal ``torchreid.reid.metrics.evaluate_rank(..., use_metric_cuhk03=False)`` on
    tie-free distances (exact ties are broken by gallery index, i.e. a stable sort). Differences
    from torchreid: the CMC always has ``max_rank`` entries (ranks beyond the gallery repeat the
    last value instead of truncating), mINP is returned too, and instead of asserting when no
    query has a match we raise :class:`NoMatchError` (a ``ValueError``); queries without a match
    are skipped and counted in ``result.num_skipped``. Runs on the tensor's device when given a
    torch tensor.
    """
    d = _tensor(distmat)
    if d.dim() != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {tuple(d.shape)}")
    num_q, num_g = d.shape
    dev = d.device
    return _evaluate(
        lambda lo, hi: d[lo:hi],
        num_q,
        num_g,
        _ids(q_pids, num_q, "q_pids", dev),
        _ids(g_pids, num_g, "g_pids", dev),
        _ids(q_camids, num_q, "q_camids", dev),
        _ids(g_camids, num_g, "g_camids", dev),
        max_rank,
        chunk_size,
    )


def pairwise_distance(qf: Tensor, gf: Tensor, metric: str = "euclidean") -> Tensor:
    """Squared Euclidean (as torchreid's ``compute_distance_matrix``) or cosine distance."""
    if metric == "euclidean":
        d = qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)[None, :]
        return d.addmm_(qf, gf.T, beta=1.0, alpha=-2.0).clamp_(min=0)
    if metric == "cosine":
        qn = torch.nn.functional.normalize(qf, dim=1)
        gn = torch.nn.functional.normalize(gf, dim=1)
        return 1.0 - qn @ gn.T
    raise ValueError(f"unknown metric {metric!r}; expected 'euclidean' or 'cosine'")


def evaluate_rank_from_features(
    qf: ArrayLike,
    gf: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    metric: str = "euclidean",
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> RankResult:
    """:func:`evaluate_rank` with distances computed per chunk of queries, so memory grows with
    ``chunk_size x gallery`` rather than ``queries x gallery``."""
    q, g = _tensor(qf), _tensor(gf)
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"features must be [N, D] with equal D, got {tuple(q.shape)} and {tuple(g.shape)}"
        )
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; expected 'euclidean' or 'cosine'")
    g = g.to(q.device)
    if not q.is_floating_point():
        q, g = q.float(), g.float()
    num_q, num_g = len(q), len(g)
    dev = q.device
    return _evaluate(
        lambda lo, hi: pairwise_distance(q[lo:hi], g, metric),
        num_q,
        num_g,
        _ids(q_pids, num_q, "q_pids", dev),
        _ids(g_pids, num_g, "g_pids", dev),
        _ids(q_camids, num_q, "q_camids", dev),
        _ids(g_camids, num_g, "g_camids", dev),
        max_rank,
        chunk_size,
    )


def single_gallery_shot_cmc(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    *,
    trials: int = 10,
    seed: int = 0,
    max_rank: int = 50,
) -> SingleShotResult:
    """VIPeR/CUHK03/CAVIAR-style CMC: each trial keeps one random gallery sample per identity
    (``numpy.random.default_rng(seed)``), evaluates it with :func:`evaluate_rank` (same-id
    same-camera samples still removed) and the trials are averaged. The draw is over the whole
    gallery, before removal, so a query whose drawn sample shares its camera is skipped in that
    trial; splits of this style put query and gallery on different cameras, where it never
    happens (the validation split too, since ``mlr-2.2``). A trial in which every query is
    skipped has nothing to average: it is left out and counted in ``trials_skipped`` rather
    than failing the evaluation (or counting as zero); when every trial is, it raises
    :class:`NoMatchError`."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    d = _tensor(distmat)
    if d.dim() != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {tuple(d.shape)}")
    num_q, num_g = d.shape
    dev = d.device
    gp = _ids(g_pids, num_g, "g_pids", dev)
    gc = _ids(g_camids, num_g, "g_camids", dev)
    qp = _ids(q_pids, num_q, "q_pids", dev)
    qc = _ids(q_camids, num_q, "q_camids", dev)
    gal = _Gallery(gp, gc)
    order, starts, counts = (
        gal.order.cpu().numpy(),
        gal.starts.cpu().numpy(),
        gal.counts.cpu().numpy(),
    )
    rng = np.random.default_rng(seed)
    results = []
    skipped = 0
    for _ in range(trials):
        pick = starts + np.floor(rng.random(len(counts)) * counts).astype(np.int64)
        keep = torch.as_tensor(np.sort(order[pick]), device=dev)
        try:
            results.append(evaluate_rank(d[:, keep], qp, gp[keep], qc, gc[keep], max_rank=max_rank))
        except NoMatchError:
            skipped += 1
    if not results:
        raise NoMatchError(
            f"no query has a true match in any of the {trials} gallery draws: every drawn "
            f"image of a query's identity came from the query's own camera ({num_q} queries; "
            "single-gallery-shot splits need the gallery on other cameras than the queries)"
        )
    cmcs = np.stack([r.cmc for r in results])
    return SingleShotResult(
        cmc=cmcs.mean(0),
        cmc_std=cmcs.std(0),
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        trials=trials,
        num_skipped=float(sum(r.num_skipped for r in results) + skipped * num_q) / trials,
        per_trial=tuple(results),
        trials_skipped=skipped,
    )


def cmc_at(cmc: Sequence[float] | np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``{"rank1": cmc[0], ...}``; a rank beyond the curve takes its last value (the CMC is flat
    once every query has matched)."""
    values = np.asarray(cmc, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("empty CMC curve")
    out = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"ranks start at 1, got {k}")
        out[f"rank{k}"] = float(values[min(k, values.size) - 1])
    return out


# --------------------------------------------------------------------------- image quality


def _per_image_quality(sr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor]:
    if sr.shape != hr.shape or sr.dim() != 4:
        raise ValueError(
            f"sr and hr must be equal B x C x H x W batches, "
            f"got {tuple(sr.shape)} and {tuple(hr.shape)}"
        )
    sr = sr.detach().float().clamp(0.0, 1.0)
    hr = hr.detach().float().to(sr.device)
    # kornia's psnr averages the MSE over the whole batch; the per-image mean is the usual report.
    psnr = torch.stack(
        [kornia.metrics.psnr(s, h, max_val=1.0) for s, h in zip(sr, hr, strict=True)]
    )
    ssim = kornia.metrics.ssim(sr, hr, window_size=11, max_val=1.0).flatten(1).mean(1)
    return psnr, ssim


def psnr_ssim(sr: Tensor, hr: Tensor) -> tuple[float, float]:
    """Mean per-image PSNR (dB) and SSIM (11x11 Gaussian window) of images in [0, 1]; ``sr`` is
    clamped to [0, 1] first. Identical images give PSNR ``inf``."""
    psnr, ssim = _per_image_quality(sr, hr)
    return float(psnr.mean()), float(ssim.mean())


class ImageQuality:
    """Running per-image mean of PSNR and SSIM over batches of any size."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._psnr = 0.0
        self._ssim = 0.0
        self._count = 0

    def update(self, sr: Tensor, hr: Tensor) -> None:
        psnr, ssim = _per_image_quality(sr, hr)
        self._psnr += float(psnr.double().sum())
        self._ssim += float(ssim.double().sum())
        self._count += len(psnr)

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            return {"psnr": float("nan"), "ssim": float("nan")}
        return {"psnr": self._psnr / self._count, "ssim": self._ssim / self._count}
