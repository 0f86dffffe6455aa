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

from harness.errors import ConfigError
from harness.kinds import component_fields
from harness.options import coerce_option
from harness.settings import (
    PRESET_NAMES,
    Section,
    Setting,
    check_declared,
    declared_settings,
    nested,
    setting,
)

#: Bump whenever the MLR construction changes in a way that changes numbers.
PROTOCOL_VERSION = "mlr-2.2"

KERNELS = ("bicubic", "bilinear", "area", "nearest")
#: seeds are combined arithmetically (seed * 1000 + k) and given to numpy, which takes 32 bits
MAX_SEED = 2**32
DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")
#: images per identity in a triplet batch (harness.train.pk_indices)
TRIPLET_INSTANCES = 4

_P = Section.PROTOCOL


@dataclass(frozen=True)
class ProtocolConfig:
    """The multiple-low-resolution (MLR) recipe, explicit and seeded.

    lr_cameras: cameras whose query images are made LR; ``None`` means the
        dataset's declared default (recorded resolved in the run folder).
    ratios: downsampling factors; each query image gets one, drawn with ``seed``.
    trials: random gallery draws for single-gallery-shot evaluation.
    val_ids: share of the training identities held out as the validation split
        (``mlr-2.1``; its single-gallery-shot gallery since ``mlr-2.2``:
        :func:`harness.data.mlr.hold_out_validation`).
    """

    lr_cameras: tuple[int, ...] | None = setting(
        None,
        "Cameras whose queries are made LR, e.g. 0.",
        section=_P,
        metavar="INTS",
        shown_default="the dataset's",
    )
    ratios: tuple[float, ...] = setting(
        (2.0, 3.0, 4.0),
        "MLR downsampling ratios, e.g. 2,3,4; a ratio r makes an image r times smaller.",
        section=_P,
        min=1.0,
        metavar="FLOATS",
    )
    kernel: str = setting(
        "bicubic", "Downsampling kernel of LR images.", section=_P, choices=KERNELS
    )
    antialias: bool = setting(True, "Antialias when downsampling.", section=_P)
    seed: int = setting(
        0,
        "Seed of the MLR split and ratios.",
        section=_P,
        min=0,
        max=MAX_SEED - 1,
        flag="--protocol-seed",
        recipe=False,
    )
    trials: int = setting(
        10,
        "Random gallery draws for single-gallery-shot CMC.",
        section=_P,
        min=1,
        presets={"smoke": 2},
        trains=False,
    )
    val_ids: float = setting(
        0.15,
        "Share of the training identities held out as a validation split with its own LR "
        "queries and gallery (0 turns it off); tuning and early choices read it, never test.",
        section=_P,
        min=0.0,
        max=0.5,
        flag="--val-ids",
    )
    #: the key of a cached stage holds PROTOCOL_VERSION itself; a run folder's config keeps the
    #: version it was made under, and the split is built the way that version built it
    version: str = setting(
        PROTOCOL_VERSION, "Version of the MLR construction.", section=_P, flag=None, trains=False
    )

    def __post_init__(self) -> None:
        check_declared(self)
        if not self.ratios:
            raise ConfigError("protocol.ratios must name at least one downsampling ratio")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        if self.lr_cameras is not None:
            object.__setattr__(self, "lr_cameras", tuple(int(c) for c in self.lr_cameras))


_C, _D, _R, _W, _S, _T = (
    Section.COMPONENTS,
    Section.DATA,
    Section.REID,
    Section.WARM_START,
    Section.SR,
    Section.RUNTIME,
)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Plugin-specific knobs live in ``options``.

    ``options`` holds every declared option of the selected plugins, defaults
    filled in, so the saved config is complete without reading plugin code.

    Two image sizes, kept apart on purpose (since protocol ``mlr-2.0``):
    ``hr_height x hr_width`` is the HR size, the SR target from which LR queries
    and training pairs are made (``None``: the dataset's declared native size,
    filled in before ``config.json`` is final); ``height x width`` is the re-id
    model's input size, to which every image is resized on its way into re-id.

    Every field but ``options`` is declared once with :func:`harness.settings.setting`
    (its section, range, help, preset values); the CLI, validation, presets, cache
    keys and the leaderboard read it from there.
    """

    sr: str = setting(
        "srgan",
        "SR model (harness list); a method that fixes its own sets it (rain, cad: bicubic, "
        "no SR model; csr-gan: csr).",
        section=_C,
    )
    reid: str = setting(
        "resnet18",
        "Re-id model: a registered name or any timm model name; "
        "a|b|c takes the first whose initial weights are here.",
        section=_C,
    )
    reg: str = setting("none", "Regulariser: none, gan, intact, ...", section=_C)
    disc: str = setting("srgan", "Discriminator for GAN-based regularisers.", section=_C)
    data: str = setting("synthetic", "Dataset (synthetic: built in, no files needed).", section=_C)
    data_root: str | None = setting(
        None,
        "Folder holding the dataset in its official layout.",
        section=_D,
        metavar="PATH",
        recipe=False,
    )
    preset: str = setting(
        "cpu",
        "Bundle of defaults.",
        section=_T,
        choices=PRESET_NAMES,
        trains=False,
        shown_default="paper with CUDA, cpu without",
    )
    height: int = setting(
        64,
        "Re-id input height (every image is resized to it on the way into re-id).",
        section=_R,
        min=8,
        presets={"smoke": 32, "cpu": 64, "paper": 256},
    )
    width: int = setting(
        32, "Re-id input width.", section=_R, min=4, presets={"smoke": 16, "cpu": 32, "paper": 128}
    )
    hr_height: int | None = setting(
        None,
        "HR size, the SR target LR queries are made from ('native': the dataset's native size).",
        section=_D,
        min=8,
        presets={"smoke": 32, "cpu": 64},
        flag="--hr-size",
        metavar="HxW",
        pair="hr_width",
        shown_default="native",
    )
    hr_width: int | None = setting(
        None,
        "HR width (with hr_height: --hr-size).",
        section=_D,
        min=4,
        presets={"smoke": 16, "cpu": 32},
        flag=None,
    )
    batch_size: int = setting(
        32,
        "Images per training batch, in every stage.",
        section=_T,
        min=2,
        presets={"smoke": 8, "cpu": 32, "paper": 64},
    )
    reid_iters: int = setting(
        300,
        "Stage 0 iterations (re-id on HR).",
        section=_R,
        min=0,
        presets={"smoke": 4, "cpu": 400, "paper": 6000},
    )
    sr_warmup_iters: int = setting(
        0,
        "Pixel-loss warm start of G before stage 1 (SRGAN's SRResNet stage); cached.",
        section=_W,
        min=0,
        presets={"smoke": 2, "cpu": 500, "paper": 4000},
    )
    sr_iters: int = setting(
        300,
        "Stage 1 iterations (Algorithm 1).",
        section=_S,
        min=0,
        presets={"smoke": 3, "cpu": 250, "paper": 6000},
    )
    lr: float = setting(
        1e-4,
        "Learning rate of G (and default of other modules).",
        section=_S,
        min=0.0,
        exclusive_min=True,
    )
    lr_warmup: float = setting(
        5e-4,
        "Learning rate of G's pixel-loss warm start.",
        section=_W,
        min=0.0,
        exclusive_min=True,
        presets={"paper": 2e-4},
    )
    lr_reid: float = setting(
        1e-3,
        "Learning rate of the re-id model in stage 0.",
        section=_R,
        min=0.0,
        exclusive_min=True,
    )
    weight_decay: float = setting(5e-4, "Adam weight decay.", section=_R, min=0.0)
    label_smooth: float = setting(
        0.1, "Label smoothing of the ID loss.", section=_R, min=0.0, max=0.999
    )
    triplet: bool = setting(False, "Add torchreid's triplet loss in stage 0.", section=_R)
    random_erasing: float = setting(
        0.5, "Probability of random erasing in stage 0.", section=_R, probability=True
    )
    res_aug: float = setting(
        0.0, "Probability of resolution augmentation in stage 0.", section=_R, probability=True
    )
    color_jitter: float = setting(
        0.0,
        "Probability of brightness/contrast/saturation jitter in stage 0.",
        section=_R,
        probability=True,
    )
    metric: str = setting(
        "cosine",
        "Distance between re-id features.",
        section=_P,
        choices=("cosine", "euclidean"),
        trains=False,
    )
    finetune_reid: bool = setting(
        False,
        "Also train re-id in the G step, on HR and SR images together "
        "(off: Algorithm 1 outputs an SR model).",
        section=_S,
    )
    reid_weights: str | None = setting(
        None, "Local re-id weights (state_dict); never downloaded.", section=_R, metavar="PATH"
    )
    #: a pretrained SR checkpoint the SR plugin loads (the zoo: any spandrel-recognised file)
    sr_weights: str | None = setting(
        None,
        "Local pretrained SR checkpoint (.pth read with weights_only=True, or .safetensors) for an "
        "SR-zoo --sr, e.g. ESRGAN, SwinIR, HAT; never downloaded.",
        section=_W,
        metavar="PATH",
    )
    partial_weights: bool = setting(
        False,
        "Accept --reid-weights or a --reid-init file that cover only part of the re-id model "
        "(on purpose).",
        section=_R,
    )
    reid_init: str = setting(
        "scratch",
        "Initial backbone weights: scratch, imagenet (found on this machine: "
        "timm/torchvision caches, then weight packages; never downloaded), or a file "
        "PATH.",
        section=_R,
    )
    reid_requested: str | None = setting(
        None, "The --reid preference list a backbone was chosen from.", section=_C, flag=None
    )
    seed: int = setting(0, "Run seed.", section=_T, min=0, max=MAX_SEED - 1, recipe=False)
    device: str = setting(
        "auto",
        "auto, cpu, cuda, cuda:1 ... (a cache key holds the device type).",
        section=_T,
        trains=False,
        recipe=False,
    )
    amp: bool = setting(False, "bf16 autocast (GPU only).", section=_T, presets={"paper": True})
    compile: bool = setting(False, "torch.compile the models (GPU).", section=_T, trains=False)
    channels_last: bool = setting(
        False,
        "channels_last memory format for the models and batches (faster convolutions on a GPU "
        "and on x86 CPUs; benchmarks/cpu_levers.py).",
        section=_T,
        presets={"cpu": True, "paper": True},
    )
    workers: int = setting(
        0,
        "Image-decoding worker processes.",
        section=_T,
        min=0,
        presets={"paper": 8},
        trains=False,
        recipe=False,
    )
    log_every: int = setting(
        20,
        "Iterations between log lines.",
        section=_T,
        min=1,
        presets={"smoke": 2, "cpu": 25, "paper": 100},
        trains=False,
        recipe=False,
    )
    ckpt_every: int = setting(
        100,
        "Iterations between checkpoints (0: only at stage ends).",
        section=_T,
        min=0,
        presets={"smoke": 50, "cpu": 100, "paper": 1000},
        trains=False,
        recipe=False,
    )
    val_every: int = setting(
        0,
        "Stage-1 iterations between points of the validation curve (metrics.json's val_curve: "
        "the SR query's validation Rank-1, mAP and PSNR; 0: none). Reads the validation split "
        "only and changes no result.",
        section=_T,
        min=0,
        trains=False,
        recipe=False,
    )
    keep_checkpoints: int = setting(
        2,
        "Newest checkpoints kept on disk; the frozen re-id model is one extra "
        "file, reid-stage0.pt, written once after stage 0.",
        section=_T,
        min=1,
        trains=False,
        recipe=False,
    )
    eval_batch_size: int = setting(
        128,
        "Images per batch in evaluation.",
        section=_T,
        min=1,
        presets={"smoke": 64},
        trains=False,
        recipe=False,
    )
    trackers: tuple[str, ...] = setting(
        (),
        "Experiment tracker to log the run to as well (harness list tracker: tensorboard, "
        "mlflow, none); repeat the option for several. Never changes a result.",
        section=_T,
        flag="--tracker",
        trains=False,
        recipe=False,
        shown_default="none",
        metavar="NAME",
    )
    tracker_uri: str | None = setting(
        None,
        "Where a tracker keeps its runs: for mlflow a folder or sqlite:///FILE.db "
        "(a local store; no server).",
        section=_T,
        trains=False,
        recipe=False,
        shown_default="mlruns/ beside the run folder",
        metavar="URI",
    )
    grad_clip: float | None = setting(
        None,
        "Clip the gradient norm of G's warm start and of every stage-1 step.",
        section=_S,
        min=0.0,
        exclusive_min=True,
        shown_default="off",
    )
    skip_bad_images: bool = setting(
        False, "Skip and count unreadable images instead of failing.", section=_D
    )
    options: Mapping[str, Any] = field(default_factory=dict)
    protocol: ProtocolConfig = nested(ProtocolConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trackers", tracker_names(self.trackers))
        validate(self)
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
        for key in ("lr_cameras", "ratios"):  # JSON's lists; anything else meets the check
            if isinstance(proto.get(key), list):
                proto[key] = tuple(proto[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**data, protocol=ProtocolConfig(**proto))


#: Every setting of a run, protocol ones as ``protocol.<field>``, in declaration order.
SETTINGS: tuple[Setting, ...] = declared_settings(RunConfig)
#: name -> setting
SETTING: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _check_size(what: str, height: Any, width: Any, height_of: str, width_of: str) -> None:
    """Both sides against their declared minimum, in one line naming the size."""
    low_h, low_w = SETTING[height_of].min, SETTING[width_of].min
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (height, width))
    if numbers and (height < low_h or width < low_w):
        raise ConfigError(f"{what} {height}x{width} is too small (min {low_h:g}x{low_w:g})")


def validate(config: RunConfig) -> None:
    """The one check of a run's settings: a clear line naming the option, or nothing.

    Each setting against its own declaration (type, range, choices), after the rules
    that tie settings together. ``RunConfig`` runs it when made, so a value from the
    CLI, a bench spec or a saved ``config.json`` meets the same check and message.
    """
    _check_size("image size", config.height, config.width, "height", "width")
    if (config.hr_height is None) != (config.hr_width is None):
        raise ConfigError(
            "give both hr_height and hr_width, or neither (the dataset's native size)"
        )
    if config.hr_height is not None:
        _check_size("HR size", config.hr_height, config.hr_width, "hr_height", "hr_width")
    check_declared(config)
    kind, colon, index = str(config.device).partition(":")
    if kind not in DEVICE_TYPES or (colon and not index.isdigit()):
        raise ConfigError(
            f"--device must be auto, cpu, cuda, cuda:N or mps (got {config.device!r})"
        )
    if config.val_every and not config.protocol.val_ids:
        raise ConfigError(
            f"--val-every {config.val_every} draws a validation curve, which needs a validation "
            "split: set --val-ids above 0 (default 0.15), or leave --val-every at 0"
        )
    if config.triplet and config.batch_size < 2 * TRIPLET_INSTANCES:
        raise ConfigError(
            f"--triplet needs --batch-size >= {2 * TRIPLET_INSTANCES} (two identities of "
            f"{TRIPLET_INSTANCES} images each, so every anchor has a negative); "
            f"got {config.batch_size}"
        )


def tracker_names(value: Any) -> tuple[str, ...]:
    """``--tracker`` values as a tuple of names: ``"a,b"`` (``--set``, a spec) or a list
    (``config.json``) alike; ``none`` and repeats dropped, so no tracker is opened twice."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    names = [str(v).strip() for v in items]
    return tuple(dict.fromkeys(n for n in names if n and n.lower() != "none"))


def coerce_setting(name: str, value: Any) -> Any:
    """A run setting from a string (``--set FIELD=VALUE``, a spec), typed like the field.

    The same rule as plugin options (:func:`harness.options.coerce_option`):
    the declared type decides. Settings whose default is ``None`` take the type
    their annotation names (``grad_clip: float | None``); ``none``/``null`` is None.
    """
    declared = SETTING.get(name)  # protocol settings too, by their dotted names
    if declared is None or not isinstance(value, str):
        return value
    if declared.many and declared.kind is str:  # names, comma-separated (--set trackers=a,b)
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if declared.many:  # numbers, comma-separated (--set protocol.ratios=2,4)
        zero = {float: 0.0, int: 0}.get(declared.kind, "")
        return tuple(coerce_option(v.strip(), zero) for v in value.split(",") if v.strip())
    default = declared.default
    if default is None:
        if value.lower() in ("none", "null"):
            return None
        default = {bool: False, float: 0.0, int: 0}.get(declared.kind, "")
    return coerce_option(value, default)


def parse_hr_size(value: Any) -> tuple[int | None, int | None]:
    """``"128x64"`` or ``(128, 64)`` -> (128, 64); ``"native"`` -> (None, None): the
    dataset's own size."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "native":
            return (None, None)
        parts = text.split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return (int(parts[0]), int(parts[1]))
        raise ConfigError(
            f"HR size must look like 128x64 (height x width) or 'native', got {value!r}"
        )
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ConfigError(f"HR size must look like 128x64 (height x width) or 'native', got {value!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


_PROTOCOL_FIELDS = {f.name for f in dataclasses.fields(ProtocolConfig)}
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"options", "protocol"}

#: Which RunConfig field names the component of each kind (from the table of kinds).
COMPONENT_FIELDS = component_fields()
