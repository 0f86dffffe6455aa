"""The one-image grid behind ranks.png and sr_samples.png: every image pasted whole, frames
around and never over it, labels where they were asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.mosaic import BACKGROUND, Cell, grid_figure, paste_grid


def _image(value: float, height: int = 8, width: int = 4) -> torch.Tensor:
    return torch.full((3, height, width), value)


def test_every_image_is_pasted_whole_at_its_cell() -> None:
    images = [[_image(0.1), _image(0.2)], [_image(0.3), _image(0.4)]]
    rows = [[Cell(im) for im in row] for row in images]
    canvas, layout = paste_grid(rows, 8, 4, gap=2, frame=1)
    for r, row in enumerate(images):
        for c, im in enumerate(row):
            top, left = layout.tops[r], layout.lefts[c]
            pasted = canvas[top : top + 8, left : left + 4]
            assert np.allclose(pasted, im.permute(1, 2, 0).numpy())
    assert canvas.shape == (2 + 2 * (8 + 2), 2 + 2 * (4 + 2), 3)


def test_a_frame_surrounds_the_image_and_an_empty_cell_stays_background() -> None:
    rows = [[Cell(_image(0.5), frame="#ff0000"), Cell(None, frame="#00ff00")]]
    canvas, layout = paste_grid(rows, 8, 4, gap=4, frame=1)
    top, left = layout.tops[0], layout.lefts[0]
    assert np.allclose(canvas[top - 1, left - 1], (1.0, 0.0, 0.0))  # the frame's corner
    assert np.allclose(canvas[top + 8, left + 4], (1.0, 0.0, 0.0))
    assert np.allclose(canvas[top : top + 8, left : left + 4], 0.5)  # the image is not covered
    empty = canvas[:, layout.lefts[1] - 1 :]
    assert np.allclose(empty, BACKGROUND)  # no image, so no frame either


def test_a_narrow_column_is_narrower_and_a_wrong_sized_image_is_named() -> None:
    rows = [[Cell(_image(0.5)), Cell(None), Cell(_image(0.5))]]
    _, layout = paste_grid(rows, 8, 4, column_widths=[1, 0.5, 1], gap=2, frame=1)
    assert layout.lefts[2] - layout.lefts[1] == 2 + 2  # half of 4 pixels, then the gap
    with pytest.raises(ValueError, match=r"cell \(0, 1\) is 6x4, the grid's cells are 8x4"):
        paste_grid([[Cell(_image(0.5)), Cell(_image(0.5, height=6))]], 8, 4)


def test_the_figure_is_one_image_with_its_titles_and_labels() -> None:
    rows = [[Cell(_image(0.2)), Cell(_image(0.7), frame="green")] for _ in range(3)]
    fig = grid_figure(rows, 8, 4, column_titles=[(0, "LR"), (1, "1")], row_labels=[(1, 0, "SR")])
    (ax,) = fig.axes
    assert len(ax.images) == 1
    assert {t.get_text() for t in ax.texts} == {"LR", "1", "SR"}
