"""Re-id models from torchreid (OSNet and friends), built without downloading.

torchreid models already follow the contract (``(logits, f)`` in training
with ``loss='triplet'``, ``f`` in eval), so the wrapper only adds ImageNet
normalisation. torchreid takes seconds to import and warns about its Cython
ranking code, so it is imported inside the factory with that warning muted.
Any other torchreid model is reachable as ``torchreid.<name>`` (e.g.
``torchreid.resnet50``, whose bare name belongs to timm).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

from torch import nn

from harness import RunConfig, hookimpl
from plugins.reid.common import Normalized, infer_channels

PREFIX = "torchreid."

NAMED = {
    "osnet_x1_0": "OSNet x1.0 (torchreid), 2.2M params, 512-d",
    "osnet_x0_75": "OSNet x0.75 (torchreid), 512-d",
    "osnet_x0_5": "OSNet x0.5 (torchreid), 512-d",
    "osnet_x0_25": "OSNet x0.25 (torchreid), 0.2M params, 512-d; fastest on CPU",
    "osnet_ibn_x1_0": "OSNet-IBN x1.0 (torchreid), instance norm for cross-domain",
    "osnet_ain_x1_0": "OSNet-AIN x1.0 (torchreid), searched instance norm",
    "mobilenetv2_x1_0": "MobileNetV2 x1.0 (torchreid), 1280-d",
    "mobilenetv2_x1_4": "MobileNetV2 x1.4 (torchreid), 1792-d",
    "resnet50_fc512": "ResNet-50 with a 512-d FC embedding (torchreid)",
}


def import_torchreid_models() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid import models

    return models


def torchreid_factory(name: str) -> Callable[[RunConfig, int], nn.Module]:
    def build(config: RunConfig, num_classes: int) -> nn.Module:
        models = import_torchreid_models()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = models.build_model(name, num_classes, loss="triplet", pretrained=False)
        dim = getattr(model, "feature_dim", None) or infer_channels(
            model, (config.height, config.width)
        )
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
        resolve, "torchreid.<name> for any torchreid model (e.g. torchreid.resnet50)"
    )
