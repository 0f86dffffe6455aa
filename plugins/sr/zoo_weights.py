"""``--sr-weights PATH``: a user's pretrained SR checkpoint, read safely, never downloaded.

Why not spandrel's own ``ModelLoader.load_from_file``: the file is read by the
harness's one safe reader (:func:`harness.checkpoint.safe_load`: a ``.pth``
with ``torch.load(weights_only=True)``, tensors and plain containers only, no
pickled code, the same rule as ``--reid-weights``; a ``.safetensors`` with
safetensors); only then is the state dict handed to spandrel, which unwraps the
usual containers (``params_ema``, ``state_dict``, ...) and recognises the
architecture from its keys. The result is a typed :class:`SRCheckpoint`;
:mod:`crossres_plugins.sr.zoo` wraps its network and keeps its record on the module as
``loaded_weights``, which the run records in config.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from harness.checkpoint import safe_load
from harness.config import ConfigError
from harness.errors import HarnessError
from harness.pretrained import sha256_file

_REFUSAL = (
    "; it holds pickled objects besides tensors, which are never executed (read with "
    "weights_only=True): save model.state_dict() or .safetensors"
)


@dataclass(frozen=True)
class SRCheckpoint:
    """A checkpoint spandrel recognised: its network, how to feed it, what was loaded."""

    net: nn.Module
    scale: int
    size_requirements: Any  #: spandrel's (minimum, multiple_of, square) for the input
    record: dict[str, Any]  #: path, sha256, architecture, scale, tags (for config.json)


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The checkpoint's tensors, read without executing anything; one-line ConfigErrors."""
    try:
        obj = safe_load(path, what="--sr-weights", hint=_REFUSAL)
    except HarnessError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(obj, dict):
        raise ConfigError(f"--sr-weights {path}: holds a {type(obj).__name__}, not a state dict")
    return obj


def detect(state: dict[str, Any], path: str | Path) -> Any:
    """spandrel's descriptor (model, architecture, scale) for a state dict."""
    # spandrel is imported only when a checkpoint is read, so `harness list` stays fast
    from spandrel import ModelLoader, UnsupportedModelError, canonicalize_state_dict

    try:
        return ModelLoader().load_from_state_dict(canonicalize_state_dict(state))
    except UnsupportedModelError:
        raise ConfigError(
            f"--sr-weights {path}: spandrel recognises no architecture in it (see harness list "
            "for the SR zoo)"
        ) from None
    except Exception as exc:  # a recognised architecture with inconsistent shapes
        raise ConfigError(
            f"--sr-weights {path}: spandrel could not build it: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def _scales(scales: Sequence[int]) -> str:
    """``(2, 3, 4)`` -> ``"x2, x3 or x4"``."""
    named = [f"x{s}" for s in scales]
    return named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"


def load_sr_weights(
    path: str | Path, expected: str, name: str, scales: Sequence[int], scale: int | None = None
) -> SRCheckpoint:
    """The checkpoint's network, checked against what ``--sr`` names.

    ``expected`` is the spandrel architecture id ``--sr`` names; a checkpoint of
    another architecture, of a scale outside ``scales``, or of another scale than
    ``-o sr_scale`` (``scale``), is refused.
    """
    desc = detect(read_checkpoint(path), path)
    arch = desc.architecture.id
    if arch != expected:
        raise ConfigError(
            f"--sr-weights {path} holds a {arch} model, but --sr {name} is {expected}; "
            f"name the checkpoint's architecture (--sr {arch.lower()})"
        )
    if desc.purpose != "SR" or desc.scale not in scales:
        raise ConfigError(
            f"--sr-weights {path}: a {arch} model of scale {desc.scale} "
            f"({desc.purpose}); the harness needs an {_scales(scales)} SR model"
        )
    if scale is not None and scale != desc.scale:
        raise ConfigError(f"--sr-weights {path} is a x{desc.scale} model, but -o sr_scale={scale}")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise ConfigError(
            f"--sr-weights {path}: a {desc.input_channels}-to-{desc.output_channels} "
            "channel model; the harness super-resolves RGB (3 to 3)"
        )
    record = {
        "path": str(Path(path).resolve()),
        "sha256": sha256_file(path),
        "architecture": arch,
        "scale": int(desc.scale),
        "tags": list(desc.tags),
    }
    return SRCheckpoint(desc.model, int(desc.scale), desc.size_requirements, record)
