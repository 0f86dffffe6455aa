"""Building the run's modules from registry names, with a dry-run contract check.

A plugin that returns the wrong shape or dtype is caught here, before any
training, with an error that names the plugin and what was expected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from harness.components import BuildContext, Entry, Regulariser
from harness.config import RunConfig
from harness.errors import PluginError
from harness.registry import Registry


def _call(entry: Entry, *args: Any) -> Any:
    try:
        return entry.factory(*args)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"{entry.kind} {entry.name!r} (plugin {entry.plugin!r}) failed to build: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def contract_error(entry: Entry, expected: str, got: str) -> PluginError:
    return PluginError(f"{entry.kind} {entry.name!r} (plugin {entry.plugin!r}) broke its contract: expected {expected}, got {got}")


def describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)} {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of ({', '.join(describe(v) for v in value)})"
    return type(value).__name__


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Run dry forwards without leaving a trace: buffers (BatchNorm statistics) are restored.

    A train-mode contract check on random images would otherwise move the running
    statistics of a freshly loaded re-id model by 10% towards noise.
    """
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    was = model.training
    try:
        yield
    finally:
        model.train(was)
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in saved:
                    b.copy_(saved[name])


def check_reid(entry: Entry, model: nn.Module, num_classes: int, size: tuple[int, int]) -> int:
    """Dry forward in train and eval mode; returns the feature dim."""
    x = torch.rand(2, 3, *size)
    was = model.training
    try:
        with torch.no_grad():
            model.train()
            out = model(x)
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise contract_error(entry, "(logits, f_c) in train mode", describe(out))
            logits, feat = out
            if logits.shape != (2, num_classes) or feat.ndim != 2 or feat.shape[0] != 2:
                raise contract_error(entry, f"logits (2, {num_classes}) and f_c (2, D) in train mode", describe(out))
            model.eval()
            f = model(x)
            if not isinstance(f, Tensor) or f.ndim != 2 or f.shape[0] != 2 or not f.is_floating_point():
                raise contract_error(entry, "a float (2, D) feature tensor in eval mode", describe(f))
            if not torch.isfinite(f).all():
                raise contract_error(entry, "finite features", "NaN or inf")
    finally:
        model.train(was)
    return int(f.shape[1])


def _untouched_check(check: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(entry: Entry, model: nn.Module, *args: Any) -> Any:
        with untouched(model):
            return check(entry, model, *args)

    wrapped.__doc__, wrapped.__name__ = check.__doc__, check.__name__
    return wrapped


def check_sr(entry: Entry, model: nn.Module, size: tuple[int, int], ratio: float) -> None:
    from harness.data.mlr import lr_size

    x = torch.rand(2, 3, *lr_size(size, ratio))
    with torch.no_grad():
        y = model(x, size)
    if not isinstance(y, Tensor) or tuple(y.shape) != (2, 3, *size) or not y.is_floating_point():
        raise contract_error(entry, f"forward(x_lr, out_size) -> float tensor (2, 3, {size[0]}, {size[1]})", describe(y))


def check_discriminator(entry: Entry, model: nn.Module, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise contract_error(entry, "(logit, f_d)", describe(out))
    logit, feat = out
    if logit.reshape(-1).shape[0] != 2 or feat.ndim != 2 or feat.shape[0] != 2:
        raise contract_error(entry, "logit (2,) and f_d (2, D)", describe(out))


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


check_reid = _untouched_check(check_reid)
check_sr = _untouched_check(check_sr)
check_discriminator = _untouched_check(check_discriminator)


def build_models(
    config: RunConfig, registry: Registry, num_classes: int
) -> tuple[dict[str, nn.Module], Regulariser]:
    """G, reid and the regulariser's modules, all contract-checked on CPU.

    G and D work at the HR size; the re-id model is built for the re-id size and
    resizes whatever it is given (see :func:`resize_to_input`).
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
    for ratio in sorted(set(config.protocol.ratios)):
        check_sr(sr_entry, generator, size, ratio)
    torch.manual_seed(config.seed * 1000 + 2)
    reid = _call(reid_entry, config, num_classes)
    if config.reid_weights:
        from harness.weights import load_reid_weights

        load_reid_weights(reid, config.reid_weights)
    resize_to_input(reid, config.reid_size)
    reid_dim = check_reid(reid_entry, reid, num_classes, size)

    def make_discriminator() -> nn.Module:
        entry = registry.lookup("discriminator", config.disc)
        disc = _call(entry, config)
        check_discriminator(entry, disc, size)
        return disc

    torch.manual_seed(config.seed * 1000 + 3)
    regulariser: Regulariser = _call(reg_entry, config)
    ctx = BuildContext(config=config, reid_dim=reid_dim, make_discriminator=make_discriminator, image_size=size)
    extra = regulariser.build(ctx)
    clash = {"G", "reid"} & set(extra)
    if clash:
        raise PluginError(f"regulariser {config.reg!r} returned modules named {sorted(clash)}, which are reserved")
    models: dict[str, nn.Module] = {"G": generator, "reid": reid, **extra}
    return models, regulariser


def count_parameters(models: dict[str, nn.Module]) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}


Hook = Callable[[str, dict[str, float]], None]
