"""Figures of image grids drawn as one image: the ranked lists and the SR samples.

A matplotlib Axes per image costs tens of milliseconds to create, lay out and draw; a run's
ranked-list figure holds about two hundred of them, which made drawing it a third of a smoke
run's wall time and most of every run's report stage. Here the images are pasted into one
array (frames and gaps included) and drawn with a single ``imshow``; labels are text placed
beside it. The picture is the same, at one image pixel to at least one output pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from torch import Tensor

#: inches per image row: the output's dpi follows the image height so no pixel is lost
CELL_INCHES = 0.75
BACKGROUND = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Cell:
    """One grid position: an image (3 x H x W, float in [0, 1]) or nothing, and the colour
    of the frame drawn around it (``None``: no frame)."""

    image: Tensor | None
    frame: str | None = None


@dataclass(frozen=True)
class Layout:
    """Where the cells landed in the mosaic, in its pixels: column left edges, row top edges,
    and the cell size."""

    lefts: tuple[int, ...]
    tops: tuple[int, ...]
    height: int
    width: int


def paste_grid(
    rows: Sequence[Sequence[Cell]],
    height: int,
    width: int,
    column_widths: Sequence[float] | None = None,
    gap: int | None = None,
    frame: int | None = None,
) -> tuple[np.ndarray, Layout]:
    """An H x W x 3 float array holding every cell's image, framed where asked.

    ``column_widths`` are in cell widths (default 1 each; a narrow empty column makes room
    for labels); every image must be ``height`` x ``width``. The frame is drawn in the gap
    around the image, so an image is never covered.
    """
    n_cols = max((len(r) for r in rows), default=0)
    widths = list(column_widths) if column_widths is not None else [1.0] * n_cols
    if len(widths) < n_cols:
        raise ValueError(f"{n_cols} columns but {len(widths)} column widths")
    frame = max(1, round(height / 24)) if frame is None else frame
    gap = 2 * frame + max(1, round(width / 16)) if gap is None else gap
    col_px = [max(1, round(w * width)) for w in widths]
    lefts, x = [], gap
    for w in col_px:
        lefts.append(x)
        x += w + gap
    tops = [gap + r * (height + gap) for r in range(len(rows))]
    canvas = np.empty((gap + len(rows) * (height + gap), x, 3), dtype=np.float32)
    canvas[:] = BACKGROUND
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell.image is None:
                continue
            image = cell.image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            if image.shape[:2] != (height, width):
                raise ValueError(
                    f"cell ({r}, {c}) is {image.shape[0]}x{image.shape[1]}, "
                    f"the grid's cells are {height}x{width}"
                )
            top, left = tops[r], lefts[c]
            if cell.frame is not None:
                canvas[top - frame : top + height + frame, left - frame : left + width + frame] = (
                    to_rgb(cell.frame)
                )
            canvas[top : top + height, left : left + width] = image
    return canvas, Layout(tuple(lefts), tuple(tops), height, width)


def grid_figure(
    rows: Sequence[Sequence[Cell]],
    height: int,
    width: int,
    *,
    column_widths: Sequence[float] | None = None,
    column_titles: Sequence[tuple[int, str]] = (),
    row_labels: Sequence[tuple[int, int, str]] = (),
    label_inches: float = 0.6,
    title_inches: float = 0.0,
    fontsize: float = 7,
) -> Figure:
    """The grid as one figure: the mosaic drawn once, ``column_titles`` ((column, text))
    above it and ``row_labels`` ((row, column, text)) right-aligned left of that cell."""
    canvas, layout = paste_grid(rows, height, width, column_widths)
    scale = CELL_INCHES / height  # inches per mosaic pixel
    image_w, image_h = canvas.shape[1] * scale, canvas.shape[0] * scale
    fig_w, fig_h = image_w + label_inches + 0.05, image_h + title_inches + 0.05
    fig = Figure(figsize=(fig_w, fig_h), dpi=max(100, math.ceil(height / CELL_INCHES)))
    ax = fig.add_axes((label_inches / fig_w, 0.05 / fig_h, image_w / fig_w, image_h / fig_h))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for column, text in column_titles:
        x = layout.lefts[column] + layout.width / 2
        ax.text(x, layout.tops[0] - 2, text, ha="center", va="bottom", fontsize=fontsize)
    for row, column, text in row_labels:
        y = layout.tops[row] + layout.height / 2
        ax.text(layout.lefts[column] - 3, y, text, ha="right", va="center", fontsize=fontsize)
    return fig
