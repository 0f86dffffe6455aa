"""The entry point: registers the package's three components with the harness.

Only this module is named in ``pyproject.toml``; the models live in their own
modules so that importing the plugin at start-up stays cheap.
"""

from __future__ import annotations

from harness import Option, RunConfig, hookimpl

from harness_rrdb.perceptual import PerceptualIdRegulariser
from harness_rrdb.rrdb import RRDBNet
from harness_rrdb.tiny_cnn import TinyCNN


def build_rrdb(config: RunConfig) -> RRDBNet:
    return RRDBNet(
        blocks=int(config.option("rrdb_blocks", 2)),
        channels=int(config.option("rrdb_channels", 32)),
        growth=int(config.option("rrdb_growth", 16)),
    )


def build_tiny_cnn(config: RunConfig, num_classes: int) -> TinyCNN:
    return TinyCNN(num_classes, width=int(config.option("tiny_cnn_width", 16)))


@hookimpl
def harness_register_sr(registry) -> None:
    registry.add(
        "rrdb",
        build_rrdb,
        "ESRGAN-style RRDB generator (no BN), residual on bicubic; pixel shuffle x2/x3/x4",
        options={
            "rrdb_blocks": Option(2, "residual-in-residual dense blocks"),
            "rrdb_channels": Option(32, "feature channels"),
            "rrdb_growth": Option(16, "channels each dense layer adds"),
        },
    )


@hookimpl
def harness_register_reid(registry) -> None:
    registry.add(
        "tiny-cnn",
        build_tiny_cnn,
        "a 3-stage CNN (ImageNet normalisation), for quick experiments",
        options={"tiny_cnn_width": Option(16, "channels of the first stage (x2, x4 after)")},
    )


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "perceptual-id",
        PerceptualIdRegulariser,
        "G only: MSE + lambda_f * re-id feature matching (re-id frozen) + lambda_c * ID",
        options=PerceptualIdRegulariser.options,
    )
