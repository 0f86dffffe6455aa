"""SRGAN-style discriminator that also exposes its penultimate feature f_d.

Layout after Ledig et al.: conv-LeakyReLU, then seven conv-norm-LeakyReLU
stages alternating stride 2 and doubling channels every other stage. The
original flattens a fixed 6x6 map; adaptive average pooling instead lets one
module judge every image size a run may use (64x32 on CPU, 256x128 on GPU).
``f_d`` is the activation of the dense layer before the logit, the feature
that the INTACT bridge and the association critics read.

**Normalisation: spectral, not batch (issue "A critic that criticises").** The
critics read ``f_d`` from a *frozen* D, i.e. with its normalisation layers in
inference mode. With BatchNorm that means running statistics that lag far
behind D's weights: at the first stage-1 iteration ``f_d`` was nearly the
same vector for every image (batch variance below 5e-8), so the association
critic had nothing to learn and ``L_dis`` and the GAN term reached G through
a flat feature. Spectral normalisation (Miyato et al., ICLR 2018, used by most
GAN discriminators since) bounds each layer's Lipschitz constant without any
batch statistics, so ``f_d`` carries the image from the first read, in the D
step and in a frozen read alike. Its power-iteration vectors are state: the
D step updates them, a frozen D reads them as they are (see
:data:`harness.schedule.STATEFUL_LAYERS`). ``disc_norm=batch`` keeps the
SRGAN original for comparison with earlier results.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from harness import Option, RunConfig, hookimpl, read_options

NORMS = ("spectral", "batch")


def _layer(module: nn.Module, norm: str) -> nn.Module:
    return spectral_norm(module) if norm == "spectral" else module


def _stage(c_in: int, c_out: int, stride: int, norm: str) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm != "batch")
    layers = [_layer(conv, norm)]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(c_out))
    return layers + [nn.LeakyReLU(0.2, inplace=True)]


class SRGANDiscriminator(nn.Module):
    """``forward(x) -> (logit [B], f_d [B, feat_dim])``."""

    def __init__(self, channels: int = 32, feat_dim: int = 256, norm: str = "spectral"):
        super().__init__()
        if channels < 1 or feat_dim < 1:
            raise ValueError(
                f"disc_channels and disc_feat_dim must be >= 1 (got {channels}, {feat_dim})"
            )
        if norm not in NORMS:
            raise ValueError(f"disc_norm must be one of {', '.join(NORMS)} (got {norm!r})")
        c = channels
        layers: list[nn.Module] = [
            _layer(nn.Conv2d(3, c, 3, padding=1), norm),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        layers += _stage(c, c, 2, norm)
        widths = [(c, 2 * c), (2 * c, 4 * c), (4 * c, 8 * c)]
        for c_in, c_out in widths:
            layers += _stage(c_in, c_out, 1, norm) + _stage(c_out, c_out, 2, norm)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dense = nn.Sequential(_layer(nn.Linear(8 * c, feat_dim), norm), nn.LeakyReLU(0.2))
        self.logit = _layer(nn.Linear(feat_dim, 1), norm)
        self.feature_dim = feat_dim
        self.norm = norm

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.pool(self.features(x)).flatten(1)
        f_d = self.dense(h)
        return self.logit(f_d).squeeze(1), f_d


DISC_OPTIONS = {
    "disc_channels": Option(
        32,
        "channels of the first conv (doubled every other stage)",
        presets={"smoke": 8, "cpu": 16, "paper": 64},
        min=1,
    ),
    "disc_feat_dim": Option(
        256,
        "dim of the penultimate feature f_d",
        presets={"smoke": 32, "cpu": 128, "paper": 256},
        min=1,
    ),
    "disc_norm": Option(
        "spectral",
        "normalisation of D's layers: spectral (f_d varies with the image in "
        "every read) or batch (the SRGAN original, the default before spectral)",
        choices=NORMS,
    ),
}


def build_srgan_discriminator(config: RunConfig) -> nn.Module:
    opts = read_options(config, DISC_OPTIONS)
    return SRGANDiscriminator(
        channels=opts["disc_channels"], feat_dim=opts["disc_feat_dim"], norm=opts["disc_norm"]
    )


@hookimpl
def harness_register_discriminators(registry) -> None:
    registry.add(
        "srgan",
        build_srgan_discriminator,
        "SRGAN conv discriminator, spectral-normalised, adaptive pooling (any size); "
        "f_d = dense feature",
        options=DISC_OPTIONS,
    )
