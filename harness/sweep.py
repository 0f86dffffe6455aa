"""Weight sweeps on a leaderboard: rows that differ only in one numeric plugin option.

Why this figure exists: an identity term on the generator (INTACT's association critic
weighted by ``lambda_a``, the GAN's ``lambda_g``) pulls G away from the pixel loss. A table of
a weight sweep gives the numbers, but not the shape of the trade: SR PSNR against SR-query
Rank-1, one curve per regulariser with its points in weight order, shows at which weight the
identity term starts to cost pixels and whether it buys re-id in return (a curve that moves
left without moving up spends PSNR for nothing).

Detection is generic, so any spec (or runs collected by hand) gets the figure: among the
finished SR-query rows of one board, rows whose recipes (:func:`harness.leaderboard.recipe`:
the saved config without seed, paths and other bookkeeping) are equal except for one plugin
option with a numeric value form a curve over that option. Equal recipes imply one
regulariser, one SR model, one dataset and one schedule. Rows differing in two settings, or
in a core field such as ``lr``, form no curve. Where two rows share a recipe (the same
recipe run by two benches), the first one on the board stands for that weight. The figure
is drawn only when some curve has at least :data:`MIN_POINTS` points; two rows that happen
to differ in one option are a comparison, not a sweep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from harness import leaderboard as lb

#: points a curve needs before a board gets the figure
MIN_POINTS = 3

#: what the site prints above the figure
CAPTION = "Weight sweep: SR PSNR vs SR-query Rank-1"

OPTION_PREFIX = "options."


@dataclass(frozen=True)
class SweepPoint:
    """One row of a sweep: its weight, SR PSNR (dB) and SR-query Rank-1 (%), with spreads."""

    group: lb.Group
    value: float
    psnr: float
    rank1: float
    psnr_std: float = 0.0
    rank1_std: float = 0.0


@dataclass(frozen=True)
class Curve:
    """The rows of one regulariser that differ only in ``option``, sorted by its value."""

    reg: str
    option: str
    points: tuple[SweepPoint, ...]
    name: str = ""

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points]


def weight_text(value: float) -> str:
    """A weight as a person writes it: 0, 3e-4, 1e-2, 1e-1, 2.5e-1, 1, 20 (below 1 always in
    powers of ten, so the labels of one sweep read alike)."""
    if value == 0:
        return "0"
    if 1 <= abs(value) < 1e4:
        return f"{value:g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _spread(stat: lb.Stat) -> float:
    """The std over runs (a single run's bars would be its gallery trials: left out)."""
    return stat.std if stat.n > 1 and math.isfinite(stat.std) else 0.0


def _point(g: lb.Group, value: float) -> SweepPoint | None:
    psnr, rank1 = g.stat("sr", "psnr"), g.stat("sr", "rank1")
    if (
        psnr is None
        or rank1 is None
        or not (math.isfinite(psnr.mean) and math.isfinite(rank1.mean))
    ):
        return None
    return SweepPoint(
        g, value, psnr.mean, 100.0 * rank1.mean, _spread(psnr), 100.0 * _spread(rank1)
    )


def curves(groups: Iterable[lb.Group]) -> list[Curve]:
    """Every weight sweep among ``groups`` (one board's rows), in first-seen order.

    Only finished rows reporting the SR query with both its PSNR and Rank-1 take part; a
    curve needs two distinct values of its option (see the module docstring for the rule).
    """
    rows = [g for g in groups if g.n > 0 and g.query == "sr" and g.config]
    recipes = [lb.recipe(g.config) for g in rows]
    options = sorted(
        {k for rec in recipes for k in rec if k.startswith(OPTION_PREFIX) and k != lb.SPLIT_KEY}
    )
    found: list[tuple[int, Curve, str]] = []
    for key in options:
        parts: dict[str, list[tuple[int, float]]] = {}
        for i, rec in enumerate(recipes):
            value = _number(rec.get(key))
            if value is None:
                continue
            rest = json.dumps(
                {k: v for k, v in rec.items() if k != key}, sort_keys=True, default=str
            )
            parts.setdefault(rest, []).append((i, value))
        for rest, members in parts.items():
            first: dict[float, int] = {}
            for i, value in members:
                first.setdefault(value, i)  # a recipe on the board twice: the first stands
            if len(first) < 2:
                continue
            points = [p for value, i in first.items() if (p := _point(rows[i], value)) is not None]
            if len(points) < 2:
                continue
            points.sort(key=lambda p: p.value)
            reg = str(recipes[members[0][0]].get("reg", "?"))
            curve = Curve(reg, key.removeprefix(OPTION_PREFIX), tuple(points))
            found.append((min(first.values()), curve, rest))
    found.sort(key=lambda item: item[0])
    return _named([c for _, c, _ in found], [json.loads(r) for _, _, r in found])


def _named(found: Sequence[Curve], rests: Sequence[dict[str, Any]]) -> list[Curve]:
    """``intact: lambda_a``; where two curves would share that name, the settings that tell
    them apart are added (e.g. two SR models each swept over ``lambda_a``)."""
    base = [f"{c.reg}: {c.option}" for c in found]
    out = []
    for c, name, rest in zip(found, base, rests, strict=True):
        twins = [r for r, n in zip(rests, base, strict=True) if n == name]
        if len(twins) > 1:
            keys = sorted(
                k
                for k in set().union(*twins)
                if len({json.dumps(r.get(k), default=str) for r in twins}) > 1
            )
            name += " " + " ".join(
                f"{lb._setting_name(k)}={lb._value_text(rest.get(k))}" for k in keys[:2]
            )
        out.append(Curve(c.reg, c.option, c.points, name))
    return out


def drawn(found: Sequence[Curve]) -> bool:
    """Whether a board's sweeps make a figure: some curve has :data:`MIN_POINTS` points."""
    return any(len(c.points) >= MIN_POINTS for c in found)


def _labels(
    points: Sequence[SweepPoint], xtol: float, ytol: float
) -> list[tuple[tuple[float, float], str]]:
    """One label per place: neighbouring weights whose rows land within (xtol, ytol) of each
    other (a term that does little at those weights) share one label, ``3e-3 to 1e-1``,
    instead of printing over each other."""
    runs: list[list[SweepPoint]] = []
    for p in points:  # in weight order
        head = runs[-1][0] if runs else None
        if (
            head is not None
            and abs(p.psnr - head.psnr) <= xtol
            and abs(p.rank1 - head.rank1) <= ytol
        ):
            runs[-1].append(p)
        else:
            runs.append([p])
    out = []
    for same in runs:
        texts = [weight_text(p.value) for p in same]
        text = ", ".join(texts) if len(texts) <= 2 else f"{texts[0]} to {texts[-1]}"
        out.append(((same[0].psnr, same[0].rank1), text))
    return out


def sweep_figure(found: Sequence[Curve], title: str = CAPTION) -> Any:
    """SR PSNR (x, dB) against SR-query Rank-1 (y, %): a line with markers per curve, each
    point labelled by its weight, ±1 std bars where a row has several runs; the bicubic
    query of the same rows marks where SR stops paying for itself."""
    longest = max((len(c.name) for c in found), default=0)
    legend_width = 0.45 + 0.058 * max(longest, len("bicubic query"))
    fig = Figure(figsize=(5.2 + legend_width, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    xs_all = [p.psnr for c in found for p in c.points]
    ys_all = [p.rank1 for c in found for p in c.points]
    xtol = 0.03 * (max(xs_all, default=0.0) - min(xs_all, default=0.0))  # about a label's width
    ytol = 0.03 * (max(ys_all, default=0.0) - min(ys_all, default=0.0))
    for i, curve in enumerate(found):
        xs = [p.psnr for p in curve.points]
        ys = [p.rank1 for p in curve.points]
        (line,) = ax.plot(xs, ys, "-o", label=curve.name, linewidth=1.6, markersize=5)
        if any(p.psnr_std or p.rank1_std for p in curve.points):
            ax.errorbar(
                xs,
                ys,
                xerr=[p.psnr_std for p in curve.points],
                yerr=[p.rank1_std for p in curve.points],
                fmt="none",
                ecolor=line.get_color(),
                alpha=0.5,
                linewidth=1,
            )
        # alternate sides, so two curves through nearby points keep their labels apart
        offset, align = ((5, 4), "left") if i % 2 == 0 else ((-5, -10), "right")
        for (psnr, rank1), text in _labels(curve.points, xtol, ytol):
            ax.annotate(
                text,
                (psnr, rank1),
                xytext=offset,
                textcoords="offset points",
                fontsize=7,
                color=line.get_color(),
                ha=align,
            )
    bicubic = [
        (b.mean, 100.0 * r.mean)
        for c in found
        for p in c.points
        if (b := p.group.stat("bicubic", "psnr"))
        and (r := p.group.stat("bicubic", "rank1"))
        and math.isfinite(b.mean)
        and math.isfinite(r.mean)
    ]
    if bicubic:
        ax.plot(
            [sum(b for b, _ in bicubic) / len(bicubic)],
            [sum(r for _, r in bicubic) / len(bicubic)],
            "x",
            color="0.4",
            markersize=7,
            label="bicubic query",
        )
    ax.set_xlabel("SR PSNR (dB)")
    ax.set_ylabel("SR-query Rank-1 (%)")
    ax.set_title(title, fontsize=10)
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
