"""Freezing: which modules a step may change, and the guarantee that it changes nothing else.

Kept apart from the step runner because the step context reads frozen
modules too (``f_c`` of the re-id model, ``f_d`` of D) and must read them
exactly as a step would: normalisation and dropout in inference mode, no
statistic written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrizations

#: Layers whose training flag changes what a forward writes (running statistics, a
#: spectral norm's power-iteration vectors) or computes (dropout). A frozen module
#: runs them in inference mode: a spectral-normalised D then divides by the norm its
#: own step last estimated, the same in every read, and writes nothing.
STATEFUL_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.modules.dropout._DropoutNd,
    parametrizations._SpectralNorm,
)


def inference_layers(module: nn.Module) -> None:
    """Normalisation and dropout layers of ``module`` to eval mode, the module itself untouched.

    The module keeps its training-mode *outputs* (a re-id model still returns
    ``(logits, f_c)``), but normalises with its running statistics and changes none.
    """
    for layer in module.modules():
        if isinstance(layer, STATEFUL_LAYERS):
            layer.eval()


@contextlib.contextmanager
def training_modes_restored(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Every submodule's ``training`` flag as it was before the block, whatever the block set
    (``module.train(flag)`` would set one flag on all of them, undoing per-layer modes)."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def requires_grad_restored(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Every parameter's ``requires_grad`` as it was before the block, whatever the block set
    (a probe or a shared forward may unfreeze or freeze modules for its own pass)."""
    flags = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def inference_mode_layers(module: nn.Module) -> Iterator[None]:
    """:func:`inference_layers` for the duration of a block, then the previous modes."""
    with training_modes_restored([module]):
        inference_layers(module)
        yield


def set_trainable(models: Mapping[str, nn.Module], trainable: tuple[str, ...]) -> None:
    """``requires_grad`` and training mode on exactly the named modules.

    Every other module is frozen: no parameter gradient, and its normalisation
    and dropout layers in inference mode (:func:`inference_layers`), so reading
    it (``f_c`` of the re-id model, ``f_d`` of D) uses the statistics it was
    trained with and updates none of them.
    """
    unknown = [name for name in trainable if name not in models]
    if unknown:
        raise KeyError(f"step names unknown modules {unknown}; modules: {sorted(models)}")
    for name, module in models.items():
        flag = name in trainable
        module.train()
        if not flag:
            inference_layers(module)
        for p in module.parameters():
            p.requires_grad_(flag)


@contextlib.contextmanager
def buffers_restored(modules: Iterable[nn.Module], only_changed: bool = False) -> Iterator[None]:
    """Whatever a block does, the modules' buffers end as they began (bit for bit).

    The backstop behind :func:`set_trainable`: a third-party module may keep
    state that no training flag guards (a spectral-norm power-iteration vector,
    a feature queue); a step that does not train it must not change it.

    ``only_changed`` (the training steps): write back only buffers whose version
    counter moved (host-side, no device sync), and the statistics of norm layers,
    whose native kernels update them without moving it. Writing an unchanged
    buffer would move its version and break a graph that saved it: SwinIR's
    relative-position index, read by G's forward before the D step and needed by
    the G step's backward. Without it (contract checks) everything is written back.
    """
    saved = [
        (
            owner,
            key,
            buffer,
            buffer._version,
            buffer.detach().clone(),
            isinstance(owner, STATEFUL_LAYERS),
        )
        for m in modules
        for owner in m.modules()
        for key, buffer in owner._buffers.items()
        if buffer is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for owner, key, buffer, version, value, is_norm in saved:
                replaced = owner._buffers.get(key) is not buffer
                if replaced:
                    owner._buffers[key] = buffer
                if not only_changed or replaced or is_norm or buffer._version != version:
                    buffer.copy_(value)
