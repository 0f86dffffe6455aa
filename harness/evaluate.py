"""LR query -> SR -> re-id features against an HR gallery; CMC, mAP, mINP,
per-ratio breakdown and PSNR/SSIM, next to the bicubic and HR-query baselines.

The ranking maths lives in :mod:`harness.metrics` (pure array code that knows
nothing of models); this module feeds it features.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.bootstrap import PER_QUERY_FILE, PER_QUERY_SCHEMA, per_query_block, rank_intervals
from harness.config import PROTOCOL_VERSION, RunConfig
from harness.data.mlr import downsample, ratio_buckets, ratio_key, upsample_bicubic
from harness.data.prepare import PreparedData
from harness.errors import HarnessError
from harness.io import atomic_write_json
from harness.metrics import (
    ImageQuality,
    NoMatchError,
    RankResult,
    SingleShotResult,
    cmc_at,
    evaluate_rank,
    pairwise_distance,
    single_gallery_shot_cmc,
)
from harness.ranks import query_views, ranks_sample, sample_queries

__all__ = [
    "evaluate_rank",
    "evaluate_models",
    "evaluate_splits",
    "extract_features",
    "rank_metrics",
]

Transform = Callable[[Tensor], Tensor]


@torch.no_grad()
def extract_features(
    reid: nn.Module,
    images: Tensor,
    device: torch.device,
    batch_size: int = 128,
    transform: Transform | None = None,
    amp_dtype: torch.dtype | None = None,
) -> Tensor:
    """Eval-mode re-id features of uint8 images, optionally transformed first (e.g. LR -> SR)."""
    was = reid.training
    reid.eval()
    feats = []
    autocast = (
        torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    )
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device, non_blocking=True).float().div_(255.0)
        with autocast:
            if transform is not None:
                x = transform(x)
            feats.append(reid(x).float().cpu())
    reid.train(was)
    return torch.cat(feats) if feats else torch.zeros(0, 1)


def rank_metrics(
    distmat: Tensor,
    q_pids: Tensor,
    g_pids: Tensor,
    q_cams: Tensor,
    g_cams: Tensor,
    single_gallery_shot: bool,
    trials: int,
    seed: int,
) -> dict:
    """Rank-1/5/10, mAP, mINP and the CMC to rank 50, in fractions, each with a bootstrap
    standard error and interval over query identities (:mod:`harness.bootstrap`)."""
    return _rank(distmat, q_pids, g_pids, q_cams, g_cams, single_gallery_shot, trials, seed)[0]


def _rank(
    distmat: Tensor,
    q_pids: Tensor,
    g_pids: Tensor,
    q_cams: Tensor,
    g_cams: Tensor,
    single_gallery_shot: bool,
    trials: int,
    seed: int,
) -> tuple[dict, RankResult | SingleShotResult]:
    """:func:`rank_metrics` and the ranking it came from (its per-query outcomes)."""
    if single_gallery_shot:
        res = single_gallery_shot_cmc(
            distmat, q_pids, g_pids, q_cams, g_cams, trials=trials, seed=seed
        )
        return {
            **cmc_at(res.cmc),
            "mAP": float(res.mAP),
            "mINP": float(getattr(res, "mINP", float("nan"))),
            "cmc": [float(v) for v in res.cmc],
            "cmc_std": [float(v) for v in res.cmc_std],
            # draws where no query had a true match, left out of the means (absent when none)
            **({"trials_skipped": res.trials_skipped} if res.trials_skipped else {}),
            **rank_intervals(res, q_pids.cpu().numpy(), seed),
        }, res
    result = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50)
    cmc, mAP, mINP = result
    return {
        **cmc_at(cmc),
        "mAP": float(mAP),
        "mINP": float(mINP),
        "cmc": [float(v) for v in cmc],
        **rank_intervals(result, q_pids.cpu().numpy(), seed),
    }, result


@torch.no_grad()
def evaluate_models(
    generator: nn.Module,
    reid: nn.Module,
    data: PreparedData,
    config: RunConfig,
    device: torch.device,
    split: str = "test",
    run_dir: Path | None = None,
) -> tuple[dict, dict[str, Any]]:
    """Metrics for SR, bicubic and HR queries of one split (``test``, or ``val`` for the
    validation split), and a few sample images for the report (``ranks``: ranked lists of a
    seeded sample of test queries, :mod:`harness.ranks`).

    With ``run_dir``, each query's outcomes go to its :data:`~harness.bootstrap.PER_QUERY_FILE`
    (written atomically), so rows can later be compared query by query (:mod:`harness.paired`).
    """
    protocol = config.protocol
    evalset = data.eval_set(split)
    size = data.hr_size  # SR restores the HR size; the re-id model resizes to its own input
    amp = torch.bfloat16 if (config.amp and device.type == "cuda") else None
    bs = config.eval_batch_size
    g_was = generator.training
    generator.eval()

    gallery_f = extract_features(reid, evalset.gallery_images, device, bs, amp_dtype=amp)
    buckets = ratio_buckets(evalset.query_ratios.tolist())
    n = len(evalset.query_images)
    feats = {kind: torch.zeros(n, gallery_f.shape[1]) for kind in ("sr", "bicubic", "hr")}
    quality = {"sr": ImageQuality(), "bicubic": ImageQuality()}
    quality_by_ratio: dict[str, dict[str, ImageQuality]] = {}
    samples: dict[str, list[Tensor]] = {"lr": [], "sr": [], "bicubic": [], "hr": []}
    feats["hr"] = extract_features(reid, evalset.query_images, device, bs, amp_dtype=amp)

    for ratio, idx in buckets.items():
        index = torch.tensor(idx)
        images = evalset.query_images[index]
        quality_by_ratio[ratio_key(ratio)] = {"sr": ImageQuality(), "bicubic": ImageQuality()}
        for kind in ("sr", "bicubic"):

            def transform(x: Tensor, kind: str = kind, ratio: float = ratio) -> Tensor:
                lr = downsample(x, ratio, protocol)
                out = generator(lr, size) if kind == "sr" else upsample_bicubic(lr, size)
                out = out.float().clamp(0, 1)
                quality[kind].update(out, x.float())
                quality_by_ratio[ratio_key(ratio)][kind].update(out, x.float())
                if len(samples[kind]) < 2:
                    samples[kind].append(out[:4].cpu())
                    if kind == "sr":
                        samples["lr"].append(
                            F.interpolate(lr[:4].float(), size=size, mode="nearest").cpu()
                        )
                        samples["hr"].append(x[:4].float().cpu())
                return out

            feats[kind][index] = extract_features(reid, images, device, bs, transform, amp)
    # ranked lists are drawn for the test split only (the report's figure)
    picked = sample_queries(data.query_ratios.tolist(), protocol.seed) if split == "test" else []
    views = query_views(generator, data, picked, protocol, device) if picked else None
    generator.train(g_was)

    common = dict(
        g_pids=evalset.gallery_pids,
        q_cams=evalset.query_camids,
        g_cams=evalset.gallery_camids,
        single_gallery_shot=evalset.single_gallery_shot,
        trials=protocol.trials,
        seed=protocol.seed,
    )
    queries: dict[str, dict] = {}
    outcomes: dict[str, dict] = {}
    picked_rows: dict[str, Tensor] = {}
    for kind in ("sr", "bicubic", "hr"):
        dist = pairwise_distance(feats[kind], gallery_f, config.metric)
        picked_rows[kind] = dist[picked]
        result, ranking = _rank(
            dist, evalset.query_pids, **{**common, "q_cams": evalset.query_camids}
        )
        outcomes[kind] = per_query_block(
            ranking, evalset.query_pids.cpu().numpy(), evalset.query_ratios.cpu().numpy()
        )
        native = evalset.native_lr  # no HR ground truth for genuinely LR queries
        if kind != "hr":
            if not native:
                result.update(quality[kind].compute())
            per_ratio = {}
            for ratio, idx in buckets.items():
                index = torch.tensor(idx)
                sub = rank_metrics(
                    dist[index],
                    evalset.query_pids[index],
                    **{**common, "q_cams": evalset.query_camids[index]},
                )
                sub.pop("cmc", None)
                sub.pop("cmc_std", None)
                if not native:
                    sub.update(quality_by_ratio[ratio_key(ratio)][kind].compute())
                per_ratio[ratio_key(ratio)] = sub
            result["per_ratio"] = per_ratio
        queries[kind] = result
    sample_tensors: dict[str, Any] = {k: torch.cat(v)[:8] for k, v in samples.items() if v}
    style = "single-gallery-shot" if evalset.single_gallery_shot else "market"
    if run_dir is not None:
        atomic_write_json(
            Path(run_dir) / PER_QUERY_FILE,
            {
                "schema": PER_QUERY_SCHEMA,
                "data": config.data,
                "protocol_version": protocol.version,
                "eval_style": style,
                "trials": protocol.trials if evalset.single_gallery_shot else 1,
                "num_queries": n,
                "queries": outcomes,
            },
        )
    if split == "test":
        sample_tensors["ranks"] = ranks_sample(data, picked, picked_rows, views, config.metric)
    return {
        "queries": queries,
        "num_queries": n,
        "num_gallery": len(evalset.gallery_images),
        "eval_style": style,
        "metric": config.metric,
    }, sample_tensors


def evaluate_splits(
    generator: nn.Module,
    reid: nn.Module,
    data: PreparedData,
    config: RunConfig,
    device: torch.device,
    run_dir: Path | None = None,
) -> tuple[dict, dict[str, Tensor]]:
    """The test split's metrics at the top level, and the validation split's, when the run
    holds one, as a ``val`` block of the same shape.

    Why the test block stays at the top level: every metrics.json written before
    ``mlr-2.1`` has it there, and the leaderboard reads old and new runs alike. Anything that
    chooses (tuning, stopping, readiness) reads ``val``; the test numbers are only reported.

    A split in which no query has a true match (in any gallery draw) cannot be ranked: that
    is one :class:`~harness.errors.HarnessError` line naming the split, not a traceback.
    """
    split = "test"
    try:
        metrics, samples = evaluate_models(generator, reid, data, config, device, run_dir=run_dir)
        if data.val is not None:
            split = "val"
            val, _ = evaluate_models(generator, reid, data, config, device, split="val")
            val["num_ids"] = len(set(data.val.query_pids.tolist()))
            metrics["val"] = val
    except NoMatchError as exc:
        protocol = config.protocol
        hint = ""
        if (
            split == "val"
            and data.split.single_gallery_shot
            and protocol.version != PROTOCOL_VERSION
        ):
            hint = (
                f"; this {protocol.version} run folder keeps its old validation split, which "
                f"{PROTOCOL_VERSION} runs build without same-camera gallery images"
            )
        raise HarnessError(
            f"the {split} split of {config.data} cannot be ranked: {exc}{hint}"
        ) from exc
    return metrics, samples
