"""Re-id models from torchreid (OSNet and friends), built without downloading.

One meaning of ``f_c`` for every backbone: a torchreid model's convolutional
trunk (its ``featuremaps``) goes into the same head as a timm backbone
(:class:`crossres_plugins.reid.common.ReidHead`: global pool, BNNeck, classifier), so
``f_c`` is the pooled identity feature before the BNNeck here too, not
torchreid's classifier input (which for OSNet is the output of an extra FC
layer). torchreid's own pooling, FC and classifier are dropped. The few
torchreid models with no single feature map (HACNN, MuDeep-style multi-branch
nets: no ``featuremaps`` and no ``features`` trunk) keep torchreid's own head
and contract, wrapped only with ImageNet normalisation; ``harness list`` says
so. torchreid takes seconds to import and warns about its Cython ranking code,
so it is imported inside the factory with that warning muted.
Any other torchreid model is reachable as ``torchreid.<name>`` (e.g.
``torchreid.resnet50``, whose bare name belongs to timm).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import torch
from torch import Tensor, nn

from harness import RunConfig, hookimpl

from .common import Normalized, ReidHead, infer_channels

PREFIX = "torchreid."

NAMED = {
    "osnet_x1_0": "OSNet x1.0 (torchreid), 2.2M params, 512-d",
    "osnet_x0_75": "OSNet x0.75 (torchreid), 384-d",
    "osnet_x0_5": "OSNet x0.5 (torchreid), 256-d",
    "osnet_x0_25": "OSNet x0.25 (torchreid), 0.2M params, 128-d; fastest on CPU",
    "osnet_ibn_x1_0": "OSNet-IBN x1.0 (torchreid), instance norm for cross-domain",
    "osnet_ain_x1_0": "OSNet-AIN x1.0 (torchreid), searched instance norm",
    "mobilenetv2_x1_0": "MobileNetV2 x1.0 (torchreid), 1280-d",
    "mobilenetv2_x1_4": "MobileNetV2 x1.4 (torchreid), 1792-d",
    "resnet50_fc512": "ResNet-50 (torchreid; its 512-d FC is replaced by the shared BNNeck head)",
}


def import_torchreid_models() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid import models

    return models


class FeatureMaps(nn.Module):
    """A torchreid model reduced to its convolutional trunk: ``x -> [B, C, H, W]``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        for head in ("global_avgpool", "fc", "classifier"):
            if isinstance(getattr(model, head, None), nn.Module):
                setattr(model, head, None)  # unused: the shared head pools and classifies
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self.model, "featuremaps"):
            return self.model.featuremaps(x)
        return torch.relu(self.model.features(x))


def has_trunk(model: nn.Module) -> bool:
    return hasattr(model, "featuremaps") or isinstance(getattr(model, "features", None), nn.Module)


def torchreid_factory(name: str) -> Callable[[RunConfig, int], nn.Module]:
    def build(config: RunConfig, num_classes: int) -> nn.Module:
        models = import_torchreid_models()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = models.build_model(name, num_classes, loss="triplet", pretrained=False)
        size = (config.height, config.width)
        if has_trunk(model):
            backbone = FeatureMaps(model)
            return ReidHead(backbone, infer_channels(backbone, size), num_classes)
        dim = getattr(model, "feature_dim", None) or infer_channels(model, size)
        return Normalized(model, dim)

    build.__name__ = f"build_torchreid_{name}"
    return build


def resolve(name: str) -> Callable[[RunConfig, int], nn.Module] | None:
    """``torchreid.<model>`` for any name in torchreid's model factory."""
    if not name.startswith(PREFIX):
        return None
    inner = name[len(PREFIX) :]
    return torchreid_factory(inner) if inner in available_names() else None


def available_names() -> list[str]:
    """torchreid's model names (its factory table has no public accessor)."""
    models = import_torchreid_models()
    return sorted(getattr(models, "__model_factory", {}))


@hookimpl
def harness_register_reid(registry) -> None:
    for name, summary in NAMED.items():
        registry.add(name, torchreid_factory(name), summary)
    registry.add_resolver(
        resolve,
        "torchreid.<name> for any torchreid model (e.g. torchreid.resnet50)",
        names=lambda: [f"torchreid.{n}" for n in available_names()],
    )
