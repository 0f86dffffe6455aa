"""Keys of the models a run may share with other runs: stage 0, the G warm start,
the critic warm-up.

Runs that agree on every setting a stage depends on get bit-identical results
from it (CPU, seeded), so ``harness bench`` trains each once and reuses it.
A key is a hash of exactly those settings; anything left out would let two
different recipes share a model, anything extra only costs a retrain. Which
settings a stage depends on is read from their declaration: the sections the
stage reads (:data:`harness.settings.CACHED_STAGES`), not a hand list.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import torch

from harness.config import COMPONENT_FIELDS, PROTOCOL_VERSION, SETTINGS, RunConfig
from harness.pretrained import sha256_file
from harness.registry import Registry
from harness.settings import CACHED_STAGES, CRITIC, STAGE0, WARMUP, CachedStage


def stage_settings(stage: CachedStage) -> tuple[str, ...]:
    """The settings a stage's key hashes: the fields of the components it builds, every
    setting of its sections that trains, and what it reads besides (``CachedStage``).

    Derived, not listed: a setting added to a section enters the key of every stage that
    reads the section, so no cached model can be shared by recipes that differ in it.
    """
    names = [f for kind, f in COMPONENT_FIELDS if kind in stage.components]
    names += [s.name for s in SETTINGS if s.section in stage.sections and s.trains]
    return tuple(dict.fromkeys([*names, *stage.reads]))


def depends_on(stage: CachedStage) -> tuple[str, ...]:
    """Every setting a stage's result depends on: its own and, through their keys, those
    of the stages it starts from."""
    by_name = {s.name: s for s in CACHED_STAGES}
    names = [name for earlier in stage.after for name in depends_on(by_name[earlier])]
    return tuple(dict.fromkeys([*names, *stage_settings(stage)]))


def stage0_key(
    config: RunConfig, registry: Registry, device: torch.device, init_sha256: str | None = None
) -> str:
    """A hash of everything stage 0 depends on: equal keys give bit-identical re-id models.

    ``init_sha256`` is the hash of the initial weights ``reid_init`` resolved to:
    ``imagenet`` names a search, and two machines may find different files.
    """
    salt = {"init_sha256": init_sha256} if init_sha256 else {}
    if config.reid_weights:  # by content: a replaced file must miss the cache, not reuse it
        salt["reid_weights_sha256"] = sha256_file(config.reid_weights)
    return _recipe_key(
        config, registry, device, STAGE0, salt=salt or None, by_content=("reid_weights",)
    )


def code_fingerprint(factory: object, dist: str) -> str:
    """The version of a component's code: its distribution's version and a hash of the source
    file that defines its factory, so an upgraded or edited plugin misses every cache its
    old code filled (an editable install keeps its version while its files change)."""
    try:
        version = metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError):
        version = "?"
    module = sys.modules.get(getattr(factory, "__module__", "") or "")
    source = getattr(module, "__file__", None)
    digest = sha256_file(source)[:16] if source and Path(source).is_file() else "?"
    return f"{dist} {version} {digest}"


def _recipe_key(
    config: RunConfig,
    registry: Registry,
    device: torch.device,
    stage: CachedStage,
    salt: dict | None = None,
    by_content: tuple[str, ...] = (),
) -> str:
    """The hash of a stage's settings, its components' options, the device type and versions.

    ``by_content``: settings naming a file the caller hashes into ``salt`` instead.
    """
    doc = config.to_dict()
    names = [n for n in stage_settings(stage) if n not in by_content]
    owned: set[str] = set()
    code: dict[str, str] = {}
    for kind, name in COMPONENT_FIELDS:
        if kind in stage.components:
            entry = registry.lookup(kind, getattr(config, name))
            owned |= set(entry.options)
            dist = registry.plugins.get(entry.plugin, "local")
            code[kind] = code_fingerprint(entry.factory, dist)
    key = {
        "fields": {k: doc[k] for k in names if not k.startswith("protocol.")},
        "options": {k: v for k, v in doc["options"].items() if k in owned},
        "protocol": {
            k.split(".", 1)[1]: doc["protocol"][k.split(".", 1)[1]]
            for k in names
            if k.startswith("protocol.")
        },
        "device": device.type,
        "version": PROTOCOL_VERSION,
        "torch": torch.__version__,
        "code": code,
        **(salt or {}),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def warmup_key(config: RunConfig, registry: Registry, device: torch.device) -> str:
    """A hash of everything the warm start depends on: equal keys give bit-identical generators."""
    # --sr-weights by content: the same checkpoint under another path shares the warm start.
    salt = None
    if config.sr_weights:
        salt = {"sr_weights_sha256": sha256_file(config.sr_weights)}
    return _recipe_key(config, registry, device, WARMUP, salt=salt, by_content=("sr_weights",))


def critic_key(
    config: RunConfig, registry: Registry, device: torch.device, stage0: str, warmup: str
) -> str:
    """A hash of everything the critic warm-up depends on.

    It starts from stage 0's re-id model and the warm G, so their keys stand for every
    setting those depend on. The options that only G's step reads (a regulariser's
    ``generator_only_options``: the loss weights) are left out, so the rows of a weight
    sweep share one warm-up.
    """
    reg = registry.lookup("regulariser", config.reg)
    generator_only = set(getattr(reg.factory, "generator_only_options", ()))
    doc = config.to_dict()
    options = {k: v for k, v in doc["options"].items() if k not in generator_only}
    scoped = config.replace(options=options)
    return _recipe_key(scoped, registry, device, CRITIC, salt={"stage0": stage0, "warmup": warmup})


def cache_files(
    config: RunConfig,
    registry: Registry,
    device: torch.device,
    cache_dir: Path,
    init_sha256: str | None = None,
) -> tuple[Path, Path, Path]:
    """The stage-0, warm-start and critic warm-up cache files of a run: one name for the
    trainer that writes them and for ``harness bench``, which lets runs sharing a file wait
    for its one writer."""
    cache_dir = Path(cache_dir)
    stage0 = stage0_key(config, registry, device, init_sha256)
    warmup = warmup_key(config, registry, device)
    critic = critic_key(config, registry, device, stage0, warmup)
    return (
        cache_dir / f"stage0-{config.reid}-{stage0}.pt",
        cache_dir / f"warmup-{config.sr}-{warmup}.pt",
        cache_dir / f"critic-{config.reg}-{critic}.pt",
    )
