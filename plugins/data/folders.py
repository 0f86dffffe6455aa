"""Built-in plugin: real datasets read from their official folder layouts.

Nothing is downloaded or written; ``--data-root`` names the folder (or a
folder holding it). The parsing lives in :mod:`harness.data.folders`.
"""

from __future__ import annotations

from harness import Option, RunConfig, hookimpl
from harness.components import ReidDataset
from harness.data import folders


def _market1501(root: str | None, config: RunConfig) -> ReidDataset:
    keep = bool(config.option("market_distractors", True))
    return folders.read_market1501(root, keep_distractors=keep)


def _dukemtmc(root: str | None, config: RunConfig) -> ReidDataset:
    return folders.read_dukemtmc(
        root, keep_distractors=bool(config.option("duke_distractors", True))
    )


def _cuhk03(root: str | None, config: RunConfig) -> ReidDataset:
    return folders.read_cuhk03_np(root, subset=str(config.option("cuhk03_subset", "labeled")))


def _cuhk03_partial(root: str | None, config: RunConfig) -> ReidDataset:
    return folders.read_cuhk03_partial(root)


def _viper(root: str | None, config: RunConfig) -> ReidDataset:
    split = int(config.option("split", 0))
    return folders.read_viper(root, split=split, seed=config.protocol.seed)


def _caviar(root: str | None, config: RunConfig) -> ReidDataset:
    split = int(config.option("split", 0))
    return folders.read_caviar(root, split=split, seed=config.protocol.seed)


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
