"""Building the run's modules from registry names, with a dry-run contract check.

A plugin that returns the wrong shape or dtype is caught here, before any
training, with an error that names the plugin and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from harness.components import BuildContext, Entry, Regulariser
from harness.config import RunConfig
from harness.contracts import dry_run_discriminator, dry_run_reid, dry_run_sr
from harness.errors import PluginError
from harness.pretrained import FoundWeights, load_init
from harness.registry import Registry
from harness.weights import load_reid_weights


def _call(entry: Entry, *args: Any) -> Any:
    try:
        return entry.factory(*args)
    except PluginError:
        raise
    except Exception as exc:
        # the first line only: torch's C++ errors append a whole stack of frames
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(
            f"{entry.kind} {entry.name!r} (plugin {entry.plugin!r}) failed to build: "
            f"{type(exc).__name__}: {first}"
        ) from exc


def resize_to_input(module: nn.Module, size: tuple[int, int]) -> nn.Module:
    """Make ``module`` resize every input to ``size`` (H, W) first, keeping its state_dict keys.

    Why a forward pre-hook and not a wrapper module: the re-id model's weights
    files (``--reid-weights``, ``harness pretrain``) keep the backbone's own keys,
    and every caller (the evaluator, the trainer, a third-party regulariser's
    ``ctx["reid"](x)``) gets the same resize without knowing about it. Bilinear,
    antialiased when shrinking, differentiable, so gradients reach the SR image.
    """
    size = (int(size[0]), int(size[1]))

    def hook(_module: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        if tuple(x.shape[-2:]) == size:
            return None
        shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
        resized = torch.nn.functional.interpolate(
            x, size=size, mode="bilinear", align_corners=False, antialias=shrink
        )
        return (resized, *args[1:])

    module.register_forward_pre_hook(hook)
    module.input_size = size  # type: ignore[assignment]
    return module


def build_models(
    config: RunConfig,
    registry: Registry,
    num_classes: int,
    init: FoundWeights | None = None,
    echo: Callable[[str], None] | None = None,
) -> tuple[dict[str, nn.Module], Regulariser]:
    """G, reid and the regulariser's modules, all contract-checked on CPU.

    G and D work at the HR size; the re-id model is built for the re-id size and
    resizes whatever it is given (see :func:`resize_to_input`). ``init`` (from
    :func:`harness.pretrained.resolve_init`) loads the re-id backbone's initial
    weights; ``--reid-weights`` then loads on top of it.
    """
    size = config.hr_size
    sr_entry = registry.lookup("sr", config.sr)
    reid_entry = registry.lookup("reid", config.reid)
    reg_entry = registry.lookup("regulariser", config.reg)

    # Each module family gets its own seed, so the re-id model's initial weights do
    # not depend on which SR model or regulariser was built before it (this is
    # what lets runs that differ only in sr/reg share one stage-0 result).
    torch.manual_seed(config.seed * 1000 + 1)
    generator = _call(sr_entry, config)
    if config.sr_weights and not getattr(generator, "loaded_weights", None):
        raise PluginError(
            f"--sr-weights: sr {config.sr!r} (plugin {sr_entry.plugin!r}) loads no "
            "pretrained weights; name an SR-zoo architecture (harness list)"
        )
    for ratio in sorted(set(config.protocol.ratios)):
        dry_run_sr(sr_entry, generator, size, ratio)
    torch.manual_seed(config.seed * 1000 + 2)
    reid = _call(reid_entry, config, num_classes)
    if init is not None:
        record = load_init(reid, init, registry, partial=config.partial_weights)
        if echo is not None and record["missing"]:
            echo(
                f"initial weights {init.path}: {record['tensors']} backbone tensors loaded, "
                f"{record['missing']} missing (--partial-weights)"
            )
    if config.reid_weights:
        counts = load_reid_weights(reid, config.reid_weights, partial=config.partial_weights)
        if echo is not None:
            echo(
                f"re-id weights {config.reid_weights}: {counts['loaded']} tensors loaded, "
                f"{counts['missing']} missing, {counts['unexpected']} unexpected, "
                f"{counts['skipped']} classifier tensors skipped (another number of identities)"
            )
    resize_to_input(reid, config.reid_size)
    reid_dim = dry_run_reid(reid_entry, reid, num_classes, size)

    def make_discriminator() -> nn.Module:
        entry = registry.lookup("discriminator", config.disc)
        disc = _call(entry, config)
        dry_run_discriminator(entry, disc, size)
        return disc

    torch.manual_seed(config.seed * 1000 + 3)
    regulariser: Regulariser = _call(reg_entry, config)
    ctx = BuildContext(
        config=config, reid_dim=reid_dim, make_discriminator=make_discriminator, image_size=size
    )
    extra = regulariser.build(ctx)
    clash = {"G", "reid"} & set(extra)
    if clash:
        raise PluginError(
            f"regulariser {config.reg!r} returned modules named {sorted(clash)}, which are reserved"
        )
    models: dict[str, nn.Module] = {"G": generator, "reid": reid, **extra}
    return models, regulariser


def count_parameters(models: dict[str, nn.Module]) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}


Hook = Callable[[str, dict[str, float]], None]
