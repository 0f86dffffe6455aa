"""Loading re-id weights from a local file, safely and forgivingly.

Safe: ``torch.load(weights_only=True)`` never runs code from the file; a file
that needs pickled code is refused with the one-line fix. Forgiving: the
common containers (a raw state_dict, ``{"state_dict": ...}``, ``{"model": ...}``,
``{"reid": ...}``, a harness checkpoint's ``{"models": {"reid": ...}}``),
DataParallel's ``module.`` prefix and a wrapper prefix (``backbone.``,
``model.``) are all accepted, and a classifier trained on another number of
identities is skipped rather than failing the load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from harness.checkpoint import safe_load
from harness.errors import HarnessError
from harness.io import atomic_torch_save

CONTAINER_KEYS = ("state_dict", "model", "reid")


def _read(path: Path) -> Any:
    hint = f"; save a plain state_dict with torch.save(model.state_dict(), {path})"
    return safe_load(path, what="re-id weights", hint=hint)


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())
    )


def extract_state_dict(obj: Any, path: Path | str = "<file>") -> dict[str, Tensor]:
    """The tensor table inside a loaded object, ``module.`` prefixes stripped."""
    if (
        isinstance(obj, Mapping)
        and isinstance(obj.get("models"), Mapping)
        and "reid" in obj["models"]
    ):
        obj = obj["models"]["reid"]
    if not _is_state_dict(obj) and isinstance(obj, Mapping):
        for key in CONTAINER_KEYS:
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise HarnessError(
            f"{path} holds no state_dict (looked for a tensor table, or one under "
            f"{', '.join(CONTAINER_KEYS)}); found {keys}"
        )
    return {_strip(k, "module."): v for k, v in obj.items()}


def _strip(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix) :]
    return key


def align(source: dict[str, Tensor], target: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename ``source`` by the wrapper prefix (added or removed) that matches most keys."""
    prefixes = {""}
    for key in list(source) + list(target):  # wrapper prefixes up to two levels ("backbone.model.")
        parts = key.split(".")
        for depth in (1, 2):
            if len(parts) > depth:
                prefixes.add(".".join(parts[:depth]) + ".")
    best, best_hits = source, sum(k in target for k in source)
    for prefix in sorted(prefixes):
        for renamed in (
            {prefix + k: v for k, v in source.items()},
            {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in source.items()},
        ):
            hits = sum(k in target for k in renamed)
            if hits > best_hits:
                best, best_hits = renamed, hits
    return best


def _is_classifier(key: str) -> bool:
    return "classifier" in key.split(".")


#: module names of heads: a file's own head and the harness's are never required to match.
#: The classifiers of timm (``classifier``, ``fc``, ``head``), torchvision (``fc``,
#: ``classifier``), TF-converted EfficientNets (``_fc``) and Cadene's models
#: (``last_linear``), plus the harness's own BNNeck.
HEAD_PARTS = frozenset({"classifier", "fc", "_fc", "head", "last_linear", "bnneck"})


def is_head(key: str) -> bool:
    """Whether tensor ``key`` belongs to a head: any of its dotted parts is a head's name.

    Any part, not only the first, because files come wrapped (``model.fc.weight``,
    ``backbone.classifier.weight``) and a re-id model wraps its trunk; whole parts,
    not substrings, so trunk layers such as ``conv_head`` or an SE block's ``fc1`` stay
    in the body. The one rule for loading re-id weights and fitting ImageNet weights.
    """
    return not HEAD_PARTS.isdisjoint(key.split("."))


def load_reid_weights(model: nn.Module, path: str | Path, partial: bool = False) -> dict[str, int]:
    """Load ``path`` into ``model`` in place; returns counts of what happened.

    ``skipped`` counts classifier tensors whose shape differs (weights trained
    on another number of identities); any other shape mismatch means another
    architecture and raises. So does a file that leaves part of the model
    (classifier aside) unloaded, or holds tensors the model has no place for
    (a resnet34 file fits every resnet18 key, and more): ``partial=True``
    (``--partial-weights``) accepts those on purpose. Raises
    :class:`HarnessError` when nothing loads.
    """
    path = Path(path)
    target = model.state_dict()
    source = align(extract_state_dict(_read(path), path), target)
    usable: dict[str, Tensor] = {}
    skipped = 0
    for key, value in source.items():
        if key not in target:
            continue
        if tuple(value.shape) != tuple(target[key].shape):
            if _is_classifier(key):
                skipped += 1
                continue
            raise HarnessError(
                f"{path} does not fit this re-id model: {key} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(target[key].shape)} (another architecture?)"
            )
        usable[key] = value
    if not usable:
        raise HarnessError(
            f"nothing in {path} matches the re-id model ({len(source)} tensors in the file, "
            f"e.g. {', '.join(list(source)[:3])}; "
            f"the model expects e.g. {', '.join(list(target)[:3])})"
        )
    missing = [k for k in target if k not in usable and not is_head(k)]
    unexpected = [k for k in source if k not in target and not is_head(k)]
    if (missing or unexpected) and not partial:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} of the model's {len(target)} tensors are not in the file "
                f"(e.g. {', '.join(missing[:3])})"
            )
        if unexpected:
            parts.append(
                f"{len(unexpected)} tensors of the file have no place in the model "
                f"(e.g. {', '.join(unexpected[:3])})"
            )
        raise HarnessError(
            f"{path} does not cover this re-id model: {'; '.join(parts)}. Weights of another "
            "architecture? Pass --partial-weights to load the matching part on purpose"
        )
    model.load_state_dict(usable, strict=False)
    return {
        "loaded": len(usable),
        "skipped": skipped,
        "missing": sum(k not in usable for k in target),
        "unexpected": sum(k not in target for k in source),
    }


def save_reid_weights(model: nn.Module, path: str | Path) -> Path:
    """Write a plain CPU state_dict atomically; ``load_reid_weights`` reads it back."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_torch_save(state, path)
