"""Re-id backbones from timm: three named ones, and any other timm name on demand.

timm is imported inside the factories, so listing plugins stays fast. Weights
are never downloaded (``pretrained=False`` always); ImageNet weights found on
this machine load with ``--reid-init imagenet`` (:mod:`harness.pretrained`), a
re-id model's own with ``--reid-weights``. Inputs are normalised as the
architecture's timm ``pretrained_cfg`` says, so converted weights see what they
were trained on. Every backbone is built headless
(``num_classes=0, global_pool=''``) and wrapped in the shared BNNeck head of
:mod:`crossres_plugins.reid.common`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from harness import RunConfig, hookimpl

from .common import ReidHead, infer_channels

NAMED = {
    "resnet18": "ResNet-18 (timm), BNNeck head; small and fast on CPU",
    "resnet34": "ResNet-34 (timm), BNNeck head",
    "resnet50": "ResNet-50 (timm), BNNeck head; the paper's re-id backbone",
}


def create_backbone(name: str, size: tuple[int, int]) -> nn.Module:
    """A headless timm model returning a feature map; never pretrained."""
    import timm

    backbone = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    if hasattr(backbone, "patch_embed"):  # ViT-like models fix their input size at build time
        try:
            backbone = timm.create_model(
                name, pretrained=False, num_classes=0, global_pool="", img_size=size
            )
        except TypeError:
            pass
    return backbone


def timm_factory(name: str) -> Callable[[RunConfig, int], nn.Module]:
    def build(config: RunConfig, num_classes: int) -> nn.Module:
        size = (config.height, config.width)
        backbone = create_backbone(name, size)
        cfg = getattr(backbone, "pretrained_cfg", None) or {}
        norm = {k: tuple(cfg[k]) for k in ("mean", "std") if len(cfg.get(k) or ()) == 3}
        return ReidHead(backbone, infer_channels(backbone, size), num_classes, **norm)

    build.__name__ = f"build_timm_{name}"
    return build


def resolve(name: str) -> Callable[[RunConfig, int], nn.Module] | None:
    """Any name timm knows (``timm.list_models()``); ``None`` for the rest."""
    import timm

    return timm_factory(name) if timm.is_model(name) else None


@hookimpl
def harness_register_reid(registry) -> None:
    for name, summary in NAMED.items():
        registry.add(name, timm_factory(name), summary)
    registry.add_resolver(resolve, "any timm model name (timm.list_models())", names=_timm_names)


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()
