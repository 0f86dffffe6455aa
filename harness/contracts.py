"""The contract every component must keep, as checks that run in seconds on tiny inputs.

One module for three users: the trainer's dry run (``build_models`` checks each
built module's shapes before any data is read: the ``dry_run_*`` functions),
``harness check-plugin`` and the pytest kit for plugin authors
(:mod:`harness.testing`, which re-exports the ``check_*`` functions). No
pytest import here, so ``harness check-plugin`` works without the test extra.
A broken component raises :class:`~harness.PluginError` naming it and what was
expected: the error a real run would give, only in seconds, on tiny inputs.

Each check returns the descriptions of what it verified, one line each
(``harness check-plugin`` prints them). The checks never touch a GPU and
leave the caller's random state as they found it.

"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.components import BuildContext, Entry, Record, ReidDataset
from harness.config import RunConfig
from harness.context import StepContext
from harness.data.loading import load_images
from harness.data.mlr import build_mlr, lr_size
from harness.errors import DatasetError, PluginError, UnknownNameError
from harness.freezing import buffers_restored
from harness.kinds import get_kind, kind_names
from harness.options import Option
from harness.pretrained import FoundWeights, load_init, sha256_file
from harness.registrars import WeightsEntry, fixed_sr_model
from harness.registry import Registry
from harness.resolve import resolve_config
from harness.schedule import StepRunner, default_learning_rates
from harness.standins import (
    BATCH,
    TINY_CLASSES,
    TINY_REID_DIM,
    TinyDiscriminator,
    TinyGenerator,
    TinyReid,
    make_tiny_dataset,
    random_images,
    tiny_batch,
)
from harness.steps import Step

__all__ = [
    "ANY_FACTOR",
    "ContractWarning",
    "check_component",
    "check_dataset",
    "check_discriminator",
    "check_regulariser",
    "check_reid_model",
    "check_sr_model",
    "component_config",
    "find_components",
    "make_tiny_dataset",
    "tiny_batch",
    "dry_run_discriminator",
    "dry_run_reid",
    "dry_run_sr",
]

# ---------------------------------------------------------------------------
# Dry runs of built modules (the trainer's check before any data is read)
# ---------------------------------------------------------------------------


def contract_error(entry: Entry, expected: str, got: str) -> PluginError:
    return PluginError(
        f"{entry.kind} {entry.name!r} (plugin {entry.plugin!r}) broke its contract: "
        f"expected {expected}, got {got}"
    )


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
    was = model.training
    try:
        with buffers_restored([model]):
            yield
    finally:
        model.train(was)


def _untouched_check(check: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(entry: Entry, model: nn.Module, *args: Any) -> Any:
        with untouched(model):
            return check(entry, model, *args)

    wrapped.__doc__, wrapped.__name__ = check.__doc__, check.__name__
    return wrapped


@_untouched_check
def dry_run_reid(entry: Entry, model: nn.Module, num_classes: int, size: tuple[int, int]) -> int:
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
                raise contract_error(
                    entry, f"logits (2, {num_classes}) and f_c (2, D) in train mode", describe(out)
                )
            model.eval()
            f = model(x)
            if (
                not isinstance(f, Tensor)
                or f.ndim != 2
                or f.shape[0] != 2
                or not f.is_floating_point()
            ):
                raise contract_error(
                    entry, "a float (2, D) feature tensor in eval mode", describe(f)
                )
            if not torch.isfinite(f).all():
                raise contract_error(entry, "finite features", "NaN or inf")
    finally:
        model.train(was)
    return int(f.shape[1])


@_untouched_check
def dry_run_sr(entry: Entry, model: nn.Module, size: tuple[int, int], ratio: float) -> None:
    x = torch.rand(2, 3, *lr_size(size, ratio))
    with torch.no_grad():
        y = model(x, size)
    if not isinstance(y, Tensor) or tuple(y.shape) != (2, 3, *size) or not y.is_floating_point():
        raise contract_error(
            entry,
            f"forward(x_lr, out_size) -> float tensor (2, 3, {size[0]}, {size[1]})",
            describe(y),
        )


@_untouched_check
def dry_run_discriminator(entry: Entry, model: nn.Module, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise contract_error(entry, "(logit, f_d)", describe(out))
    logit, feat = out
    if logit.reshape(-1).shape[0] != 2 or feat.ndim != 2 or feat.shape[0] != 2:
        raise contract_error(entry, "logit (2,) and f_d (2, D)", describe(out))


#: A non-integer downsampling factor every SR model must handle besides the
#: configured ratios ("resize, then refine"): real LR queries come at any size.
ANY_FACTOR = 2.5


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


def _label(entry: Entry) -> str:
    return f"{entry.kind} {entry.name!r} (plugin {entry.plugin!r})"


def _broke(entry: Entry, expected: str, got: str) -> PluginError:
    return contract_error(entry, expected, got)


@contextlib.contextmanager
def _guard(entry: Entry, doing: str) -> Iterator[None]:
    """Any exception inside becomes a PluginError saying which component did what."""
    try:
        yield
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"{_label(entry)} raised {type(exc).__name__} {doing}: {exc}") from exc


def _configured(entry: Entry, config: RunConfig) -> RunConfig:
    """``config`` with the component selected and its declared options filled in at the
    config's preset (a ``smoke`` check builds the ``smoke`` size, as a smoke run would).

    Options already in ``config`` win, so a caller can check a non-default setting.
    """
    options = {key: option.value_for(config.preset) for key, option in entry.options.items()}
    options.update(config.options)
    field = get_kind(entry.kind).config_field
    return config.replace(**({field: entry.name} if field else {}), options=options)


def _seeded(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` under ``torch.manual_seed(seed)``, the caller's RNG state kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _build(entry: Entry, *args: Any) -> Any:
    with _guard(entry, "while building"):
        return entry.factory(*args)


def _module(entry: Entry, built: Any) -> nn.Module:
    if not isinstance(built, nn.Module):
        raise _broke(entry, "the factory to return an nn.Module", describe(built))
    return built


def _float_matrix(entry: Entry, value: Any, rows: int, what: str) -> Tensor:
    """A finite float ``[rows, D]`` tensor, or a contract error about ``what``."""
    if (
        not isinstance(value, Tensor)
        or value.ndim != 2
        or value.shape[0] != rows
        or not value.is_floating_point()
    ):
        raise _broke(entry, f"{what} as a float ({rows}, D) tensor", describe(value))
    _finite(entry, value, what)
    return value


def _finite(entry: Entry, value: Tensor, what: str) -> None:
    if not torch.isfinite(value).all():
        raise _broke(entry, f"finite values in {what}", "NaN or inf")


def _same(entry: Entry, a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
        diff = (a - b).abs().max().item() if a.shape == b.shape else "a different shape"
        raise _broke(entry, f"{what} to give the same output", f"a difference of {diff}")


def _train_grads(module: nn.Module) -> list[nn.Parameter]:
    """Every parameter trainable, as ``set_trainable`` leaves a module in its step."""
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    return params


def _reaches(entry: Entry, params: list[nn.Parameter], what: str) -> None:
    """The backward reached at least one parameter, and every gradient is finite."""
    grads = [p.grad for p in params if p.grad is not None]
    if params and not grads:
        raise _broke(
            entry, f"{what} to give its parameters a gradient in training mode", "none at all"
        )
    for g in grads:
        _finite(entry, g, f"the gradients of {what}")


def _input_grad(entry: Entry, output: Tensor, x: Tensor, what: str) -> None:
    """``output`` keeps a graph to ``x`` with a finite, non-zero gradient (G learns through it)."""
    if not output.requires_grad:
        raise _broke(
            entry, f"{what} to keep its graph to the input in training mode", "a detached tensor"
        )
    (grad,) = torch.autograd.grad(output.float().sum(), x, retain_graph=True, allow_unused=True)
    if grad is None or not torch.isfinite(grad).all() or not grad.abs().sum() > 0:
        raise _broke(
            entry,
            f"{what} to pass a finite, non-zero gradient back to the input image",
            "none" if grad is None else "zeros, NaN or inf",
        )


# ---------------------------------------------------------------------------
# SR models
# ---------------------------------------------------------------------------


class ContractWarning(UserWarning):
    """A component that keeps its contract but will not work well in the harness; the
    checks warn (``harness check-plugin`` prints one ``warning:`` line) instead of failing."""


#: why an SR model should hold no BatchNorm (the SR zoo refuses architectures that do)
BATCHNORM_IN_G = (
    "every training batch holds one LR ratio, so BatchNorm's running statistics mix the "
    "ratios and a frozen or evaluated G normalises with other statistics than training did: "
    "its SR images shift in colour, and the frozen G (evaluation, the re-id steps) is no "
    "longer bit-exact the G its own step trained; the SR zoo refuses such architectures "
    "(DAT, SwiftSRGAN). Leave normalisation out (EDSR's blocks; docs/plugins.md)"
)


def batchnorm_layers(model: nn.Module) -> list[str]:
    """Names of ``model``'s BatchNorm layers (SyncBatchNorm included)."""
    return [
        name or type(model).__name__
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


def check_sr_model(registry: Registry, name: str, config: RunConfig) -> list[str]:
    """``forward(x_lr, out_size)``: right shape for every ratio (and a non-integer one),
    finite float in both modes, [0, 1] in eval, trainable, deterministic.

    A model holding BatchNorm passes, with a :class:`ContractWarning` saying why it should
    not (:data:`BATCHNORM_IN_G`)."""
    entry = registry.lookup("sr", name)
    config = _configured(entry, config)
    label, size = _label(entry), config.hr_size  # SR restores the HR size
    model = _module(entry, _seeded(config.seed, lambda: _build(entry, config)))
    norms = batchnorm_layers(model)
    if norms:
        where = ", ".join(norms[:3]) + (f" and {len(norms) - 3} more" if len(norms) > 3 else "")
        warnings.warn(
            f"{label}: has BatchNorm ({where}): {BATCHNORM_IN_G}", ContractWarning, stacklevel=2
        )
    twin = _module(entry, _seeded(config.seed, lambda: _build(entry, config)))
    ratios = sorted({*config.protocol.ratios, ANY_FACTOR})
    expected = f"a float tensor ({BATCH}, 3, {size[0]}, {size[1]})"

    def forward(m: nn.Module, x: Tensor, mode: str, ratio: float) -> Tensor:
        m.train(mode == "train")
        with _guard(entry, f"in forward (ratio {ratio:g}, {mode} mode)"):
            y = m(x, size)
        if (
            not isinstance(y, Tensor)
            or tuple(y.shape) != (BATCH, 3, *size)
            or not y.is_floating_point()
        ):
            raise _broke(
                entry,
                f"forward(x_lr {tuple(x.shape)}, out_size={size}) in {mode} mode "
                f"at ratio {ratio:g} to return {expected}",
                describe(y),
            )
        _finite(entry, y, f"the {mode}-mode output at ratio {ratio:g}")
        return y

    x0 = random_images(BATCH, lr_size(size, ratios[0]), seed=1)
    with torch.no_grad():
        first, again = forward(model, x0, "eval", ratios[0]), forward(model, x0, "eval", ratios[0])
        _same(entry, first, again, "two eval-mode forwards of one batch")
        _same(entry, first, forward(twin, x0, "eval", ratios[0]), "two models built with one seed")
        other = forward(
            model, random_images(BATCH, lr_size(size, ratios[0]), seed=2), "eval", ratios[0]
        )
    if torch.equal(first, other):
        raise _broke(entry, "an output that depends on the input", "the same output for two inputs")
    passed = [
        f"{label}: eval-mode output is deterministic (same seed, same input -> same output) "
        "and depends on the input"
    ]

    for ratio in ratios:
        x = random_images(BATCH, lr_size(size, ratio), seed=3)
        kept = x.clone()
        with torch.no_grad():
            y = forward(model, x, "eval", ratio)
        if y.min() < -1e-4 or y.max() > 1 + 1e-4:
            raise _broke(
                entry,
                f"eval-mode images in [0, 1] at ratio {ratio:g}",
                f"values in [{y.min().item():.3g}, {y.max().item():.3g}]",
            )
        params = _train_grads(model)
        y = forward(model, x, "train", ratio)
        if params and not y.requires_grad:
            raise _broke(
                entry, "a training-mode output with a graph to the parameters", "a detached tensor"
            )
        if params:
            with _guard(entry, f"in backward (ratio {ratio:g})"):
                F.mse_loss(y.float(), random_images(BATCH, size, seed=4)).backward()
            _reaches(entry, params, "the SR loss")
        if not torch.equal(x, kept):
            raise _broke(entry, "the input batch left unchanged", "an in-place change to x_lr")
    passed.append(
        f"{label}: forward(x_lr, {size}) -> {expected}, finite, for ratios "
        f"{', '.join(f'{r:g}' for r in ratios)} in train and eval mode; eval output in [0, 1]"
    )
    n_params = sum(p.numel() for p in model.parameters())
    passed.append(
        f"{label}: training-mode output keeps its graph; the pixel loss gives finite "
        f"gradients to its parameters ({n_params} in all)"
        if n_params
        else f"{label}: has no parameters (nothing to train), input left unchanged"
    )
    model.zero_grad(set_to_none=True)
    return passed


# ---------------------------------------------------------------------------
# Re-id models and discriminators
# ---------------------------------------------------------------------------


def check_reid_model(
    registry: Registry, name: str, config: RunConfig, num_classes: int = TINY_CLASSES
) -> list[str]:
    """``(logits, f_c)`` in train mode, ``f_c`` in eval mode, one feature size in both,
    gradients to the input (the ID loss trains G through it), deterministic."""
    entry = registry.lookup("reid", name)
    config = _configured(entry, config)
    label, size = _label(entry), (config.height, config.width)
    model = _module(entry, _seeded(config.seed, lambda: _build(entry, config, num_classes)))
    twin = _module(entry, _seeded(config.seed, lambda: _build(entry, config, num_classes)))
    x = random_images(BATCH, size, seed=5)

    def features(m: nn.Module, images: Tensor) -> Tensor:
        m.eval()
        with torch.no_grad(), _guard(entry, "in an eval-mode forward"):
            out = m(images)
        return _float_matrix(entry, out, BATCH, "the eval-mode output f_c")

    feat = features(model, x)
    _same(entry, feat, features(model, x), "two eval-mode forwards of one batch")
    _same(entry, feat, features(twin, x), "two models built with one seed")
    if torch.equal(feat, features(model, random_images(BATCH, size, seed=6))):
        raise _broke(entry, "features that depend on the input", "the same features for two inputs")
    dim = int(feat.shape[1])
    passed = [
        f"{label}: eval mode returns f_c ({BATCH}, {dim}), finite and deterministic "
        "(same seed, same input -> same output)"
    ]

    model.train()
    params = _train_grads(model)
    xg = x.clone().requires_grad_(True)
    with _guard(entry, "in a training-mode forward"):
        out = model(xg)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise _broke(entry, "(logits, f_c) in training mode", describe(out))
    logits, f_c = out
    if (
        not isinstance(logits, Tensor)
        or tuple(logits.shape) != (BATCH, num_classes)
        or not logits.is_floating_point()
    ):
        raise _broke(
            entry,
            f"logits as a float ({BATCH}, {num_classes}) tensor in training mode",
            describe(out),
        )
    _finite(entry, logits, "the training-mode logits")
    _float_matrix(entry, f_c, BATCH, "the training-mode f_c")
    if f_c.shape[1] != dim:
        raise _broke(
            entry,
            f"f_c of one size in both modes ({dim} in eval mode), since critics sized by "
            "the eval feature read the training-mode one",
            f"{f_c.shape[1]} in training mode",
        )
    _input_grad(entry, logits, xg, "the logits")
    _input_grad(entry, f_c, xg, "f_c")
    pids = torch.arange(BATCH) % num_classes
    with _guard(entry, "in backward of the ID loss"):
        F.cross_entropy(logits.float(), pids).backward()
    _reaches(entry, params, "the ID loss")
    model.zero_grad(set_to_none=True)
    passed.append(
        f"{label}: training mode returns (logits ({BATCH}, {num_classes}), f_c ({BATCH}, {dim})), "
        "finite, with gradients to the input image and to its parameters"
    )
    return passed


def check_discriminator(registry: Registry, name: str, config: RunConfig) -> list[str]:
    """``(logit [B], f_d [B, D])`` in both modes, one feature size, gradients to the input."""
    entry = registry.lookup("discriminator", name)
    config = _configured(entry, config)
    label, size = _label(entry), config.hr_size  # D judges HR-size images
    model = _module(entry, _seeded(config.seed, lambda: _build(entry, config)))
    twin = _module(entry, _seeded(config.seed, lambda: _build(entry, config)))
    x = random_images(BATCH, size, seed=7)

    def forward(m: nn.Module, images: Tensor, mode: str) -> tuple[Tensor, Tensor]:
        m.train(mode == "train")
        with _guard(entry, f"in a {mode}-mode forward"):
            out = m(images)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise _broke(entry, f"(logit, f_d) in {mode} mode", describe(out))
        logit, f_d = out
        if not isinstance(logit, Tensor) or logit.numel() != BATCH or not logit.is_floating_point():
            raise _broke(entry, f"a float logit of {BATCH} values in {mode} mode", describe(out))
        _finite(entry, logit, f"the {mode}-mode logit")
        _float_matrix(entry, f_d, BATCH, f"the {mode}-mode f_d")
        return logit.reshape(-1), f_d

    with torch.no_grad():
        logit, f_d = forward(model, x, "eval")
        _same(entry, logit, forward(model, x, "eval")[0], "two eval-mode forwards of one batch")
        _same(entry, logit, forward(twin, x, "eval")[0], "two models built with one seed")
    dim = int(f_d.shape[1])
    params = _train_grads(model)
    xg = x.clone().requires_grad_(True)
    logit_t, f_d_t = forward(model, xg, "train")
    if f_d_t.shape[1] != dim:
        raise _broke(
            entry,
            f"f_d of one size in both modes ({dim} in eval mode)",
            f"{f_d_t.shape[1]} in training mode",
        )
    _input_grad(entry, logit_t, xg, "the logit")
    _input_grad(entry, f_d_t, xg, "f_d")
    with _guard(entry, "in backward of the GAN loss"):
        F.binary_cross_entropy_with_logits(logit_t.float(), torch.ones(BATCH)).backward()
    _reaches(entry, params, "the GAN loss")
    model.zero_grad(set_to_none=True)
    return [
        f"{label}: eval mode returns (logit ({BATCH},), f_d ({BATCH}, {dim})), finite and "
        "deterministic",
        f"{label}: training mode returns the same shapes with gradients to the input image "
        "and to its parameters",
    ]


# ---------------------------------------------------------------------------
# Regularisers
# ---------------------------------------------------------------------------


def _validated(entry: Entry, step: Step) -> Step:
    """The step with its loss's return value checked before the runner sums it."""

    def loss(ctx: StepContext) -> Mapping[str, Tensor]:
        terms = step.loss(ctx)
        if not isinstance(terms, Mapping) or not terms:
            raise _broke(
                entry,
                f"step {step.name!r} to return a non-empty dict of named loss tensors",
                describe(terms),
            )
        for key, value in terms.items():
            if (
                not isinstance(key, str)
                or not isinstance(value, Tensor)
                or value.numel() != 1
                or not value.is_floating_point()
            ):
                raise _broke(
                    entry,
                    f"term {key!r} of step {step.name!r} to be a scalar float tensor",
                    describe(value),
                )
        return terms

    return dataclasses.replace(step, loss=loss)


def _param_state(models: Mapping[str, nn.Module]) -> dict[str, list[Tensor]]:
    return {k: [p.detach().clone() for p in m.parameters()] for k, m in models.items()}


def _moved(before: dict[str, list[Tensor]], models: Mapping[str, nn.Module]) -> set[str]:
    return {
        k
        for k, m in models.items()
        if any(
            not torch.equal(a, p.detach()) for a, p in zip(before[k], m.parameters(), strict=True)
        )
    }


def _one_iteration(
    entry: Entry, config: RunConfig, generator: Callable[[], nn.Module] | None = None
) -> tuple[dict[str, float], list[str]]:
    """Build the regulariser around tiny G / re-id / D and run each step once, in order."""
    size = config.hr_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        reg = _build(entry, config)
        if not (callable(getattr(reg, "build", None)) and callable(getattr(reg, "schedule", None))):
            raise _broke(
                entry, "the factory to return a Regulariser (build and schedule)", describe(reg)
            )
        g = generator() if generator is not None else TinyGenerator(size)
        models: dict[str, nn.Module] = {"G": g, "reid": TinyReid()}
        ctx = BuildContext(config, TINY_REID_DIM, TinyDiscriminator, size)
        with _guard(entry, "in build()"):
            extra = reg.build(ctx)
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(m, nn.Module) for k, m in extra.items()
        ):
            raise _broke(entry, "build() to return a dict of named nn.Modules", describe(extra))
        reserved = sorted({"G", "reid"} & set(extra))
        if reserved:
            raise _broke(
                entry,
                "build() to leave the names 'G' and 'reid' to the harness",
                f"modules named {reserved}",
            )
        models.update(extra)
        for module in models.values():
            module.train()
        with _guard(entry, "in schedule()"):
            steps = list(reg.schedule(config))
        if not steps or not all(isinstance(s, Step) for s in steps):
            raise _broke(entry, "schedule() to return a non-empty list of Step", describe(steps))
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise _broke(entry, "steps with distinct names", f"names {names}")
        for step in steps:
            unknown = sorted(set(step.trainable) - set(models))
            if unknown or isinstance(step.trainable, str):
                raise _broke(
                    entry,
                    f"step {step.name!r} to name trainable modules among {sorted(models)} "
                    "(a tuple of names)",
                    f"{step.trainable!r}",
                )
        steps = [_validated(entry, s) for s in steps]
        runner = StepRunner(models, steps, default_learning_rates(config))
        state = StepContext(tiny_batch(size, float(config.protocol.ratios[0])), models, config)
        values: dict[str, float] = {}
        passed: list[str] = []
        for step in steps:
            before = _param_state(models)
            with _guard(entry, f"in step {step.name!r}"):
                terms = runner.run(step, state)
            for key, value in terms.items():
                _finite(entry, value, f"loss term {key!r}")
                values[key] = float(value)
            moved = _moved(before, models)
            stray = sorted(moved - set(step.trainable))
            if stray:
                raise _broke(
                    entry,
                    f"step {step.name!r} to change only the modules it names as trainable "
                    f"{tuple(step.trainable)}",
                    f"changes to {stray}",
                )
            graded = sorted(
                k
                for k, m in models.items()
                if k not in step.trainable and any(p.grad is not None for p in m.parameters())
            )
            if graded:
                raise _broke(
                    entry,
                    f"no gradients on modules frozen in step {step.name!r}",
                    f"gradients on {graded}",
                )
            with_params = {k for k in step.trainable if any(True for _ in models[k].parameters())}
            if with_params and not moved & with_params:
                raise _broke(
                    entry,
                    f"step {step.name!r} to change at least one of its trainable modules "
                    f"{tuple(step.trainable)} (does its loss reach them?)",
                    "no change at all",
                )
            passed.append(
                f"{_label(entry)}: step {step.name!r} gives finite scalar terms "
                f"{', '.join(sorted(k.split('/', 1)[1] for k in terms))}; it changes "
                f"{', '.join(sorted(moved))} and nothing else "
                f"(trainable: {', '.join(step.trainable)})"
            )
    return values, passed


def check_regulariser(registry: Registry, name: str, config: RunConfig) -> list[str]:
    """Build around tiny G / re-id / D, run each step once with ``StepRunner``:
    finite named scalar terms, only the step's trainable modules change, deterministic."""
    entry = registry.lookup("regulariser", name)
    config = _configured(entry, config)
    sr_model = fixed_sr_model(entry)
    if sr_model is not None:
        try:
            registry.lookup("sr", sr_model)
        except UnknownNameError as exc:
            raise _broke(
                entry, "sr_model to name a registered SR model", f"{sr_model!r} ({exc})"
            ) from None
    # a method that fixes its SR model is checked with it (its steps may read what it is)
    generator = (lambda: registry.lookup("sr", sr_model).factory(config)) if sr_model else None
    values, passed = _one_iteration(entry, config, generator)
    if sr_model is not None:
        passed.insert(
            0, f"{_label(entry)}: defined with --sr {sr_model} (a run gets it by default)"
        )
    again, _ = _one_iteration(entry, config, generator)
    if set(values) != set(again) or any(
        not np.isclose(values[k], again[k], rtol=1e-5, atol=1e-7) for k in values
    ):
        raise _broke(
            entry,
            "two iterations from one seed to give the same loss terms",
            f"{values} and {again}",
        )
    passed.append(f"{_label(entry)}: one seed gives the same loss terms twice")
    return passed


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def _folder_state(root: str | None) -> dict[str, tuple[int, int]] | None:
    if root is None or not os.path.isdir(root):
        return None
    state = {}
    for folder, _, files in os.walk(root):
        for f in files:
            stat = os.stat(os.path.join(folder, f))
            state[os.path.relpath(os.path.join(folder, f), root)] = (stat.st_size, stat.st_mtime_ns)
    return state


def _record_key(record: Record) -> tuple[Any, ...]:
    image = record.image
    if isinstance(image, np.ndarray):
        image = (image.shape, hash(image.tobytes()))
    return (str(image) if isinstance(image, Path) else image, int(record.pid), int(record.camid))


def _check_records(entry: Entry, split: str, records: Any) -> None:
    if not isinstance(records, list) or not records:
        raise _broke(entry, f"a non-empty list of Records in {split!r}", describe(records))
    for i, record in enumerate(records):
        where = f"{split}[{i}]"
        if not all(hasattr(record, a) for a in ("image", "pid", "camid")):
            raise _broke(entry, f"{where} to be a Record(image, pid, camid)", describe(record))
        for attr in ("pid", "camid"):
            value = getattr(record, attr)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise _broke(entry, f"{where}.{attr} to be an int >= 0", repr(value))
        image = record.image
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise _broke(
                    entry,
                    f"{where}.image as an HxWx3 uint8 array",
                    f"shape {image.shape} dtype {image.dtype}",
                )
        elif isinstance(image, (str, os.PathLike)):
            if not os.path.isfile(image):
                raise _broke(entry, f"{where}.image to be an existing file", repr(str(image)))
        else:
            raise _broke(
                entry, f"{where}.image to be a file path or an HxWx3 uint8 array", describe(image)
            )


def check_dataset(
    registry: Registry, name: str, root: str | None, config: RunConfig, sample: int = 8
) -> list[str]:
    """Records of the right types in three non-empty splits, queries from the LR
    cameras with gallery matches, ``sample`` images per split decodable, the same
    lists twice, and nothing written into ``root``.

    A missing or malformed ``root`` raises the dataset's own DatasetError.
    """
    entry = registry.lookup("dataset", name)
    config = _configured(entry, config).replace(data_root=root)
    label = _label(entry)
    before = _folder_state(root)

    def build() -> Any:
        try:
            return entry.factory(root, config)
        except DatasetError:
            raise
        except Exception as exc:
            raise PluginError(f"{label} raised {type(exc).__name__} while building: {exc}") from exc

    dataset = build()
    if not isinstance(dataset, ReidDataset):
        raise _broke(entry, "the factory to return a ReidDataset", describe(dataset))
    for split in ("train", "query", "gallery"):
        _check_records(entry, split, getattr(dataset, split))
    counts = ", ".join(f"{s} {len(getattr(dataset, s))}" for s in ("train", "query", "gallery"))
    passed = [f"{label}: train, query and gallery are non-empty lists of Records ({counts})"]

    with _guard(entry, "when the MLR protocol picked its LR queries"):
        split = build_mlr(dataset, config.protocol)
    gallery = {r.pid for r in dataset.gallery}
    if not any(r.pid in gallery for r in split.query):
        raise _broke(entry, "LR queries whose identities appear in the gallery", "none")
    passed.append(
        f"{label}: {len(split.query)} queries from LR camera(s) {list(split.lr_cameras)}, "
        f"with gallery matches"
    )

    size = dataset.hr_size or config.hr_size
    for name_ in ("train", "query", "gallery"):
        records = getattr(dataset, name_)[:sample]
        try:
            loaded = load_images(records, size)
        except Exception as exc:
            raise PluginError(f"{label}: an image of {name_!r} cannot be loaded: {exc}") from exc
        if tuple(loaded.images.shape[1:]) != (3, *size) or loaded.images.dtype != torch.uint8:
            raise _broke(
                entry,
                f"images decodable to uint8 (3, {size[0]}, {size[1]})",
                describe(loaded.images),
            )
    passed.append(
        f"{label}: the first {sample} images of each split decode to {size[0]}x{size[1]} RGB"
    )

    twin = build()
    for split_name in ("train", "query", "gallery"):
        a = [_record_key(r) for r in getattr(dataset, split_name)]
        b = [_record_key(r) for r in getattr(twin, split_name)]
        if a != b:
            raise _broke(
                entry, f"the same {split_name!r} records from two builds", "different ones"
            )
    if root is not None and _folder_state(root) != before:
        raise _broke(entry, f"nothing written into its root {root}", "files added or changed")
    passed.append(
        f"{label}: two builds give the same records"
        + ("" if root is None else f" and leave {root} untouched")
    )
    return passed


def check_weight_source(registry: Registry, name: str, config: RunConfig) -> list[str]:
    """For each backbone the source names: its file is found, its sha256 matches, and it
    loads strictly into that re-id backbone. A source with nothing installed says what to
    install."""
    entry = registry.lookup("weights", name)
    if not isinstance(entry, WeightsEntry):
        raise _broke(
            entry, "a weights source registered by harness_register_weights", type(entry).__name__
        )
    source = entry.source
    label = _label(entry)
    for attr in ("tier", "install_hint", "serves", "find", "expected_sha256", "read"):
        if not hasattr(source, attr):
            raise _broke(
                entry,
                f"a weight source with .{attr} (harness.pretrained.WeightSource)",
                type(source).__name__,
            )
    lines = []
    for backbone in getattr(source, "backbones", ()):
        with _guard(entry, f"finding weights for {backbone}"):
            path = source.find(backbone)
        if path is None:
            lines.append(f"{label}: nothing installed for {backbone} ({source.install_hint})")
            continue
        digest = sha256_file(path)
        expected = source.expected_sha256(backbone, path)
        if expected is not None and not digest.startswith(expected):
            raise _broke(entry, f"{path} with sha256 {expected}", digest)
        reid = registry.lookup("reid", backbone).factory(config, TINY_CLASSES)
        with _guard(entry, f"loading {path} into {backbone}"):
            record = load_init(
                reid, FoundWeights(backbone, name, source.tier, str(path), digest), registry
            )
        lines.append(
            f"{label}: {backbone} <- {path} "
            f"(sha256 ok, {record['tensors']} tensors {record['converted']})"
        )
    if not lines:
        lines.append(
            f"{label}: a {source.tier} source for any backbone it serves (none to check offline)"
        )
    return lines


def check_launcher(registry: Registry, name: str, config: RunConfig) -> list[str]:
    """A launcher's factory is callable and its options are declared Options.

    The factory is not called: starting a launcher may start or join a cluster,
    which a contract check must not do; ``tests/test_launchers.py`` runs the built-ins.
    """
    entry = registry.lookup("launcher", name)
    if not callable(entry.factory):
        raise _broke(
            entry, "a callable factory(LaunchSettings) -> launcher", type(entry.factory).__name__
        )
    for key, option in entry.options.items():
        if not isinstance(option, Option):
            raise _broke(entry, f"option {key!r} declared as harness.Option", type(option).__name__)
    return [
        f"{_label(entry)}: a factory with options "
        f"{', '.join(sorted(entry.options)) or '(none)'} (not started)"
    ]


def check_tracker(registry: Registry, name: str, config: RunConfig) -> list[str]:
    """A tracker's factory is callable and the library it needs, if any, is named.

    The factory is not called: a tracker opens a store (a database, a server for a
    third party's), which a contract check must not do; ``tests/test_trackers.py``
    runs the built-ins.
    """
    from harness.registrars import TrackerEntry

    entry = registry.lookup("tracker", name)
    if not callable(entry.factory):
        raise _broke(
            entry, "a callable factory(TrackerSettings) -> tracker", type(entry.factory).__name__
        )
    needs = entry.requires if isinstance(entry, TrackerEntry) else None
    return [f"{_label(entry)}: a factory, needs {needs or 'nothing more'} (not opened)"]


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------


def check_component(
    registry: Registry, kind: str, name: str, config: RunConfig, root: str | None = None
) -> list[str]:
    """Run the contract check of ``kind`` on ``name``; returns what passed, one line each.

    The check is the one :data:`harness.kinds.KINDS` names for the kind; a kind whose
    factory reads a folder is checked on ``root``.
    """
    row = get_kind(kind)  # an unknown kind is an UnknownNameError listing the kinds
    check: Callable[..., list[str]] = globals()[row.check]  # tests/test_registry.py: each exists
    if row.reads_root:
        return check(registry, name, root, config)
    return check(registry, name, config)


def find_components(registry: Registry, name: str, kind: str | None = None) -> list[Entry]:
    """Every component called ``name`` plus every component of the plugin called ``name``.

    ``harness check-plugin rrdb`` thus checks the whole ``rrdb`` plugin; names
    only a resolver knows (a timm model) are found too. Nothing found is an
    UnknownNameError with suggestions.
    """
    kinds = [kind] if kind else kind_names()
    for k in kinds:
        registry.names(k)  # an unknown kind fails here, listing the kinds
    found = [registry.entries[k][name] for k in kinds if name in registry.entries[k]]
    for k in kinds:
        found += [
            e for _, e in sorted(registry.entries[k].items()) if e.plugin == name and e not in found
        ]
    if found:
        return found
    if kind is not None:
        return [registry.lookup(kind, name)]  # a resolver's name, or the usual unknown-name error
    for k in kinds:
        if registry.resolvers(k):
            with contextlib.suppress(UnknownNameError):
                found.append(registry.lookup(k, name))
    if found:
        return found
    known = sorted({n for k in kinds for n in registry.entries[k]} | set(registry.plugins))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(
        f"unknown component or plugin {name!r}: no {', '.join(kinds)} and no plugin has that "
        f"name.{hint} See harness list."
    )


def component_config(registry: Registry, entry: Entry, root: str | None = None) -> RunConfig:
    """The ``smoke`` preset on CPU with ``entry`` selected, its options at their defaults."""
    values = {"preset": "smoke", "device": "cpu"}
    field = get_kind(entry.kind).config_field
    if field:
        values[field] = entry.name
    return resolve_config({**values, "data_root": root}, registry)
