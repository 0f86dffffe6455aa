"""SR backbones from the SR zoo (spandrel), as re-id backbones come from timm.

Why spandrel: it is to SR what timm is to classification: the published
architectures (ESRGAN's RRDB net, RCAN, SwinIR, HAT, DAT, SPAN, ...) as plain
``nn.Module`` classes, and a loader that recognises a checkpoint's architecture
from its keys. It is imported inside the factories, so ``harness list`` stays fast.

Every name in :data:`ZOO` is built at the size its preset declares
(``Option(..., presets={"smoke": ..., "cpu": ..., "paper": ...})``: tiny on
``smoke``, small on ``cpu``, the published size on ``paper``), and its size
knobs are ``-o`` options listed by ``harness list --verbose``. Architectures
that are not x2-x4 super-resolvers, or that break the SR contract, are listed
in :data:`EXCLUDED` with the reason; ``harness list`` shows the zoo as one
resolver line (case-insensitive spandrel ids such as ``RCAN`` resolve too).

Any ratio, one model (:class:`ZooSR`): a spandrel model upscales by one fixed
integer scale ``s``, built for the largest configured ratio (``sr_scale=0``,
e.g. 4 for the MLR ratios 2, 3, 4). The LR input is super-resolved at the
model's own scale, never shrunk first (shrinking a x2 query to make a x4 model
land on the HR size would throw away the detail it has), and the model's
*detail* over bicubic is resized onto the HR size::

    y = bicubic(x, out) + gate * resize(net(x) - bicubic(x, s * size), out)

At ratio ``s`` this is ``net(x)`` itself when ``gate == 1`` (a pretrained
checkpoint behaves exactly as published); at other ratios the detail is
resampled. ``gate`` is a learned scalar, 1 for ``--sr-weights`` and small
(``ZERO_GATE``) from scratch, so an untrained generator starts at bicubic
quality, like the built-in SRResNet (the CPU schedule is too short to learn
bicubic from noise). Transformers need their input padded to window multiples
(spandrel's ``size_requirements``): the input is reflect-padded and the padding
cropped from the output.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Option, PluginError, RunConfig, hookimpl, read_options
from harness.config import ConfigError
from harness.contracts import batchnorm_layers

from .bicubic import bicubic_resize
from .zoo_weights import load_sr_weights

#: the gate's initial value when training from scratch: small, not zero, so the
#: net's parameters get a gradient from the first step (Adam rescales it).
ZERO_GATE = 0.01

#: the scales a zoo model may be built for
SCALES = (2, 3, 4)

SCALE_OPTION = Option(
    0,
    "the model's native upscale factor; 0: the largest configured ratio "
    "(rounded up, within 2..4), or the checkpoint's with --sr-weights",
    choices=(0, 2, 3, 4),
)


def _sizes(smoke: Any, cpu: Any, paper: Any, help: str, **limits: Any) -> Option:
    """An option whose default is the published (``paper``) size."""
    return Option(paper, help, presets={"smoke": smoke, "cpu": cpu, "paper": paper}, **limits)


@dataclass(frozen=True)
class ZooEntry:
    """One architecture: its spandrel class, how its scale is passed, its size options."""

    arch: str  #: spandrel's architecture id (``MAIN_REGISTRY``), also its module name
    cls: str  #: the class in ``spandrel.architectures.<arch>``
    scale_kw: str  #: the constructor argument that sets the upscale factor
    summary: str
    options: Mapping[str, Option] = field(default_factory=dict)
    #: constructor arguments fixed for every size
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: turns option values into constructor arguments where they differ (lists of stages)
    expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def _stages(depth_key: str = "depths", heads_key: str = "num_heads") -> Callable[[dict], dict]:
    """``stages`` x ``depth`` (+ ``heads``) -> per-stage lists, as Swin-style constructors take."""

    def expand(o: dict[str, Any]) -> dict[str, Any]:
        o = dict(o)
        stages, depth, heads = o.pop("stages"), o.pop("depth"), o.pop("heads")
        return {**o, depth_key: [depth] * stages, heads_key: [heads] * stages}

    return expand


def _swin_options(embed: tuple, stages: tuple, depth: tuple, heads: tuple, window: tuple) -> dict:
    return {
        "embed_dim": _sizes(*embed, "transformer width (a multiple of heads)", min=1),
        "stages": _sizes(*stages, "residual transformer groups", min=1),
        "depth": _sizes(*depth, "transformer blocks per group", min=1),
        "heads": _sizes(*heads, "attention heads", min=1),
        "window_size": _sizes(*window, "attention window (pixels)", min=2),
    }


ZOO: dict[str, ZooEntry] = {
    "esrgan": ZooEntry(
        "ESRGAN",
        "ESRGAN",
        "scale",
        "ESRGAN's RRDB net (Wang et al. 2018; also Real-ESRGAN x4plus)",
        {
            "num_filters": _sizes(8, 32, 64, "feature channels", min=1),
            "num_blocks": _sizes(1, 3, 23, "residual-in-residual dense blocks", min=1),
        },
    ),
    "rcan": ZooEntry(
        "RCAN",
        "RCAN",
        "scale",
        "RCAN, residual channel attention (Zhang et al. 2018)",
        {
            "n_resgroups": _sizes(1, 2, 10, "residual groups", min=1),
            "n_resblocks": _sizes(1, 4, 20, "channel-attention blocks per group", min=1),
            "n_feats": _sizes(16, 32, 64, "feature channels", min=1),
            "reduction": _sizes(4, 8, 16, "channel-attention reduction", min=1),
        },
    ),
    "swinir": ZooEntry(
        "SwinIR",
        "SwinIR",
        "upscale",
        "SwinIR, Swin transformer SR (Liang et al. 2021), classical pixel-shuffle variant",
        _swin_options((12, 24, 180), (1, 2, 6), (1, 2, 6), (2, 4, 6), (4, 8, 8)),
        fixed={"img_size": 64, "mlp_ratio": 2.0, "upsampler": "pixelshuffle", "img_range": 1.0},
        expand=_stages(),
    ),
    "swin2sr": ZooEntry(
        "Swin2SR",
        "Swin2SR",
        "upscale",
        "Swin2SR, SwinV2 transformer SR (Conde et al. 2022)",
        _swin_options((12, 24, 180), (1, 2, 6), (1, 2, 6), (2, 4, 6), (4, 8, 8)),
        fixed={"img_size": 64, "mlp_ratio": 2.0, "upsampler": "pixelshuffle", "img_range": 1.0},
        expand=_stages(),
    ),
    "hat": ZooEntry(
        "HAT",
        "HAT",
        "upscale",
        "HAT, hybrid attention transformer (Chen et al. 2023)",
        {
            **_swin_options((12, 24, 180), (1, 2, 6), (1, 2, 6), (2, 4, 6), (4, 8, 16)),
            "squeeze_factor": _sizes(4, 8, 30, "channel-attention squeeze", min=1),
        },
        fixed={"img_size": 64, "mlp_ratio": 2.0, "upsampler": "pixelshuffle", "img_range": 1.0},
        expand=_stages(),
    ),
    "span": ZooEntry(
        "SPAN",
        "SPAN",
        "upscale",
        "SPAN, swift parameter-free attention (Wan et al. 2024, NTIRE 2024 efficient SR winner)",
        {"feature_channels": _sizes(8, 24, 48, "feature channels", min=1)},
        fixed={"num_in_ch": 3, "num_out_ch": 3},
    ),
    "compact": ZooEntry(
        "Compact",
        "Compact",
        "upscale",
        "Real-ESRGAN Compact (SRVGGNet), a plain conv stack with a nearest-neighbour residual",
        {
            "num_feat": _sizes(8, 32, 64, "feature channels", min=1),
            "num_conv": _sizes(2, 8, 16, "conv layers", min=1),
        },
    ),
    "omnisr": ZooEntry(
        "OmniSR",
        "OmniSR",
        "up_scale",
        "Omni-SR, omni self-attention (Wang et al. 2023)",
        {
            "num_feat": _sizes(8, 32, 64, "feature channels", min=1),
            "res_num": _sizes(1, 2, 5, "residual layers", min=1),
        },
    ),
    "safmn": ZooEntry(
        "SAFMN",
        "SAFMN",
        "upscaling_factor",
        "SAFMN, spatially-adaptive feature modulation (Sun et al. 2023)",
        {
            "dim": _sizes(8, 24, 36, "feature channels", min=1),
            "n_blocks": _sizes(1, 4, 8, "feature-mixing blocks", min=1),
        },
    ),
    "plksr": ZooEntry(
        "PLKSR",
        "PLKSR",
        "upscaling_factor",
        "PLKSR, partial large-kernel CNN (Lee et al. 2024)",
        {
            "dim": _sizes(16, 32, 64, "feature channels", min=1),
            "n_blocks": _sizes(1, 6, 28, "blocks", min=1),
            "kernel_size": _sizes(7, 13, 17, "large-kernel size (odd)", min=1),
        },
    ),
    "ditn": ZooEntry(
        "DITN",
        "DITN",
        "upscale",
        "DITN, deployment-friendly inception transformer (Liu et al. 2023)",
        {
            "dim": _sizes(12, 24, 60, "feature channels", min=1),
            "ITL_blocks": _sizes(1, 2, 4, "inception transformer layers", min=1),
            "SAL_blocks": _sizes(1, 2, 4, "spatial-aware layers per block", min=1),
            "patch_size": _sizes(4, 8, 8, "attention patch size", min=1),
        },
    ),
    "craft": ZooEntry(
        "CRAFT",
        "CRAFT",
        "upscale",
        "CRAFT, cross-refinement with frequency features (Li et al. 2023)",
        {
            "embed_dim": _sizes(12, 24, 48, "transformer width (a multiple of heads)", min=1),
            "stages": _sizes(1, 2, 4, "residual groups", min=1),
            "depth": _sizes(1, 2, 2, "blocks per group", min=1),
            "heads": _sizes(2, 4, 6, "attention heads", min=1),
        },
        expand=_stages(),
    ),
    "atd": ZooEntry(
        "ATD",
        "ATD",
        "upscale",
        "ATD, adaptive token dictionary transformer (Zhang et al. 2024)",
        {
            **_swin_options((12, 24, 210), (1, 2, 6), (1, 2, 6), (2, 4, 6), (4, 8, 16)),
            "num_tokens": _sizes(8, 16, 128, "dictionary tokens", min=1),
            "category_size": _sizes(16, 64, 256, "tokens per attention category", min=1),
        },
        fixed={"img_size": 64, "upsampler": "pixelshuffle", "img_range": 1.0},
        expand=_stages(),
    ),
    "drct": ZooEntry(
        "DRCT",
        "DRCT",
        "upscale",
        "DRCT, dense residual connected transformer (Hsu et al. 2024)",
        _swin_options((12, 24, 180), (1, 2, 6), (1, 2, 6), (2, 4, 6), (4, 8, 16)),
        fixed={"img_size": 64, "upsampler": "pixelshuffle", "img_range": 1.0},
        expand=_stages(),
    ),
    "rgt": ZooEntry(
        "RGT",
        "RGT",
        "upscale",
        "RGT, recursive-generalization transformer (Chen et al. 2024)",
        {
            "embed_dim": _sizes(12, 24, 180, "transformer width (a multiple of heads)", min=1),
            "stages": _sizes(1, 2, 8, "residual groups", min=1),
            "depth": _sizes(2, 2, 6, "blocks per group", min=1),
            "heads": _sizes(2, 4, 6, "attention heads", min=1),
        },
        fixed={"img_size": 64, "img_range": 1.0},
        expand=_stages("depth", "num_heads"),
    ),
    "mosr": ZooEntry(
        "MoSR",
        "MoSR",
        "upscale",
        "MoSR, a GatedCNN SR network (community, 2024)",
        {
            "dim": _sizes(8, 24, 64, "feature channels", min=1),
            "n_block": _sizes(1, 4, 24, "blocks", min=1),
        },
    ),
    "moesr": ZooEntry(
        "MoESR",
        "MoESR",
        "scale",
        "MoESR, a mixture-of-experts SR network (community, 2024)",
        {
            "dim": _sizes(8, 24, 64, "feature channels", min=1),
            "n_blocks": _sizes(1, 3, 9, "blocks", min=1),
        },
    ),
    "fdat": ZooEntry(
        "FDAT",
        "FDAT",
        "scale",
        "FDAT, fast dual aggregation transformer (community, 2025)",
        {
            "embed_dim": _sizes(16, 32, 120, "transformer width (a multiple of num_heads)", min=1),
            "num_groups": _sizes(1, 2, 4, "residual groups", min=1),
            "depth_per_group": _sizes(1, 2, 3, "blocks per group", min=1),
            "num_heads": _sizes(2, 4, 4, "attention heads", min=1),
        },
    ),
}

#: spandrel architectures that are not offered, and why
EXCLUDED: dict[str, str] = {
    # not super-resolution: restoration at scale 1, face restoration, inpainting
    "DnCNN": "a denoiser (scale 1)",
    "DRUNet": "a denoiser (scale 1)",
    "FBCNN": "a JPEG artefact remover (scale 1)",
    "SCUNet": "a blind denoiser (scale 1)",
    "NAFNet": "a deblurrer/denoiser (scale 1)",
    "KBNet": "a denoiser/deblurrer (scale 1)",
    "Uformer": "a deblurrer/denoiser (scale 1)",
    "FFTformer": "a deblurrer (scale 1)",
    "MixDehazeNet": "a dehazer (scale 1)",
    "RetinexFormer": "a low-light enhancer (scale 1)",
    "HVICIDNet": "a low-light enhancer (scale 1)",
    "SAFMNBCIE": "SAFMN for compressed-image enhancement (scale 1)",
    "GFPGAN": "face restoration on aligned 512x512 faces, not a general upscaler",
    "RestoreFormer": "face restoration on aligned 512x512 faces, not a general upscaler",
    "LaMa": "inpainting (takes a mask), not SR",
    # super-resolvers that do not fit the contract
    "DAT": "its attention blocks use BatchNorm (a depth-wise conv's norm), whose running "
    "statistics would mix the MLR ratios (every batch holds one ratio; "
    "see plugins/sr/srresnet.py)",
    "SeemoRe": "its forward fails on LR-query-sized inputs in spandrel 0.4.2 (a 16x16 input raises "
    "a shape error even at the published size)",
    "DCTLSA": "its attention blocks use BatchNorm, whose running statistics would mix "
    "the MLR ratios",
    "SwiftSRGAN": "its body uses BatchNorm, whose running statistics would mix the MLR ratios "
    "(every batch holds one ratio; see plugins/sr/srresnet.py)",
    "AuraSR": "a 600M-parameter GAN upsampler built for one fixed 64x64 input size",
    "IPT": "a multi-task ImageNet-pretrained transformer over fixed 48x48 patches, no x3 head "
    "without its pretraining; far too large to train here",
    "MMRealSR": "its forward needs degradation-strength inputs besides the image",
    "RealCUGAN": "its networks need inputs of at least 32-40 pixels (x2/x3/x4 LR queries are "
    "smaller), and its published weights are anime-only",
    "GRL": "a 20M-parameter anchored-stripe transformer whose small variants spandrel cannot "
    "build (stripe sizes are fixed to the image size)",
}


def _arch_module(arch: str) -> Any:
    return importlib.import_module(f"spandrel.architectures.{arch}")


def auto_scale(config: RunConfig) -> int:
    """The largest configured ratio, rounded up, within :data:`SCALES`."""
    top = max(config.protocol.ratios)
    return min(max(math.ceil(top - 1e-6), SCALES[0]), SCALES[-1])


def pad_to(x: Tensor, minimum: int, multiple_of: int, square: bool) -> Tensor:
    """Reflect-pad (then replicate, where reflection runs out) bottom and right."""
    h, w = int(x.shape[-2]), int(x.shape[-1])

    def up(n: int) -> int:
        n = max(n, minimum)
        return -(-n // multiple_of) * multiple_of

    th, tw = up(h), up(w)
    if square:
        th = tw = max(th, tw)
    if (th, tw) == (h, w):
        return x
    ph, pw = th - h, tw - w
    rh, rw = min(ph, h - 1), min(pw, w - 1)
    if rh or rw:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if ph - rh or pw - rw:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    return x


class ZooSR(nn.Module):
    """A fixed-scale spandrel model serving any ratio (see the module docstring)."""

    def __init__(
        self, net: nn.Module, scale: int, size_requirements: Any = None, gate: float = ZERO_GATE
    ):
        super().__init__()
        norms = batchnorm_layers(net)  # why not: harness.contracts.BATCHNORM_IN_G
        if norms:
            raise PluginError(
                f"{type(net).__name__} contains BatchNorm ({norms[0]}), whose running statistics "
                "would mix the MLR ratios; it cannot serve as G"
            )
        self.net = net
        self.scale = int(scale)
        req = size_requirements
        self.pad = (
            int(getattr(req, "minimum", 0)),
            int(getattr(req, "multiple_of", 1)),
            bool(getattr(req, "square", False)),
        )
        self.gate = nn.Parameter(torch.tensor(float(gate)))
        #: what ``--sr-weights`` loaded (path, sha256, architecture, scale); the core records it
        self.loaded_weights: dict[str, Any] | None = None

    def forward(self, x_lr: Tensor, out_size: tuple[int, int]) -> Tensor:
        out_size = (int(out_size[0]), int(out_size[1]))
        h, w = int(x_lr.shape[-2]), int(x_lr.shape[-1])
        native = (h * self.scale, w * self.scale)
        # a copy always: some spandrel forwards scale their input in place (RCAN: x *= 255)
        y = self.net(pad_to(x_lr, *self.pad).clone())[..., : native[0], : native[1]]
        detail = y - bicubic_resize(x_lr, native)
        out = bicubic_resize(x_lr, out_size) + self.gate * bicubic_resize(detail, out_size)
        return out if self.training else out.clamp(0.0, 1.0)


def constructor_kwargs(entry: ZooEntry, opts: Mapping[str, Any], scale: int) -> dict[str, Any]:
    """The spandrel class's arguments for these option values and this scale."""
    sizes = {k: v for k, v in opts.items() if k != "sr_scale"}
    if entry.expand is not None:
        sizes = entry.expand(sizes)
    return {**entry.fixed, **sizes, entry.scale_kw: scale}


def describe_net(arch: str, net: nn.Module) -> Any:
    """spandrel's descriptor of ``net`` (its scale, purpose and size requirements), read
    back from its state dict exactly as a checkpoint of it would be."""
    # heavy: imported by the factories only, so `harness list` stays fast
    from spandrel import MAIN_REGISTRY

    support = MAIN_REGISTRY.get(arch)
    return support.architecture.load(dict(net.state_dict()))


def from_checkpoint(path: str, entry: ZooEntry, name: str, scale: int | None) -> ZooSR:
    """``--sr-weights``: the checkpoint's network at gate 1 (it behaves as published),
    with what was loaded kept as ``loaded_weights`` for the run to record."""
    ckpt = load_sr_weights(path, expected=entry.arch, name=name, scales=SCALES, scale=scale)
    model = ZooSR(ckpt.net, ckpt.scale, ckpt.size_requirements, gate=1.0)
    model.train()
    model.loaded_weights = dict(ckpt.record)
    return model


def zoo_factory(name: str, entry: ZooEntry) -> Callable[[RunConfig], nn.Module]:
    declared = {**entry.options, "sr_scale": SCALE_OPTION}

    def build(config: RunConfig) -> nn.Module:
        # The preset's value where the config has none: a name reached through the
        # resolver (``RCAN``) has no declared options for resolve_config to fill.
        opts = read_options(
            config.replace(
                options={
                    **{k: o.value_for(config.preset) for k, o in declared.items()},
                    **config.options,
                }
            ),
            declared,
        )
        if config.sr_weights:
            return from_checkpoint(config.sr_weights, entry, name, opts["sr_scale"] or None)
        scale = opts["sr_scale"] or auto_scale(config)
        cls = getattr(_arch_module(entry.arch), entry.cls)
        kwargs = constructor_kwargs(entry, opts, scale)
        try:
            net = cls(**kwargs)
        except (ValueError, AssertionError, RuntimeError, ZeroDivisionError) as exc:
            raise ConfigError(
                f"sr {name!r} cannot be built with {kwargs}: {type(exc).__name__}: {exc}"
            ) from None
        desc = describe_net(entry.arch, net)
        return ZooSR(net, scale, desc.size_requirements)

    build.__name__ = f"build_zoo_{name}"
    return build


def resolve(name: str) -> Callable[[RunConfig], nn.Module] | None:
    """A zoo name given by its spandrel id in any case (``RCAN``, ``SwinIR``): built at
    its preset's size (``-o`` sizes need the registered lower-case name). An excluded
    architecture is refused with the reason."""
    for key, entry in ZOO.items():
        if name.lower() in (key, entry.arch.lower()) and name != key:
            return zoo_factory(key, entry)
    for arch, why in EXCLUDED.items():
        if name.lower() == arch.lower():
            raise PluginError(
                f"sr {name!r}: spandrel's {arch} is not offered as an SR model: {why}"
            )
    return None


def zoo_names() -> list[str]:
    return [*ZOO, *(e.arch for e in ZOO.values())]


@hookimpl
def harness_register_sr(registry) -> None:
    for name, entry in ZOO.items():
        registry.add(
            name,
            zoo_factory(name, entry),
            f"{entry.summary} [spandrel {entry.arch}]",
            options={**entry.options, "sr_scale": SCALE_OPTION},
        )
    registry.add_resolver(
        resolve,
        f"the spandrel SR zoo by architecture id, any case ({len(ZOO)} architectures: "
        f"{', '.join(e.arch for e in ZOO.values())}); --sr-weights loads their checkpoints",
        names=zoo_names,
    )
