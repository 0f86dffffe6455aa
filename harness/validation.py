"""The validation curve: how the SR query scores on the validation split as stage 1 runs.

Why: how long stage 1 must be, and whether a row has stopped changing, is a choice, and
choices read the validation split, never the test split (docs/protocol.md, item 8). One run
with ``--val-every N`` measures its own curve, every N stage-1 iterations, instead of one run
per schedule length. Stage 1 has no learning-rate schedule, so the point at iteration N is the
score an N-iteration run ends with (tested): the curve answers "what if stage 1 were shorter"
exactly.

A point changes nothing in training: every module is read in inference mode under
``no_grad``, its training flags and buffers restored afterwards, and no random stream is drawn
(the validation split's gallery draws have their own seeded generator). A run's weights are the
same with and without the curve (tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from harness.config import RunConfig
from harness.data.prepare import PreparedData
from harness.evaluate import evaluate_models
from harness.freezing import buffers_restored, training_modes_restored

__all__ = ["CURVE_PREFIX", "curve_from_log", "validation_point"]

#: the prefix of a curve point's values in ``log.jsonl`` (``val/rank1``, ``val/mAP`` ...)
CURVE_PREFIX = "val/"
_KEYS = ("rank1", "rank5", "mAP", "psnr")


def validation_point(
    models: Mapping[str, nn.Module], data: PreparedData, config: RunConfig, device: torch.device
) -> dict[str, float]:
    """The SR query's validation Rank-1/5, mAP and PSNR as the models are now, as log values."""
    with (
        torch.no_grad(),
        training_modes_restored(models.values()),
        buffers_restored(models.values()),
    ):
        metrics, _ = evaluate_models(models["G"], models["reid"], data, config, device, "val")
    sr = metrics["queries"]["sr"]
    return {f"{CURVE_PREFIX}{k}": round(float(sr[k]), 5) for k in _KEYS if k in sr}


def curve_from_log(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``metrics.json``'s ``val_curve``: one entry per validation point of stage 1, in order."""
    curve = []
    for rec in records:
        if rec.get("stage") != "sr" or f"{CURVE_PREFIX}rank1" not in rec:
            continue
        point: dict[str, Any] = {"iteration": int(rec["iteration"])}
        for key in _KEYS:
            if f"{CURVE_PREFIX}{key}" in rec:
                point[key] = rec[f"{CURVE_PREFIX}{key}"]
        curve.append(point)
    return curve
