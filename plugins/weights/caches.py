"""Weights already in timm's and torchvision's own download caches.

A user with network access fills them once (``timm.create_model(name,
pretrained=True)``, or torchvision's ``weights=...``); from then on, on that
machine or on any cluster node that shares the cache folder, ``--reid-init
imagenet`` finds them without a network. Only files are looked at: nothing
here can download, and ``HF_HUB_OFFLINE`` is irrelevant because the Hub's
client is asked only what its cache holds.

Hash checks: a Hub cache stores each large file under its sha256 (the blob's
name), and torch.hub names a file with the first hex digits of its sha256
(``mobilenet_v2-b0353104.pth``); both are verified before loading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from harness import hookimpl
from harness.pretrained import hash_prefix_in_name, read_tensor_file

#: timm names whose architecture equals a torchvision model's, key for key or in order
TORCHVISION_TWINS = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "mobilenetv2_100": "mobilenet_v2",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def _torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _in_torch_hub(url: str | None) -> Path | None:
    if not url:
        return None
    path = _torch_hub_checkpoints() / url.rsplit("/", 1)[-1]
    return path if path.is_file() else None


class TimmCache:
    """timm's pretrained weights in the Hugging Face Hub cache or torch.hub's checkpoints folder."""

    tier = "cache"
    license = "see the model card of the timm weights"

    def __init__(self, hub_cache: str | Path | None = None):
        self.hub_cache = hub_cache  # None: the Hub's own default (HF_HUB_CACHE / HF_HOME)

    @property
    def install_hint(self) -> str:
        return (
            f"timm's caches (Hugging Face Hub cache and {_torch_hub_checkpoints()}); "
            "fill them once with network access: "
            "python -c \"import timm; timm.create_model('NAME', pretrained=True)\""
        )

    @staticmethod
    def _cfg(backbone: str):
        import timm

        if not timm.is_model(backbone):
            return None
        return timm.models.get_pretrained_cfg(backbone)

    def serves(self, backbone: str) -> bool:
        cfg = self._cfg(backbone)
        return cfg is not None and bool(
            getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None)
        )

    def find(self, backbone: str) -> Path | None:
        cfg = self._cfg(backbone)
        if cfg is None:
            return None
        repo = getattr(cfg, "hf_hub_id", None)
        if repo:
            from huggingface_hub import try_to_load_from_cache

            for name in HUB_FILES:
                hit = try_to_load_from_cache(repo, name, cache_dir=self.hub_cache)
                if isinstance(hit, str) and Path(hit).is_file():
                    return Path(hit)
        return _in_torch_hub(getattr(cfg, "url", None))

    def expected_sha256(self, backbone: str, path: Path) -> str | None:
        blob = Path(path).resolve().name  # the Hub cache: snapshots/<rev>/file -> blobs/<sha256>
        if _SHA256.match(blob):
            return blob
        return hash_prefix_in_name(path)

    def read(self, path: Path) -> Mapping[str, Tensor]:
        return read_tensor_file(path)


class TorchvisionCache:
    """torchvision's ImageNet weights in torch.hub's checkpoints folder, for the timm twins."""

    tier = "cache"
    license = "BSD-3-Clause (torchvision weights)"

    @property
    def install_hint(self) -> str:
        return (
            f"torchvision's cache {_torch_hub_checkpoints()}; fill it once with network access, "
            "e.g. torchvision.models.resnet50(weights='IMAGENET1K_V1')"
        )

    def serves(self, backbone: str) -> bool:
        return backbone in TORCHVISION_TWINS

    def find(self, backbone: str) -> Path | None:
        if backbone not in TORCHVISION_TWINS:
            return None
        from torchvision.models import get_model_weights

        for weights in get_model_weights(TORCHVISION_TWINS[backbone]):
            hit = _in_torch_hub(weights.url)
            if hit is not None:
                return hit
        return None

    def expected_sha256(self, backbone: str, path: Path) -> str | None:
        return hash_prefix_in_name(path)

    def read(self, path: Path) -> Mapping[str, Tensor]:
        return read_tensor_file(path)


@hookimpl
def harness_register_weights(registry) -> None:
    registry.add(
        "timm-cache",
        TimmCache(),
        "timm's own pretrained weights, where its caches already hold them",
    )
    registry.add(
        "torchvision-cache",
        TorchvisionCache(),
        "torchvision's ImageNet weights already in torch.hub's cache (resnet18-152, mobilenet_v2)",
    )
