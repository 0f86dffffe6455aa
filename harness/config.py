"""Run and protocol configuration.

One frozen dataclass describes a run completely; it is serialised into every
result folder and every checkpoint so that a number can always be traced back
to the exact recipe that produced it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.kinds import component_fields

#: Bump whenever the MLR construction changes in a way that changes numbers.
PROTOCOL_VERSION = "mlr-2.0"

KERNELS = ("bicubic", "bilinear", "area", "nearest")


class ConfigError(HarnessError, ValueError):
    """A configuration that cannot run; the message says what to change."""


@dataclass(frozen=True)
class ProtocolConfig:
    """The multiple-low-resolution (MLR) recipe, explicit and seeded.

    lr_cameras: cameras whose query images are made LR; ``None`` means the
        dataset's declared default (recorded resolved in the run folder).
    ratios: downsampling factors; each query image gets one, drawn with ``seed``.
    trials: random gallery draws for single-gallery-shot evaluation.
    """

    lr_cameras: tuple[int, ...] | None = None
    ratios: tuple[float, ...] = (2.0, 3.0, 4.0)
    kernel: str = "bicubic"
    antialias: bool = True
    seed: int = 0
    trials: int = 10
    version: str = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if not self.ratios:
            raise ConfigError("protocol.ratios must name at least one downsampling ratio")
        bad = [r for r in self.ratios if not (math.isfinite(float(r)) and float(r) >= 1.0)]
        if bad:
            raise ConfigError(f"--ratios must all be finite and >= 1 (got {bad}); a ratio r makes an image r times smaller")
        if not 0 <= int(self.seed) < MAX_SEED:
            raise ConfigError(f"--protocol-seed must be in [0, 2^32) (got {self.seed})")
        if self.kernel not in KERNELS:
            raise ConfigError(f"protocol.kernel {self.kernel!r} is not one of {', '.join(KERNELS)}")
        if self.trials < 1:
            raise ConfigError("protocol.trials must be >= 1")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        if self.lr_cameras is not None:
            object.__setattr__(self, "lr_cameras", tuple(int(c) for c in self.lr_cameras))


#: seeds are combined arithmetically (seed * 1000 + k) and given to numpy, which takes 32 bits
MAX_SEED = 2**32

#: field -> (low, high, low exclusive): the run settings a number must respect
FIELD_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "lr": (0.0, None, True),
    "lr_warmup": (0.0, None, True),
    "lr_reid": (0.0, None, True),
    "weight_decay": (0.0, None, False),
    "label_smooth": (0.0, 0.999, False),
    "seed": (0, MAX_SEED - 1, False),
    "log_every": (1, None, False),
    "ckpt_every": (0, None, False),
    "keep_checkpoints": (1, None, False),
    "eval_batch_size": (1, None, False),
    "workers": (0, None, False),
    "grad_clip": (0.0, None, True),
}
DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")
#: images per identity in a triplet batch (harness.train.pk_indices)
TRIPLET_INSTANCES = 4


def _check_ranges(config: Any) -> None:
    """Every numeric setting against its meaning: one line naming the option and what is allowed."""
    for name, (low, high, exclusive) in FIELD_RANGES.items():
        value = getattr(config, name)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{flag} must be a number (got {value!r})")
        ok = math.isfinite(value) and (low is None or (value > low if exclusive else value >= low))
        ok = ok and (high is None or value <= high)
        if not ok:
            bounds = [f"> {low}" if exclusive else f">= {low}"] if low is not None else []
            bounds += [f"<= {high}"] if high is not None else []
            raise ConfigError(f"{flag} must be finite and {' and '.join(bounds)} (got {value!r})")
    kind = str(config.device).split(":")[0]
    if kind not in DEVICE_TYPES or (":" in str(config.device) and not str(config.device).split(":", 1)[1].isdigit()):
        raise ConfigError(f"--device must be auto, cpu, cuda, cuda:N or mps (got {config.device!r})")
    if config.triplet and config.batch_size < 2 * TRIPLET_INSTANCES:
        raise ConfigError(
            f"--triplet needs --batch-size >= {2 * TRIPLET_INSTANCES} (two identities of "
            f"{TRIPLET_INSTANCES} images each, so every anchor has a negative); got {config.batch_size}"
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Plugin-specific knobs live in ``options``.

    ``options`` holds every declared option of the selected plugins, defaults
    filled in, so the saved config is complete without reading plugin code.

    Two image sizes, kept apart on purpose (protocol ``mlr-2.0``):
    ``hr_height x hr_width`` is the HR size, the SR target from which LR queries
    and training pairs are made (``None``: the dataset's declared native size,
    filled in before ``config.json`` is final); ``height x width`` is the re-id
    model's input size, to which every image is resized on its way into re-id.
    """

    sr: str = "srgan"
    reid: str = "resnet18"
    reg: str = "none"
    disc: str = "srgan"
    data: str = "synthetic"
    data_root: str | None = None
    preset: str = "cpu"
    height: int = 64
    width: int = 32
    hr_height: int | None = None
    hr_width: int | None = None
    batch_size: int = 32
    reid_iters: int = 300
    sr_warmup_iters: int = 0
    sr_iters: int = 300
    lr: float = 1e-4
    lr_warmup: float = 5e-4
    lr_reid: float = 1e-3
    weight_decay: float = 5e-4
    label_smooth: float = 0.1
    triplet: bool = False
    random_erasing: float = 0.5
    res_aug: float = 0.0
    color_jitter: float = 0.0
    metric: str = "cosine"
    finetune_reid: bool = False
    reid_weights: str | None = None
    #: a pretrained SR checkpoint the SR plugin loads (the zoo: any spandrel-recognised file)
    sr_weights: str | None = None
    partial_weights: bool = False
    reid_init: str = "scratch"
    reid_requested: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    compile: bool = False
    channels_last: bool = False
    workers: int = 0
    log_every: int = 20
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    eval_batch_size: int = 128
    grad_clip: float | None = None
    skip_bad_images: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 4:
            raise ConfigError(f"image size {self.height}x{self.width} is too small (min 8x4)")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be >= 2")
        if (self.hr_height is None) != (self.hr_width is None):
            raise ConfigError("give both hr_height and hr_width, or neither (the dataset's native size)")
        if self.hr_height is not None and (self.hr_height < 8 or self.hr_width < 4):
            raise ConfigError(f"HR size {self.hr_height}x{self.hr_width} is too small (min 8x4)")
        if self.reid_iters < 0 or self.sr_iters < 0 or self.sr_warmup_iters < 0:
            raise ConfigError("iteration counts must be >= 0")
        _check_ranges(self)
        if self.metric not in ("cosine", "euclidean"):
            raise ConfigError(f"metric must be cosine or euclidean, not {self.metric!r}")
        for name in ("random_erasing", "res_aug", "color_jitter"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} is a probability in [0, 1]")
        object.__setattr__(self, "options", dict(self.options))

    @property
    def hr_size(self) -> tuple[int, int]:
        """The HR (SR target) size; the re-id size until the dataset's native size is filled in."""
        if self.hr_height is None or self.hr_width is None:
            return (self.height, self.width)
        return (int(self.hr_height), int(self.hr_width))

    @property
    def reid_size(self) -> tuple[int, int]:
        """The re-id model's input size."""
        return (int(self.height), int(self.width))

    def option(self, key: str, default: Any = None) -> Any:
        """A plugin option; the registry has already filled declared defaults."""
        return self.options.get(key, default)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=_jsonable))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        data = dict(data)
        proto = dict(data.pop("protocol", {}) or {})
        if proto.get("lr_cameras") is not None:
            proto["lr_cameras"] = tuple(proto["lr_cameras"])
        if "ratios" in proto:
            proto["ratios"] = tuple(proto["ratios"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**data, protocol=ProtocolConfig(**proto))


def coerce_setting(name: str, value: Any) -> Any:
    """A run setting from a string (``--set FIELD=VALUE``, a spec), typed like the field.

    The same rule as plugin options (:func:`harness.components.coerce_option`):
    the declared type decides. Fields whose default is ``None`` take the type
    their annotation names (``grad_clip: float | None``); ``none``/``null`` is None.
    """
    from harness.components import coerce_option

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    if name not in fields or not isinstance(value, str):
        return value
    f = fields[name]
    default = f.default if f.default is not dataclasses.MISSING else None
    if default is None:
        if value.lower() in ("none", "null"):
            return None
        annotation = str(f.type)
        default = 0.0 if "float" in annotation else 0 if "int" in annotation else ""
        if isinstance(default, bool) or "bool" in annotation:
            default = False
    return coerce_option(value, default)


def parse_hr_size(value: Any) -> tuple[int | None, int | None]:
    """``"128x64"`` or ``(128, 64)`` -> (128, 64); ``"native"`` -> (None, None): the dataset's own size."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "native":
            return (None, None)
        parts = text.split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return (int(parts[0]), int(parts[1]))
        raise ConfigError(f"HR size must look like 128x64 (height x width) or 'native', got {value!r}")
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ConfigError(f"HR size must look like 128x64 (height x width) or 'native', got {value!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


# ---------------------------------------------------------------------------
# Resolution: preset < explicit values, every declared plugin option filled in
# ---------------------------------------------------------------------------

_PROTOCOL_FIELDS = {f.name for f in dataclasses.fields(ProtocolConfig)}
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"options", "protocol"}

#: Which RunConfig field names the component of each kind (from the table of kinds).
COMPONENT_FIELDS = component_fields()


def selected_entries(config: RunConfig, registry: Any) -> list:
    """The registry entries a run uses: its SR, re-id, regulariser, dataset and D."""
    return [registry.lookup(kind, getattr(config, field)) for kind, field in COMPONENT_FIELDS]


def declared_options(config: RunConfig, registry: Any) -> dict[str, tuple[Any, Any]]:
    """``key -> (Option, Entry)`` over the selected components; a key two declare is an error.

    Options share one flat namespace in ``config.options`` (and in ``config.json``), so
    two selected components may not both declare a key: the error names both plugins,
    as a clash of component names does.
    """
    from harness.errors import PluginError

    declared: dict[str, tuple[Any, Any]] = {}
    for entry in selected_entries(config, registry):
        for key, option in entry.options.items():
            if key in declared and declared[key][1].name != entry.name:
                other = declared[key][1]
                raise PluginError(
                    f"option {key!r} is declared by {other.kind} {other.name!r} (plugin "
                    f"{other.plugin!r}) and by {entry.kind} {entry.name!r} (plugin {entry.plugin!r}); "
                    "options of the components a run uses must be unique: rename one"
                )
            declared.setdefault(key, (option, entry))
    return declared


def _unqualify(key: str, declared: Mapping[str, tuple[Any, Any]]) -> str:
    """``intact.lambda_a`` -> ``lambda_a`` when component ``intact`` declares it."""
    name, dot, bare = key.rpartition(".")
    if dot and bare in declared and declared[bare][1].name == name:
        return bare
    return key


def _named(key: str, value: Any) -> Any:
    """``coerce_setting`` whose error names the setting."""
    try:
        return coerce_setting(key, value)
    except ConfigError as exc:
        raise ConfigError(f"{key}={value!r}: {exc}") from None


def resolve_config(values: Mapping[str, Any], registry: Any) -> RunConfig:
    """Preset < explicit values; every declared option of the selected plugins filled in.

    ``values`` holds only what the user gave (None means "not given", timm's
    habit), with ``options`` and ``protocol`` as nested dicts. An option may be
    named bare (``lambda_a``) or by its component (``intact.lambda_a``); its
    preset value comes from its own declaration (:class:`harness.Option`).
    """
    from harness.components import coerce_option
    from harness.presets import default_preset, preset_values

    values = {k: v for k, v in values.items() if v is not None}
    preset = values.get("preset") or default_preset()
    base = preset_values(preset)
    user_options = dict(values.pop("options", {}) or {})
    user_protocol = {k: v for k, v in dict(values.pop("protocol", {}) or {}).items() if v is not None}
    unknown = sorted(set(values) - _RUN_FIELDS - {"hr_size"})
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    bad_proto = sorted(set(user_protocol) - _PROTOCOL_FIELDS)
    if bad_proto:
        raise ConfigError(f"unknown protocol settings: {', '.join(bad_proto)}")
    protocol = {**base.pop("protocol", {}), **user_protocol}
    hr_size = values.pop("hr_size", None)
    fields = {**base, **{k: _named(k, v) for k, v in values.items()}, "preset": preset}
    if hr_size is not None:  # "native" clears a preset's HR size
        fields["hr_height"], fields["hr_width"] = parse_hr_size(hr_size)
    config = RunConfig(**fields, protocol=ProtocolConfig(**protocol))
    if "|" in config.reid:  # a preference list: the first backbone whose initial weights are here
        from harness.pretrained import choose_backbone

        chosen, _ = choose_backbone(config.reid.split("|"), config.reid_init, registry)
        config = config.replace(reid=chosen, reid_requested=config.reid)

    declared = declared_options(config, registry)
    user_options = {_unqualify(k, declared): v for k, v in user_options.items()}
    stray = sorted(set(user_options) - set(declared))
    if stray:
        raise ConfigError(
            f"unknown option(s) {', '.join(stray)} for sr={config.sr}, reid={config.reid}, "
            f"reg={config.reg}, data={config.data}, disc={config.disc}; "
            f"their options: {', '.join(sorted(declared)) or '(none)'}"
        )
    options = {key: option.value_for(preset) for key, (option, _) in declared.items()}
    for key, value in user_options.items():
        try:
            options[key] = coerce_option(value, declared[key][0].default)
        except ConfigError as exc:
            raise ConfigError(f"-o {key}={value}: {exc}") from None
    for key, value in options.items():
        declared[key][0].check(key, value)
    return config.replace(options=options)
