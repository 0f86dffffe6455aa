"""Run and protocol configuration.

One frozen dataclass describes a run completely; it is serialised into every
result folder and every checkpoint so that a number can always be traced back
to the exact recipe that produced it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError

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
        bad = [r for r in self.ratios if not float(r) >= 1.0]
        if bad:
            raise ConfigError(f"protocol.ratios must all be >= 1 (got {bad}); a ratio r makes an image r times smaller")
        if self.kernel not in KERNELS:
            raise ConfigError(f"protocol.kernel {self.kernel!r} is not one of {', '.join(KERNELS)}")
        if self.trials < 1:
            raise ConfigError("protocol.trials must be >= 1")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        if self.lr_cameras is not None:
            object.__setattr__(self, "lr_cameras", tuple(int(c) for c in self.lr_cameras))


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
