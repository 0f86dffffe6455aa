"""Run-folder artefacts: the CMC as CSV and plot, SR sample images, a terminal summary.

Everything here reads the ``metrics.json`` dictionary (fractions in [0, 1]) and
knows no model. Figures use matplotlib's object API (``Figure``, no pyplot), so
nothing touches the global backend or leaks figures in long-running processes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from harness.diagnostics import summary_lines
from harness.io import atomic_save_figure, atomic_torch_save, atomic_write_text
from harness.mosaic import Cell, grid_figure
from harness.ranks import may_show_images, write_ranks

#: Query kinds in display order; any other kind (e.g. "lr-aug") follows, sorted.
PRIMARY_KINDS = ("sr", "bicubic", "hr")

KIND_TITLES = {"sr": "SR query", "bicubic": "bicubic query", "hr": "HR query (upper bound)"}


def ordered_kinds(kinds: Iterable[str]) -> list[str]:
    """sr, bicubic, hr first (the story a reader follows), then the rest alphabetically."""
    kinds = list(dict.fromkeys(kinds))
    head = [k for k in PRIMARY_KINDS if k in kinds]
    return head + sorted(k for k in kinds if k not in PRIMARY_KINDS)


def percent(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage string; missing or NaN shows as "-" rather than "nan"."""
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    return f"{100.0 * value:.{digits}f}"


def _number(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------- CMC


def figure_text(text: str, limit: int = 80) -> str:
    """A user's label as matplotlib draws it literally: ``$`` escaped (a label such as
    ``$\\notacommand{x}$`` is otherwise parsed as mathtext and fails the save, after every run
    trained) and cut to ``limit`` characters with an ellipsis (a 300-character label otherwise
    pushes the axes off the figure). Tables and JSON keep the whole label."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text.replace("$", r"\$")


def write_cmc_csv(path: str | Path, queries: Mapping[str, Mapping[str, Any]]) -> Path:
    """``rank,<kind>,...`` with one row per rank, values in fractions as stored.

    Curves shorter than the longest (a tiny gallery) leave their cells empty rather than
    inventing values.
    """
    kinds = [k for k in ordered_kinds(queries) if queries[k].get("cmc")]
    length = max((len(queries[k]["cmc"]) for k in kinds), default=0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", *kinds])
    for i in range(length):
        row: list[Any] = [i + 1]
        for k in kinds:
            curve = queries[k]["cmc"]
            row.append(f"{float(curve[i]):.6f}" if i < len(curve) else "")
        writer.writerow(row)
    return atomic_write_text(path, buf.getvalue())


def cmc_figure(
    curves: Mapping[str, Sequence[float]],
    title: str,
    bands: Mapping[str, Sequence[float]] | None = None,
    max_rank: int = 50,
    dashed: Iterable[str] = (),
) -> Any:
    """A CMC figure (percent over rank 1..max_rank), optional ±bands, reference curves dashed.

    The legend sits to the right of the axes, never over a curve (CMC curves fill every
    corner of the plot); constrained layout makes room for it.
    """
    names = [figure_text(n) for n, c in curves.items() if list(c)]
    longest = max((len(n) for n in names), default=0)
    legend_width = 0.45 + 0.058 * longest if names else 0.0  # inches, 8-point text
    fig = Figure(figsize=(5.6 + legend_width, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        values = [100.0 * float(v) for v in list(curve)[:max_rank]]
        if not values:
            continue
        ranks = list(range(1, len(values) + 1))
        style = "--" if name in set(dashed) else "-"
        (line,) = ax.plot(ranks, values, style, label=figure_text(name), linewidth=1.6)
        band = (bands or {}).get(name)
        if band:
            spread = [100.0 * float(v) for v in list(band)[: len(values)]]
            if len(spread) == len(values):
                low = [v - s for v, s in zip(values, spread, strict=True)]
                high = [v + s for v, s in zip(values, spread, strict=True)]
                ax.fill_between(ranks, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlim(1, max_rank)
    ax.set_ylim(0, 101)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(figure_text(title, limit=90), fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize=8,
            frameon=False,
            borderaxespad=0.0,
        )
    return fig


def plot_cmc(path: str | Path, queries: Mapping[str, Mapping[str, Any]], title: str) -> Path:
    """CMC curves of every query kind; single-gallery-shot runs also show ±1 std over trials."""
    kinds = [k for k in ordered_kinds(queries) if queries[k].get("cmc")]
    curves = {KIND_TITLES.get(k, f"{k} query"): queries[k]["cmc"] for k in kinds}
    bands = {
        KIND_TITLES.get(k, f"{k} query"): queries[k]["cmc_std"]
        for k in kinds
        if queries[k].get("cmc_std")
    }
    dashed = [KIND_TITLES["hr"]]  # the upper bound is a reference, not a contender
    return atomic_save_figure(cmc_figure(curves, title, bands, dashed=dashed), path)


def curve_figure(curve: Sequence[Mapping[str, Any]]) -> Any:
    """The validation curve (``--val-every``): SR-query validation mAP and Rank-1 (%, left)
    and PSNR (dB, right) against the stage-1 iteration: where a row stops changing."""
    points = [p for p in curve if isinstance(p, Mapping) and isinstance(p.get("iteration"), int)]
    fig = Figure(figsize=(6.4, 3.8), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    its = [p["iteration"] for p in points]
    for key, label in (("mAP", "validation mAP"), ("rank1", "validation Rank-1")):
        values = [100.0 * float(p[key]) if key in p else math.nan for p in points]
        ax.plot(its, values, marker="o", markersize=3, linewidth=1.4, label=label)
    ax.set_xlabel("stage-1 iteration")
    ax.set_ylabel("%")
    handles, labels = ax.get_legend_handles_labels()
    if any("psnr" in p for p in points):
        right = ax.twinx()
        psnr = [float(p["psnr"]) if "psnr" in p else math.nan for p in points]
        (line,) = right.plot(its, psnr, "--", color="0.35", linewidth=1.4, label="validation PSNR")
        right.set_ylabel("PSNR (dB)")
        handles.append(line)
        labels.append(line.get_label())
    # below the axes, never over a curve
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=len(labels))
    ax.set_title("SR query on the validation split during stage 1", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------- SR samples


def samples_figure(rows: Sequence[tuple[str, Any]], max_images: int = 8) -> Any:
    """A grid of images, one labelled row per entry of ``rows`` ((name, B x 3 x H x W)).

    Tensors are float in [0, 1] or uint8; rows smaller than the first row's largest image
    (LR) are nearest-upsampled so their pixels stay visible.
    """

    def as_float(x: Any) -> torch.Tensor:
        x = x.detach().cpu()
        return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()

    tensors = [(name, as_float(x)) for name, x in rows]
    for name, x in tensors:
        if x.dim() != 4:
            raise ValueError(
                f"expected B x C x H x W images for {name}, got shape {tuple(x.shape)}"
            )
    size = max((x.shape[-2:] for _, x in tensors), key=lambda s: s[0] * s[1], default=None)
    if size is None:
        raise ValueError("no sample images to plot")

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x[:max_images]
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=tuple(size), mode="nearest")
        return x.clamp(0.0, 1.0)

    grid = [(name, prepare(x)) for name, x in tensors]
    n = min(len(images) for _, images in grid)
    if n == 0:
        raise ValueError("no sample images to plot")
    height, width = int(size[0]), int(size[1])
    label = 0.35 + 0.075 * max(len(name) for name, _ in grid)  # inches for the row names
    cells = [[Cell(images[c]) for c in range(n)] for _, images in grid]
    return grid_figure(
        cells,
        height,
        width,
        row_labels=[(r, 0, name) for r, (name, _) in enumerate(grid)],
        label_inches=label,
        fontsize=9,
    )


def plot_sr_samples(
    path: str | Path,
    lr: Any,
    sr: Any,
    hr: Any,
    bicubic: Any | None = None,
    max_images: int = 8,
) -> Path:
    """Rows LR (nearest-upsampled so its pixels stay visible), bicubic, SR, HR."""
    if hr.dim() != 4:
        raise ValueError(f"expected B x C x H x W images, got shape {tuple(hr.shape)}")
    rows = (
        [("LR", lr)]
        + ([("bicubic", bicubic)] if bicubic is not None else [])
        + [("SR", sr), ("HR", hr)]
    )
    return atomic_save_figure(samples_figure(rows, max_images), path)


#: the sample images as uint8 tensors, so a leaderboard can set rows of one dataset side by side
SAMPLES_FILE = "sr_samples.pt"
SAMPLE_KINDS = ("lr", "bicubic", "sr", "hr")


def save_samples(path: str | Path, samples: Mapping[str, Any], max_images: int = 8) -> Path:
    """LR / bicubic / SR / HR sample tensors as uint8 (about 200 kB at 64x32; the HR images tell
    a reader whether two runs show the same queries)."""
    packed = {
        k: (samples[k].detach().float().cpu()[:max_images].clamp(0, 1) * 255)
        .round()
        .to(torch.uint8)
        for k in SAMPLE_KINDS
        if samples.get(k) is not None
    }
    return atomic_torch_save(packed, path)


def load_samples(path: str | Path) -> dict[str, Any] | None:
    """What :func:`save_samples` wrote, or None where the file is missing or unreadable."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - missing, truncated or foreign: the page falls back to the PNG
        return None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), torch.Tensor) and data[k].dim() == 4 for k in ("sr", "hr")
    ):
        return None
    return data


# --------------------------------------------------------------------------- terminal summary


def format_summary(metrics: Mapping[str, Any]) -> str:
    """A plain-text table (no colour codes, so it survives logs and pipes)."""
    queries = metrics.get("queries", {})
    header = ["query", "Rank-1", "Rank-5", "Rank-10", "mAP", "PSNR", "SSIM"]
    rows = []
    for kind in ordered_kinds(queries):
        q = queries[kind]
        rows.append(
            [
                kind,
                percent(q.get("rank1")),
                percent(q.get("rank5")),
                percent(q.get("rank10")),
                percent(q.get("mAP")),
                _number(q.get("psnr"), 2) if "psnr" in q else "",
                _number(q.get("ssim"), 3) if "ssim" in q else "",
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    facts = [
        f"protocol {metrics.get('protocol_version', '?')}",
        f"{metrics.get('eval_style', '?')} evaluation",
        f"{metrics.get('num_queries', '?')} queries",
        f"{metrics.get('num_gallery', '?')} gallery",
    ]
    lines = [", ".join(facts) + " (Rank-k and mAP in %, PSNR in dB)"]
    init = metrics.get("reid_init")
    if init:
        start = (
            "random weights" if init.get("source") == "scratch" else f"{init.get('source')} weights"
        )
        asked = f" (first of {init['requested']} available here)" if init.get("requested") else ""
        lines.append(f"re-id backbone {init.get('backbone', '?')}{asked}, started from {start}")
    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(r) for r in rows]
    lines += interval_lines(queries)
    lines += validation_lines(metrics.get("val"))
    lines += curve_lines(metrics.get("val_curve"))
    lines += summary_lines(metrics.get("diagnostics") or {})
    return "\n".join(lines)


def validation_lines(val: Mapping[str, Any] | None) -> list[str]:
    """One line for the validation split (``mlr-2.1``): what tuning reads, kept apart from
    the test table above so nobody mistakes one for the other."""
    if not val:
        return []
    parts = [
        f"{kind} Rank-1 {percent(q.get('rank1'))} mAP {percent(q.get('mAP'))}"
        for kind, q in ((k, val["queries"][k]) for k in ordered_kinds(val.get("queries", {})))
    ]
    who = f"{val.get('num_queries', '?')} queries of {val.get('num_ids', '?')} held-out identities"
    return [f"validation split ({who}, not in training): " + ", ".join(parts)]


def curve_lines(curve: Any) -> list[str]:
    """The validation curve (``--val-every``) on one line: where the SR query stopped changing."""
    if not isinstance(curve, list) or not curve:
        return []
    points = [
        f"{p.get('iteration')}: {percent(p.get('rank1'))} / {p.get('psnr', float('nan')):.2f}"
        for p in curve
        if isinstance(p, dict)
    ]
    return ["validation curve over stage 1 (iteration: SR Rank-1 / PSNR): " + ", ".join(points)]


def interval_lines(queries: Mapping[str, Any]) -> list[str]:
    """Rank-1's 95% interval per query kind, where the metrics carry one (harness.bootstrap)."""
    parts = []
    for kind in ordered_kinds(queries):
        ci = queries[kind].get("rank1_ci")
        if ci:
            parts.append(f"{kind} [{percent(ci[0])}, {percent(ci[1])}]")
    if not parts:
        return []
    some = next(q["bootstrap"] for q in queries.values() if q.get("bootstrap"))
    return [
        f"Rank-1 95% interval (bootstrap over {some['identities']} query identities): "
        + ", ".join(parts)
    ]


def write_run_report(
    run_dir: str | Path,
    metrics: Mapping[str, Any],
    samples: Mapping[str, Any] | None = None,
    show_images: bool = False,
) -> list[Path]:
    """cmc.csv, cmc.png, (with samples holding lr/sr/hr[/bicubic]) sr_samples.png and
    sr_samples.pt, and (with samples holding ``ranks``) ranks.json and ranks.png.

    The sample images (sr_samples.png and .pt, ranks.png) only where the dataset's images
    may be shown, or ``show_images`` asks for them anyway (``--show-samples``: a private,
    local report; :func:`harness.ranks.may_show_images`). Otherwise an earlier report's
    are removed, so a folder never holds images its dataset forbids showing unasked.
    """
    run_dir = Path(run_dir)
    queries = metrics.get("queries", {})
    written = [write_cmc_csv(run_dir / "cmc.csv", queries)]
    title = (
        f"CMC ({metrics.get('eval_style', 'market')}, "
        f"protocol {metrics.get('protocol_version', '?')})"
    )
    written.append(plot_cmc(run_dir / "cmc.png", queries, title))
    curve = metrics.get("val_curve")
    if isinstance(curve, list) and curve:  # a run with --val-every
        written.append(atomic_save_figure(curve_figure(curve), run_dir / "val_curve.png"))
    shown = may_show_images(metrics.get("dataset"), show_images)
    if not shown:
        for name in ("sr_samples.png", SAMPLES_FILE):
            (run_dir / name).unlink(missing_ok=True)  # an earlier report's, drawn when asked
    if shown and samples and all(samples.get(k) is not None for k in ("lr", "sr", "hr")):
        written.append(
            plot_sr_samples(
                run_dir / "sr_samples.png",
                samples["lr"],
                samples["sr"],
                samples["hr"],
                samples.get("bicubic"),
            )
        )
        written.append(save_samples(run_dir / SAMPLES_FILE, samples))
    if samples and samples.get("ranks") is not None:
        written += write_ranks(run_dir, samples["ranks"], metrics.get("dataset"), show_images)
    return written
