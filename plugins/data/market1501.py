"""Market-1501 (Zheng et al., ICCV 2015) from its official folder layout.

The model for a dataset plugin: the reader and its registration in one file,
built on the core's layout toolkit (:mod:`harness.data.layout`), exactly as a
third-party dataset package would be.
"""

from __future__ import annotations

from pathlib import Path

from harness import Option, ReidDataset, RunConfig, hookimpl
from harness.data.layout import read_market_style

#: Every Market-1501 image is 128x64: the SR target the MLR protocol starts from.
HR_SIZE = (128, 64)


def read_market1501(root: str | Path | None, *, keep_distractors: bool = True) -> ReidDataset:
    """Market-1501: root is the data folder or a folder holding it.

    Junk images (id -1) are dropped as in torchreid; distractors (id 0) stay in
    the gallery, as in the official evaluation and torchreid, unless
    ``keep_distractors`` is off. Every query camera may be made LR.
    """
    return read_market_style(
        root,
        "market1501",
        ("", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15", "market1501"),
        "0002_c1s1_000451_01.jpg",
        keep_distractors,
        hr_size=HR_SIZE,
    )


def _factory(root: str | None, config: RunConfig) -> ReidDataset:
    return read_market1501(root, keep_distractors=bool(config.option("market_distractors", True)))


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "market1501",
        _factory,
        "Market-1501 (Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test})",
        options={"market_distractors": Option(True, "keep the id-0 distractors in the gallery")},
    )
