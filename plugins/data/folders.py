"""Built-in plugin: real datasets read from their official folder layouts.

Nothing is downloaded or written; ``--data-root`` names the folder (or a
folder holding it). The parsing lives in :mod:`harness.data.folders`.
"""

from __future__ import annotations

import dataclasses

from harness import Option, RunConfig, hookimpl
from harness.components import ReidDataset
from harness.data import folders

#: The HR size each reader declares (H, W): the SR target that LR queries are made from.
#: Native where a dataset's images share one size (Market-1501 128x64, VIPeR 128x48);
#: where they vary (DukeMTMC-reID, CUHK03, CAVIAR), Market's 128x64, the size at which
#: the paper quotes its LR sizes (64x32, 43x21, 32x16).
HR_SIZES = {
    "market1501": (128, 64),
    "dukemtmc": (128, 64),
    "cuhk03": (128, 64),
    "cuhk03-partial": (128, 64),
    "viper": (128, 48),
    "caviar": (128, 64),
}


def _declared(name: str, dataset: ReidDataset) -> ReidDataset:
    return dataclasses.replace(dataset, hr_size=HR_SIZES[name])


def _market1501(root: str | None, config: RunConfig) -> ReidDataset:
    keep = bool(config.option("market_distractors", True))
    return _declared("market1501", folders.read_market1501(root, keep_distractors=keep))


def _dukemtmc(root: str | None, config: RunConfig) -> ReidDataset:
    keep = bool(config.option("duke_distractors", True))
    return _declared("dukemtmc", folders.read_dukemtmc(root, keep_distractors=keep))


def _cuhk03(root: str | None, config: RunConfig) -> ReidDataset:
    subset = str(config.option("cuhk03_subset", "labeled"))
    return _declared("cuhk03", folders.read_cuhk03_np(root, subset=subset))


def _cuhk03_partial(root: str | None, config: RunConfig) -> ReidDataset:
    return _declared("cuhk03-partial", folders.read_cuhk03_partial(root))


def _viper(root: str | None, config: RunConfig) -> ReidDataset:
    split = int(config.option("split", 0))
    return _declared("viper", folders.read_viper(root, split=split, seed=config.protocol.seed))


def _caviar(root: str | None, config: RunConfig) -> ReidDataset:
    split = int(config.option("split", 0))
    return _declared("caviar", folders.read_caviar(root, split=split, seed=config.protocol.seed))


_SPLIT = {"split": Option(0, "which seeded train/test id split (with --protocol seed)")}


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "market1501",
        _market1501,
        "Market-1501 (Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test})",
        options={"market_distractors": Option(True, "keep the id-0 distractors in the gallery")},
    )
    registry.add(
        "dukemtmc",
        _dukemtmc,
        "DukeMTMC-reID (DukeMTMC-reID/{bounding_box_train,query,bounding_box_test})",
        options={"duke_distractors": Option(True, "keep id-0 images in the gallery")},
    )
    registry.add(
        "cuhk03",
        _cuhk03,
        "CUHK03-NP new protocol, folder form (cuhk03-np/{labeled,detected}/...)",
        options={"cuhk03_subset": Option("labeled", "labeled or detected boxes")},
    )
    registry.add(
        "cuhk03-partial",
        _cuhk03_partial,
        "CUHK03 labeled, partial copy (train/, val/ of PPPP_KK.jpg): MLR-CUHK03 style",
    )
    registry.add(
        "viper",
        _viper,
        "VIPeR (VIPeR/cam_a, cam_b): 316/316 seeded id split, cam_a LR query",
        options=_SPLIT,
    )
    registry.add(
        "caviar",
        _caviar,
        "CAVIAR4REID (caviarReID/PPPPIII.jpg): genuinely LR camera-2 query",
        options=dict(_SPLIT),
    )
