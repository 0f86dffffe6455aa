"""Keys of the models a run may share with other runs: stage 0 and the G warm start.

Runs that agree on every setting a stage depends on get bit-identical results
from it (CPU, seeded), so ``harness bench`` trains each once and reuses it.
A key is a hash of exactly those settings; anything left out would let two
different recipes share a model, anything extra only costs a retrain.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from harness.config import PROTOCOL_VERSION, RunConfig
from harness.registry import Registry

#: RunConfig fields that stage 0 (re-id on HR) depends on, besides the re-id
#: and dataset plugins' own options.
STAGE0_FIELDS = (
    "reid", "data", "data_root", "height", "width", "hr_height", "hr_width", "batch_size", "reid_iters", "lr_reid",
    "weight_decay", "label_smooth", "triplet", "random_erasing", "res_aug", "color_jitter", "reid_weights",
    "partial_weights", "reid_init", "seed", "amp", "channels_last", "skip_bad_images",
)


def stage0_key(config: RunConfig, registry: Registry, device: torch.device,
               init_sha256: str | None = None) -> str:
    """A hash of everything stage 0 depends on: equal keys give bit-identical re-id models.

    ``init_sha256`` is the hash of the initial weights ``reid_init`` resolved to:
    ``imagenet`` names a search, and two machines may find different files.
    """
    return _recipe_key(config, registry, device, STAGE0_FIELDS,
                       (("reid", config.reid), ("dataset", config.data)),
                       ("ratios", "seed", "lr_cameras", "kernel", "antialias"),
                       salt={"init_sha256": init_sha256} if init_sha256 else None)


#: RunConfig fields that the pixel-loss warm start of G depends on, besides the
#: SR and dataset plugins' own options.
WARMUP_FIELDS = (
    "sr", "data", "data_root", "hr_height", "hr_width", "batch_size", "sr_warmup_iters", "lr_warmup",
    "grad_clip", "seed", "amp", "channels_last", "skip_bad_images", "sr_weights",
)


def _recipe_key(config: RunConfig, registry: Registry, device: torch.device, fields: tuple[str, ...],
                plugins: tuple[tuple[str, str], ...], protocol: tuple[str, ...],
                salt: dict | None = None) -> str:
    doc = config.to_dict()
    owned: set[str] = set()
    for kind, name in plugins:
        owned |= set(registry.lookup(kind, name).options)
    key = {
        "fields": {k: doc[k] for k in fields},
        "options": {k: v for k, v in doc["options"].items() if k in owned},
        "protocol": {k: doc["protocol"][k] for k in protocol},
        "device": device.type,
        "version": PROTOCOL_VERSION,
        "torch": torch.__version__,
        **(salt or {}),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def warmup_key(config: RunConfig, registry: Registry, device: torch.device) -> str:
    """A hash of everything the warm start depends on: equal keys give bit-identical generators."""
    # --sr-weights by content: the same checkpoint under another path shares the warm start.
    fields = tuple(f for f in WARMUP_FIELDS if f != "sr_weights")
    salt = None
    if config.sr_weights:
        from harness.pretrained import sha256_file

        salt = {"sr_weights_sha256": sha256_file(config.sr_weights)}
    return _recipe_key(config, registry, device, fields,
                       (("sr", config.sr), ("dataset", config.data)),
                       ("ratios", "kernel", "antialias", "lr_cameras", "seed"), salt=salt)


#: RunConfig fields that the critic warm-up depends on, besides the models it starts
#: from (stage 0's re-id model, the warm-started G: their keys) and the regulariser's and
#: discriminator's own options
CRITIC_FIELDS = ("reg", "disc", "batch_size", "seed", "amp", "channels_last", "lr", "grad_clip")


def critic_key(config: RunConfig, registry: Registry, device: torch.device, stage0: str, warmup: str) -> str:
    """A hash of everything the critic warm-up depends on.

    The options that only G's step reads (a regulariser's ``generator_only_options``:
    the loss weights) are left out, so the rows of a weight sweep share one warm-up.
    """
    reg = registry.lookup("regulariser", config.reg)
    generator_only = set(getattr(reg.factory, "generator_only_options", ()))
    doc = config.to_dict()
    options = {k: v for k, v in doc["options"].items() if k not in generator_only}
    scoped = config.replace(options=options)
    return _recipe_key(scoped, registry, device, CRITIC_FIELDS,
                       (("regulariser", config.reg), ("discriminator", config.disc)),
                       ("ratios", "kernel", "antialias"), salt={"stage0": stage0, "warmup": warmup})


def cache_files(config: RunConfig, registry: Registry, device: torch.device, cache_dir: Path,
                init_sha256: str | None = None) -> tuple[Path, Path, Path]:
    """The stage-0, warm-start and critic warm-up cache files of a run: one name for the
    trainer that writes them and for ``harness bench``, which lets runs sharing a file wait
    for its one writer."""
    cache_dir = Path(cache_dir)
    stage0 = stage0_key(config, registry, device, init_sha256)
    warmup = warmup_key(config, registry, device)
    critic = critic_key(config, registry, device, stage0, warmup)
    return (cache_dir / f"stage0-{config.reid}-{stage0}.pt",
            cache_dir / f"warmup-{config.sr}-{warmup}.pt",
            cache_dir / f"critic-{config.reg}-{critic}.pt")
