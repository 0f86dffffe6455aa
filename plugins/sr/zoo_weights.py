"""``--sr-weights PATH``: a user's pretrained SR checkpoint, read safely, never downloaded.

Why not spandrel's own ``ModelLoader.load_from_file``: a ``.pth`` is read here
with ``torch.load(weights_only=True)`` (tensors and plain containers only, no
pickled code: the same rule as ``--reid-weights``) and a ``.safetensors`` with
safetensors; only then is the state dict handed to spandrel, which unwraps the
usual containers (``params_ema``, ``state_dict``, ...) and recognises the
architecture from its keys. What was loaded (path, sha256, architecture, scale)
is kept on the module as ``loaded_weights``; the run records it in config.json.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from harness.config import ConfigError
from harness.pretrained import sha256_file


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The checkpoint's tensors, read without executing anything; one-line errors."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--sr-weights {path}: no such file")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(file), device="cpu")
        else:
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"--sr-weights {path}: it holds pickled objects besides tensors, which are never "
            "executed (read with weights_only=True); save model.state_dict() or .safetensors"
        ) from None
    except (OSError, RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--sr-weights {path}: not a readable weights file (.pth/.pt state dict read with "
            f"weights_only=True, or .safetensors): {first}"
        ) from None
    if not isinstance(obj, dict):
        raise ConfigError(f"--sr-weights {path}: holds a {type(obj).__name__}, not a state dict")
    return obj


def detect(state: dict[str, Any], path: str | Path) -> Any:
    """spandrel's descriptor (model, architecture, scale) for a state dict."""
    from spandrel import ModelLoader, UnsupportedModelError, canonicalize_state_dict

    try:
        return ModelLoader().load_from_state_dict(canonicalize_state_dict(state))
    except UnsupportedModelError:
        raise ConfigError(
            f"--sr-weights {path}: spandrel recognises no architecture in it (see harness list "
            "for the SR zoo)"
        ) from None
    except Exception as exc:  # a recognised architecture with inconsistent shapes
        raise ConfigError(f"--sr-weights {path}: spandrel could not build it: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def load_sr_weights(path: str | Path, expected: str, name: str, scale: int | None = None) -> Any:
    """A :class:`plugins.sr.zoo.ZooSR` around the checkpoint's model, gate 1 (as published).

    ``expected`` is the spandrel architecture id ``--sr`` names; a checkpoint of
    another architecture, or of another scale than ``-o sr_scale``, is refused.
    """
    from plugins.sr.zoo import SCALES, ZooSR

    desc = detect(read_checkpoint(path), path)
    arch = desc.architecture.id
    if arch != expected:
        raise ConfigError(
            f"--sr-weights {path} holds a {arch} model, but --sr {name} is {expected}; "
            f"name the checkpoint's architecture (--sr {arch.lower()})"
        )
    if desc.purpose != "SR" or desc.scale not in SCALES:
        raise ConfigError(f"--sr-weights {path}: a {arch} model of scale {desc.scale} "
                          f"({desc.purpose}); the harness needs an x2, x3 or x4 SR model")
    if scale is not None and scale != desc.scale:
        raise ConfigError(f"--sr-weights {path} is a x{desc.scale} model, but -o sr_scale={scale}")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise ConfigError(f"--sr-weights {path}: a {desc.input_channels}-to-{desc.output_channels} "
                          "channel model; the harness super-resolves RGB (3 to 3)")
    model = ZooSR(desc.model, desc.scale, desc.size_requirements, gate=1.0)
    model.train()
    model.loaded_weights = {
        "path": str(Path(path).resolve()),
        "sha256": sha256_file(path),
        "architecture": arch,
        "scale": int(desc.scale),
        "tags": list(desc.tags),
    }
    return model
