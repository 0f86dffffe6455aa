"""The re-id head shared by the backbone plugins: normalise, pool, BNNeck, classify.

The BNNeck follows Luo et al. ("Bag of Tricks", 2019): the ID loss reads the
batch-normalised feature and the triplet loss the raw pooled one, because the
two losses pull the embedding towards differently shaped spaces.

Which feature leaves the module:

* training mode: ``(logits, f_c)`` with ``f_c`` the pooled feature *before*
  the neck (what a triplet or association loss wants);
* eval mode: the feature *after* the neck, which retrieves better with the
  cosine metric.

The neck's bias is a zero buffer rather than a frozen parameter, so that a
trainer which sets ``requires_grad`` on every parameter of a module (the
harness's ``set_trainable``) cannot unfreeze it; its state-dict key
(``bnneck.bias``) is the usual one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """ImageNet mean/std; non-persistent buffers, so weights files stay backbone-only."""

    def __init__(
        self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
    ):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def bn_neck(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d whose bias is a fixed zero buffer (see the module docstring)."""
    bn = nn.BatchNorm1d(dim)
    del bn._parameters["bias"]
    bn.register_buffer("bias", torch.zeros(dim))
    nn.init.ones_(bn.weight)
    return bn


def global_pool(feat: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> mean over space; ``[B, N, C]`` tokens -> mean over tokens."""
    if feat.ndim == 4:
        return feat.mean(dim=(2, 3))
    if feat.ndim == 3:
        return feat.mean(dim=1)
    if feat.ndim == 2:
        return feat
    raise ValueError(
        f"backbone returned a {feat.ndim}-d tensor {tuple(feat.shape)}; expected 2, 3 or 4 dims"
    )


class ReidHead(nn.Module):
    """backbone -> global average pool -> BNNeck -> bias-free classifier.

    ``backbone(x)`` must return a feature map ``[B, C, H, W]`` (or tokens
    ``[B, N, C]``, or pooled ``[B, C]``) with ``C == feature_dim``. ``mean`` and
    ``std`` are the input normalisation the backbone's pretrained weights expect
    (timm's ``pretrained_cfg``: 0.5 for TensorFlow ports such as EfficientNet-Lite),
    a property of the architecture, so a model and its weights files agree.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (got {num_classes})")
        self.normalize = Normalize(tuple(mean), tuple(std))
        self.backbone = backbone
        self.feature_dim = int(feature_dim)
        self.bnneck = bn_neck(self.feature_dim)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        f_c = global_pool(self.backbone(self.normalize(x)))
        f_bn = self.bnneck(f_c)
        if not self.training:
            return f_bn
        return self.classifier(f_bn), f_c


class Normalized(nn.Module):
    """Wraps a model that already has the (logits, f) / f contract; adds normalisation.

    The wrapped model lives under ``model.``; its own ``feature_dim`` is exposed.
    """

    def __init__(self, model: nn.Module, feature_dim: int):
        super().__init__()
        self.normalize = Normalize()
        self.model = model
        self.feature_dim = int(feature_dim)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return self.model(self.normalize(x))


@torch.no_grad()
def infer_channels(backbone: nn.Module, size: tuple[int, int]) -> int:
    """Channels of a backbone's output from one dry forward (robust across zoos)."""
    was = backbone.training
    backbone.eval()
    try:
        out = backbone(torch.zeros(1, 3, *size))
    finally:
        backbone.train(was)
    return int(out.shape[1] if out.ndim in (2, 4) else out.shape[-1])
