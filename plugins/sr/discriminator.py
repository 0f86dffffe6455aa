"""SRGAN-style discriminator that also exposes its penultimate feature f_d.

Layout after Ledig et al.: conv-LeakyReLU, then seven conv-BN-LeakyReLU
stages alternating stride 2 and doubling channels every other stage. The
original flattens a fixed 6x6 map; adaptive average pooling instead lets one
module judge every image size a run may use (64x32 on CPU, 256x128 on GPU).
``f_d`` is the activation of the dense layer before the logit, the feature
that the INTACT bridge and the association critics read.
"""

from __future__ import annotations

from torch import Tensor, nn

from harness import Option, RunConfig, hookimpl, read_options


def _stage(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    ]


class SRGANDiscriminator(nn.Module):
    """``forward(x) -> (logit [B], f_d [B, feat_dim])``."""

    def __init__(self, channels: int = 32, feat_dim: int = 256):
        super().__init__()
        if channels < 1 or feat_dim < 1:
            raise ValueError(
                f"disc_channels and disc_feat_dim must be >= 1 (got {channels}, {feat_dim})"
            )
        c = channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        layers += _stage(c, c, 2)
        widths = [(c, 2 * c), (2 * c, 4 * c), (4 * c, 8 * c)]
        for c_in, c_out in widths:
            layers += _stage(c_in, c_out, 1) + _stage(c_out, c_out, 2)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dense = nn.Sequential(nn.Linear(8 * c, feat_dim), nn.LeakyReLU(0.2))
        self.logit = nn.Linear(feat_dim, 1)
        self.feature_dim = feat_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.pool(self.features(x)).flatten(1)
        f_d = self.dense(h)
        return self.logit(f_d).squeeze(1), f_d


DISC_OPTIONS = {
    "disc_channels": Option(32, "channels of the first conv (doubled every other stage)",
                            presets={"smoke": 8, "cpu": 16, "paper": 64}, min=1),
    "disc_feat_dim": Option(256, "dim of the penultimate feature f_d",
                            presets={"smoke": 32, "cpu": 128, "paper": 256}, min=1),
}


def build_srgan_discriminator(config: RunConfig) -> nn.Module:
    opts = read_options(config, DISC_OPTIONS)
    return SRGANDiscriminator(channels=opts["disc_channels"], feat_dim=opts["disc_feat_dim"])


@hookimpl
def harness_register_discriminators(registry) -> None:
    registry.add(
        "srgan",
        build_srgan_discriminator,
        "SRGAN conv discriminator, adaptive pooling (any size); f_d = dense feature",
        options=DISC_OPTIONS,
    )
