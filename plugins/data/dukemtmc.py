"""DukeMTMC-reID (Zheng et al., ICCV 2017) from its official folder layout."""

from __future__ import annotations

from pathlib import Path

from harness import Option, ReidDataset, RunConfig, hookimpl
from harness.data.layout import read_market_style

#: Duke's boxes vary in size; the HR size is Market's 128x64, where the paper quotes LR sizes.
HR_SIZE = (128, 64)


def read_dukemtmc(root: str | Path | None, *, keep_distractors: bool = True) -> ReidDataset:
    """DukeMTMC-reID: root is the data folder or a folder holding it."""
    return read_market_style(
        root,
        "dukemtmc",
        ("", "DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmcreid/DukeMTMC-reID"),
        "0005_c2_f0046985.jpg",
        keep_distractors,
        hr_size=HR_SIZE,
    )


def _factory(root: str | None, config: RunConfig) -> ReidDataset:
    return read_dukemtmc(root, keep_distractors=bool(config.option("duke_distractors", True)))


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "dukemtmc",
        _factory,
        "DukeMTMC-reID (DukeMTMC-reID/{bounding_box_train,query,bounding_box_test})",
        options={"duke_distractors": Option(True, "keep id-0 images in the gallery")},
    )
