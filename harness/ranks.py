"""Ranked lists of a few queries: which people the model confuses, and at which LR ratio.

A metric says how often; a ranked list says who. For a fixed, seeded sample of queries
(:data:`PER_RATIO` of every LR ratio, so each ratio is seen), each run writes

* ``ranks.json``: per sampled query its index, pid, camera and ratio, and for the SR,
  bicubic and HR query its top-:data:`TOP` gallery indices, pids, distances and whether
  each is a true match; always written (it holds no image);
* ``ranks.png``: per sampled query the LR image, the query as the re-id model sees it
  (SR, bicubic, HR) and its top-:data:`TOP` gallery images, true matches framed green,
  wrong ones red. Not drawn where the dataset declares that its images may not be
  redistributed (``redistributable: false`` in its info, CUHK03), unless asked
  (``--show-samples``); :func:`may_show_images` is the one rule for every sample image
  (``sr_samples.png``: :mod:`harness.report`; the site: :mod:`harness.site`).

The gallery is ranked as the evaluation ranks it: gallery images of the query's identity
from the query's own camera are left out (Market-style junk), so a green frame is a match
the CMC counts. Evaluation (:mod:`harness.evaluate`) hands over the sampled queries' rows
of its distance matrices and their images; this module knows no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.config import ProtocolConfig
from harness.data.mlr import downsample, ratio_buckets, ratio_key, upsample_bicubic
from harness.data.prepare import PreparedData
from harness.io import atomic_save_figure, atomic_write_json
from harness.mosaic import Cell, grid_figure

#: gallery images shown per ranked list
TOP = 10
#: sampled queries per LR ratio
PER_RATIO = 2
#: added to the protocol seed, so the sample is its own stream (drawing it moves no other)
SEED_OFFSET = 26
#: the query kinds ranked, in display order
KINDS = ("sr", "bicubic", "hr")
KIND_LABELS = {"sr": "SR", "bicubic": "bicubic", "hr": "HR"}
MATCH, MISS = "#1a9641", "#d7191c"
JSON_FILE, FIGURE_FILE = "ranks.json", "ranks.png"


def sample_queries(ratios: Sequence[float], seed: int, per_ratio: int = PER_RATIO) -> list[int]:
    """Query indices: ``per_ratio`` of each ratio (all where fewer), drawn with ``seed``.

    The same protocol gives the same queries in every run, so two runs' ranked lists show
    the same people.
    """
    rng = np.random.default_rng(int(seed) + SEED_OFFSET)
    picked: list[int] = []
    for _, idx in ratio_buckets(ratios).items():
        chosen = rng.choice(len(idx), size=min(per_ratio, len(idx)), replace=False)
        picked += sorted(int(idx[i]) for i in chosen)
    return picked


@torch.no_grad()
def query_views(
    generator: nn.Module,
    data: PreparedData,
    picked: Sequence[int],
    protocol: ProtocolConfig,
    device: torch.device,
) -> dict[str, list[Tensor]]:
    """Each picked query as LR, SR, bicubic and HR (float in [0, 1], on the CPU), made as
    evaluation makes them (in float32)."""
    views: dict[str, list[Tensor]] = {"lr": [], "sr": [], "bicubic": [], "hr": []}
    size = data.hr_size
    ratios = data.query_ratios[list(picked)].tolist()
    for image, ratio in zip(data.query_images[list(picked)], ratios, strict=True):
        x = image.unsqueeze(0).to(device).float().div(255.0)
        lr = downsample(x, float(ratio), protocol)
        views["lr"].append(lr[0].cpu())
        views["sr"].append(generator(lr, size).float().clamp(0, 1)[0].cpu())
        views["bicubic"].append(upsample_bicubic(lr, size).float().clamp(0, 1)[0].cpu())
        views["hr"].append(x[0].cpu())
    return views


def ranked_lists(
    picked: Sequence[int],
    distances: Mapping[str, Tensor],
    q_pids: Tensor,
    q_cams: Tensor,
    q_ratios: Tensor,
    g_pids: Tensor,
    g_cams: Tensor,
    top: int = TOP,
) -> list[dict[str, Any]]:
    """``ranks.json``'s queries: ``distances[kind]`` holds the picked queries' rows."""
    g_pids, g_cams = torch.as_tensor(g_pids), torch.as_tensor(g_cams)
    out = []
    for row, q in enumerate(picked):
        pid, cam = int(q_pids[q]), int(q_cams[q])
        junk = (g_pids == pid) & (g_cams == cam)
        entry: dict[str, Any] = {
            "index": int(q),
            "pid": pid,
            "camid": cam,
            "ratio": float(q_ratios[q]),
            "ranks": {},
        }
        for kind in KINDS:
            if kind not in distances:
                continue
            dist = distances[kind][row].double().masked_fill(junk, math.inf)
            k = min(top, int((~junk).sum()))
            order = torch.argsort(dist, stable=True)[:k]
            entry["ranks"][kind] = {
                "gallery": [int(i) for i in order],
                "pids": [int(g_pids[i]) for i in order],
                "distances": [round(float(dist[i]), 6) for i in order],
                "match": [bool(g_pids[i] == pid) for i in order],
            }
        out.append(entry)
    return out


def ranks_sample(
    data: PreparedData,
    picked: Sequence[int],
    distances: Mapping[str, Tensor],
    views: Mapping[str, Sequence[Tensor]],
    metric: str,
) -> dict[str, Any]:
    """What evaluation hands the report for :func:`write_ranks`."""
    queries = ranked_lists(
        picked,
        distances,
        data.query_pids,
        data.query_camids,
        data.query_ratios,
        data.gallery_pids,
        data.gallery_camids,
    )
    return {"queries": queries, "views": views, "gallery": data.gallery_images, "metric": metric}


def may_show_images(dataset: Mapping[str, Any] | None, asked: bool = False) -> bool:
    """Images of a dataset are drawn unless it says they may not be redistributed (and the
    user did not ask for them anyway)."""
    return asked or bool((dataset or {}).get("redistributable", True))


def ranks_figure(
    queries: Sequence[Mapping[str, Any]],
    views: Mapping[str, Sequence[Tensor]],
    gallery: Tensor,
) -> Any:
    """Rows of (LR | query as seen | top-k gallery), three per sampled query (SR, bicubic,
    HR); frames green for a true match, red otherwise. Drawn as one image
    (:mod:`harness.mosaic`)."""
    kinds = [k for k in KINDS if queries and k in queries[0]["ranks"]]
    top = max((len(q["ranks"][k]["gallery"]) for q in queries for k in kinds), default=0)
    height, width = (int(s) for s in gallery.shape[-2:])
    rows: list[list[Cell]] = []
    labels: list[tuple[int, int, str]] = []
    for qi, query in enumerate(queries):
        lr = views["lr"][qi].unsqueeze(0)
        lr_big = F.interpolate(lr, size=(height, width), mode="nearest")[0]
        for ki, kind in enumerate(kinds):
            ranked = query["ranks"][kind]
            if ki == 0:
                label = f"x{ratio_key(query['ratio'])}\npid {query['pid']}"
                labels.append((len(rows), 0, label))
            labels.append((len(rows), 2, KIND_LABELS[kind]))
            matches = zip(ranked["gallery"], ranked["match"], strict=True)
            rows.append(
                [
                    Cell(lr_big if ki == 0 else None),
                    Cell(None),  # room for the kind's label
                    Cell(views[kind][qi]),
                    *(Cell(gallery[g].float() / 255.0, MATCH if m else MISS) for g, m in matches),
                ]
            )
    titles = [(0, "LR"), (2, "query"), *((3 + c, str(c + 1)) for c in range(top))]
    return grid_figure(
        rows,
        height,
        width,
        column_widths=[1, 0.4, *[1] * (top + 1)],
        column_titles=titles,
        row_labels=labels,
        label_inches=0.5,
        title_inches=0.2,
    )


def write_ranks(
    run_dir: str | Path,
    ranks: Mapping[str, Any],
    dataset: Mapping[str, Any] | None = None,
    show_images: bool = False,
) -> list[Path]:
    """``ranks.json`` always; ``ranks.png`` where the dataset's images may be shown.

    ``ranks`` is what evaluation returned: ``queries`` (:func:`ranked_lists`), ``views``
    (:func:`query_views`), ``gallery`` (uint8 images) and ``metric``.
    """
    run_dir = Path(run_dir)
    queries = list(ranks["queries"])
    drawn = bool(queries) and may_show_images(dataset, show_images)
    doc = {
        "top": TOP,
        "per_ratio": PER_RATIO,
        "metric": ranks.get("metric"),
        "excluded": "gallery images of the query's identity from the query's camera",
        "figure": FIGURE_FILE if drawn else None,
        "queries": queries,
    }
    written = [atomic_write_json(run_dir / JSON_FILE, doc)]
    if drawn:
        figure = ranks_figure(queries, ranks["views"], ranks["gallery"])
        written.append(atomic_save_figure(figure, run_dir / FIGURE_FILE))
    elif (run_dir / FIGURE_FILE).is_file():
        (run_dir / FIGURE_FILE).unlink()  # an earlier evaluation's, drawn before the rule said no
    return written
