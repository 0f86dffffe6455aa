"""A finished run's query and gallery paths as models that run without the harness.

``harness export RUN --format onnx|torchscript --out DIR`` writes:

* ``gallery.<ext>``: an HR image -> its re-id feature;
* ``query-x<r>.<ext>``, one per protocol ratio r: an LR image of the protocol's LR size for r
  -> SR (or bicubic) to the HR size -> re-id feature;
* ``model-index.json``: the model card (dataset, protocol version, metrics with intervals,
  the exact config, and the sha256 of every file written).

Why preprocessing lives inside the graphs: a user feeds decoded pixels and gets the
evaluation's features, with nothing to re-implement. Every graph takes **uint8 RGB, N x 3 x H x
W** (batch dynamic), divides by 255, and then does exactly what evaluation does: the SR model
(or the bicubic upsampling of the evaluation's bicubic row) to the HR size, clamped to [0, 1];
the re-id model's own resize to its input size and its mean/std normalisation (both are part
of the re-id module). The output is the raw eval-mode feature; ``metric`` in the card says how
to compare features (cosine: 1 - cosine similarity; euclidean: squared distance).

Why one query graph per ratio, each with a fixed input size: an SR model's forward may branch
on its input size (the SRGAN generator picks a pixel-shuffle tail per integer factor), and a
traced graph keeps only the branch it saw. So each graph is exact for its ratio's LR size, and
:func:`fit_query` maps an LR crop of any other size onto the nearest ratio first (the
nearest ratio by height, as genuinely LR datasets are bucketed in
:mod:`harness.data.prepare`, then the loader's own resize). Likewise the gallery graph takes
images at the HR size; :func:`load_image` resizes a crop exactly as the run's data loader did.

:class:`Embedder` is what ``harness search`` embeds with: from a run folder (the PyTorch
modules) or from an exported folder (onnxruntime, or TorchScript), behind one interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness.checkpoint import latest_checkpoint
from harness.config import PROTOCOL_VERSION, RunConfig
from harness.data.loading import decode_file, resize_rgb
from harness.data.mlr import lr_size, ratio_key, upsample_bicubic
from harness.errors import HarnessError
from harness.io import atomic_write_json
from harness.models import build_models
from harness.registry import Registry
from harness.rundir import CONFIG, METRICS, is_complete, load_run_config

__all__ = [
    "CARD",
    "FORMATS",
    "Embedder",
    "GalleryPath",
    "QueryPath",
    "export_run",
    "fit_query",
    "load_exported",
    "load_image",
    "load_run",
    "sha256_file",
]

#: export formats, and the package each needs to write the files
FORMATS = {"onnx": "onnx", "torchscript": "torch"}
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
#: the model card's file name in an export folder
CARD = "model-index.json"
#: the ONNX opset: 18 has Resize with antialias, which the re-id model's shrinking resize uses
OPSET = 18
#: what ``harness export`` writes into the card; a reader refuses a card of another version
EXPORT_VERSION = 1
#: the query kinds a path can be exported for (an HR-query row has no LR query path)
QUERY_KINDS = ("sr", "bicubic")

Array = np.ndarray


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- the two paths


class GalleryPath(nn.Module):
    """uint8 HR images (N x 3 x H x W, RGB) -> eval-mode re-id features, as evaluation embeds
    the gallery (:func:`harness.evaluate.extract_features`)."""

    def __init__(self, reid: nn.Module):
        super().__init__()
        self.reid = reid

    def forward(self, image: Tensor) -> Tensor:
        return self.reid(image.float() / 255.0).float()


class QueryPath(nn.Module):
    """uint8 LR images -> SR (``generator``) or bicubic (``generator=None``) to ``hr_size`` ->
    re-id features: evaluation's ``sr`` or ``bicubic`` query transform, after the LR image."""

    def __init__(self, generator: nn.Module | None, reid: nn.Module, hr_size: tuple[int, int]):
        super().__init__()
        self.generator = generator
        self.reid = reid
        self.hr_size = (int(hr_size[0]), int(hr_size[1]))

    def forward(self, image: Tensor) -> Tensor:
        x = image.float() / 255.0
        if self.generator is None:
            out = upsample_bicubic(x, self.hr_size)
        else:
            out = self.generator(x, self.hr_size)
        return self.reid(out.float().clamp(0, 1)).float()


# ---------------------------------------------------------------------------- a run's modules


@dataclass
class RunModels:
    """What a finished run folder gives back: its config and the modules its paths need."""

    run_dir: Path
    config: RunConfig
    document: dict[str, Any]  # config.json as written
    metrics: dict[str, Any]
    generator: nn.Module
    reid: nn.Module
    query_kind: str
    checkpoint: Path
    checkpoint_sha256: str

    @property
    def hr_size(self) -> tuple[int, int]:
        return (int(self.config.hr_height), int(self.config.hr_width))

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(sorted({float(r) for r in self.config.protocol.ratios}))

    def gallery_path(self) -> GalleryPath:
        return GalleryPath(self.reid).eval()

    def query_path(self) -> QueryPath:
        generator = self.generator if self.query_kind == "sr" else None
        return QueryPath(generator, self.reid, self.hr_size).eval()


def require_complete(run_dir: Path) -> None:
    """A run folder whose metrics say ``complete``, with a final checkpoint; else one line."""
    if not (run_dir / CONFIG).is_file():
        raise HarnessError(f"{run_dir} is not a run folder: config.json is missing")
    if not is_complete(run_dir):
        raise HarnessError(
            f"{run_dir} is not a complete run (metrics.json does not say status: complete); "
            f"finish it first with harness run --resume {run_dir}"
        )


def _query_kind(document: Mapping[str, Any], query: str | None) -> str:
    kind = query or str(document.get("query") or "sr")
    if kind == "hr":
        raise HarnessError(
            "this run's row reports HR queries, which have no LR query path; "
            "choose one with --query sr or --query bicubic"
        )
    if kind not in QUERY_KINDS:
        raise HarnessError(f"unknown query kind {kind!r}; choose one of {', '.join(QUERY_KINDS)}")
    return kind


def load_run(run_dir: str | Path, registry: Registry, query: str | None = None) -> RunModels:
    """Rebuild a complete run's SR and re-id models from its final checkpoint, in eval mode.

    ``query`` picks the LR query path (``sr`` or ``bicubic``); by default the run's own row
    kind (``query`` in config.json, ``sr`` where a bench row did not name one). The number
    of training identities (the classifier's size, unused by features) is read from
    metrics.json, so no dataset has to be loaded; a weights file named by ``--reid-weights``
    need not exist any more either, since the checkpoint holds every tensor.
    """
    run_dir = Path(run_dir)
    require_complete(run_dir)
    config = load_run_config(run_dir)
    document = json.loads((run_dir / CONFIG).read_text())
    metrics = json.loads((run_dir / METRICS).read_text())
    kind = _query_kind(document, query)
    checkpoints = run_dir / "checkpoints"
    ckpt = latest_checkpoint(checkpoints) if checkpoints.is_dir() else None
    if ckpt is None or ckpt.get("stage") != "done":
        raise HarnessError(f"{run_dir} has no final checkpoint (checkpoints/ckpt-done-*.pt)")
    path = sorted(checkpoints.glob("ckpt-done-*.pt"))[-1]
    classes = int((metrics.get("split") or {}).get("num_train_ids") or 0)
    if classes < 1:
        raise HarnessError(f"{run_dir / METRICS} does not say how many training identities")
    build = config.replace(reid_weights=None)
    with torch.random.fork_rng():  # building draws initial weights; the caller's RNG stays
        models, _ = build_models(build, registry, classes)
    for name in ("G", "reid"):
        try:
            models[name].load_state_dict(ckpt["models"][name])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise HarnessError(f"{path}: the {name} weights do not fit: {first}") from exc
        models[name].eval()
    return RunModels(
        run_dir=run_dir,
        config=config,
        document=document,
        metrics=metrics,
        generator=models["G"],
        reid=models["reid"],
        query_kind=kind,
        checkpoint=path,
        checkpoint_sha256=sha256_file(path),
    )


# ---------------------------------------------------------------------------- writing


def require_format(fmt: str) -> None:
    """The format's library is importable, or a one-line error that says how to get it."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if importlib.util.find_spec(FORMATS[fmt]) is None:
        raise HarnessError(
            f"--format {fmt} needs the {FORMATS[fmt]!r} package, which is not installed "
            "(pip install 'crossres-harness[export]')"
        )


@contextlib.contextmanager
def _silent_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a while (C++ code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _onnx_export(module: nn.Module, example: Tensor, path: Path) -> None:
    """The TorchScript-based exporter first (fast); the torch.export-based one (onnxscript)
    where the graph holds an operator only it converts: the antialiased resizes
    (``aten::_upsample_bicubic2d_aa``) that SR models and the re-id resize use when shrinking.
    Either way the batch axis is dynamic."""
    from torch.onnx.errors import UnsupportedOperatorError

    names = {"input_names": ["image"], "output_names": ["feature"], "opset_version": OPSET}
    try:
        with _silent_stderr():  # on failure it dumps the whole IR graph to stderr from C++
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamic_axes={"image": {0: "batch"}, "feature": {0: "batch"}},
                dynamo=False,
                **names,
            )
    except UnsupportedOperatorError:
        if importlib.util.find_spec("onnxscript") is None:
            raise
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            external_data=False,  # weights inside the one file the card hashes
            optimize=True,
            verbose=False,
            **names,
        )


def _write_graph(module: nn.Module, example: Tensor, path: Path, fmt: str) -> None:
    """Trace ``module`` on ``example`` and write it to ``path`` atomically (temp, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # fixed input sizes per graph are the design (module docstring), so the tracer's
            # "this shape is a constant" warnings say nothing new
            warnings.simplefilter("ignore")
            if fmt == "onnx":
                _onnx_export(module, example, tmp)
            else:
                traced = torch.jit.trace(module, (example,), check_trace=False)
                torch.jit.save(traced, str(tmp))
        tmp.replace(path)
    except HarnessError:
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"exporting {path.name} as {fmt} failed: {first}") from exc


def _card_metrics(metrics: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """model-index ``metrics`` entries for the exported query kind, in %, with intervals."""
    row = (metrics.get("queries") or {}).get(kind) or {}
    out = []
    for key, name in (
        ("rank1", "Rank-1"),
        ("rank5", "Rank-5"),
        ("rank10", "Rank-10"),
        ("mAP", "mAP"),
        ("mINP", "mINP"),
    ):
        value = row.get(key)
        if not isinstance(value, int | float) or value != value:  # absent or NaN
            continue
        entry: dict[str, Any] = {"name": name, "type": key, "value": round(100 * value, 2)}
        ci = row.get(f"{key}_ci")
        if isinstance(ci, list | tuple) and len(ci) == 2:
            entry["interval_95"] = [round(100 * float(v), 2) for v in ci]
        out.append(entry)
    for key, name in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
        if isinstance(row.get(key), int | float):
            out.append({"name": name, "type": key, "value": round(float(row[key]), 4)})
    return out


def model_card(run: RunModels, fmt: str, files: Mapping[str, str], graphs: dict) -> dict:
    """The model card: mmpretrain / Hugging Face ``model-index`` layout, plus what a caller
    needs to feed the graphs (``inputs``) and to trust them (``files``: name -> sha256)."""
    config = run.config
    name = f"{config.sr if run.query_kind == 'sr' else 'bicubic'}+{config.reid} ({config.reg})"
    dataset = run.metrics.get("dataset") or {}
    return {
        "export_version": EXPORT_VERSION,
        "format": fmt,
        "query_kind": run.query_kind,
        "metric": config.metric,
        "hr_size": list(run.hr_size),
        "reid_size": [int(config.height), int(config.width)],
        "ratios": list(run.ratios),
        "inputs": (
            "uint8 RGB images, N x 3 x H x W (N dynamic); gallery: H x W = hr_size; query "
            "graph for ratio r: the protocol's LR size for r (graphs.query[r].input_size). "
            "Inside each graph: /255, SR or bicubic to hr_size clamped to [0, 1], the re-id "
            "model's resize and mean/std normalisation. Output: the raw eval-mode feature; "
            "compare with `metric` (cosine: 1 - cos; euclidean: squared distance)."
        ),
        "graphs": graphs,
        "files": dict(files),
        "source": {
            "run_dir": str(run.run_dir),
            "checkpoint": run.checkpoint.name,
            "checkpoint_sha256": run.checkpoint_sha256,
        },
        "model-index": [
            {
                "name": name,
                "metadata": {
                    "sr": config.sr,
                    "reid": config.reid,
                    "method": config.reg,
                    "seed": config.seed,
                },
                "results": [
                    {
                        "task": {"type": "person-reidentification", "name": "cross-resolution"},
                        "dataset": {
                            "name": dataset.get("name") or config.data,
                            "type": config.data,
                            "protocol": run.document.get("protocol_version") or PROTOCOL_VERSION,
                            "eval_style": run.metrics.get("eval_style"),
                        },
                        "metrics": _card_metrics(run.metrics, run.query_kind),
                    }
                ],
            }
        ],
        "config": run.document,
    }


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    fmt: str,
    registry: Registry,
    query: str | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Export a complete run's query and gallery paths to ``out_dir``; returns the card's path."""
    require_format(fmt)
    run = load_run(run_dir, registry, query)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    suffix = SUFFIX[fmt]
    files: dict[str, str] = {}
    h, w = run.hr_size
    gallery_name = f"gallery{suffix}"
    example = torch.zeros(2, 3, h, w, dtype=torch.uint8)
    _write_graph(run.gallery_path(), example, out / gallery_name, fmt)
    graphs: dict[str, Any] = {"gallery": {"file": gallery_name, "input_size": [h, w]}, "query": {}}
    query = run.query_path()
    for ratio in run.ratios:
        size = lr_size(run.hr_size, ratio)
        name = f"query-x{ratio_key(ratio)}{suffix}"
        _write_graph(query, torch.zeros(2, 3, *size, dtype=torch.uint8), out / name, fmt)
        graphs["query"][ratio_key(ratio)] = {
            "file": name,
            "ratio": ratio,
            "input_size": list(size),
        }
    for name in [gallery_name, *(g["file"] for g in graphs["query"].values())]:
        files[name] = sha256_file(out / name)
    card = atomic_write_json(out / CARD, model_card(run, fmt, files, graphs))
    echo(
        f"exported {run.run_dir} ({run.query_kind} query path, {fmt}) to {out}: "
        f"{gallery_name} and {len(graphs['query'])} query graph(s) for ratios "
        f"x{'/x'.join(graphs['query'])}; model card {CARD}"
    )
    return card


# ---------------------------------------------------------------------------- reading images


def load_image(path: str | Path, size: tuple[int, int] | None = None) -> Array:
    """An image file as H x W x 3 uint8 RGB, resized to ``size`` as the run's loader resizes
    (area to shrink, cubic to enlarge); an unreadable file is a one-line error naming it."""
    array = decode_file(str(path))
    return resize_rgb(array, size) if size is not None else array


def fit_query(
    image: Array, hr_size: tuple[int, int], ratios: Sequence[float]
) -> tuple[float, Array]:
    """The protocol ratio an LR crop of any size is embedded at, and the crop at that ratio's
    LR size (unchanged when it already has it).

    The ratio whose LR size equals the crop's wins; otherwise the ratio nearest the crop's
    height scale (HR height / crop height), as genuinely LR queries are bucketed.
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    for ratio in ratios:
        if lr_size(hr_size, ratio) == (h, w):
            return float(ratio), image
    scale = hr_size[0] / max(1, h)
    ratio = float(min(ratios, key=lambda r: (abs(r - scale), r)))
    return ratio, resize_rgb(image, lr_size(hr_size, ratio))


def as_batch(images: Sequence[Array]) -> Array:
    """H x W x 3 images of one size -> N x 3 x H x W uint8, what every graph takes."""
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------- embedding


@dataclass
class Embedder:
    """Features through a run's (or an export's) paths, however the graphs are held.

    ``gallery`` and ``query[ratio key]`` map a uint8 N x 3 x H x W batch to an N x D float32
    array; ``fingerprint`` names the gallery path's weights, so cached gallery features are
    reused only by the same model.
    """

    gallery: Callable[[Array], Array]
    query: dict[str, Callable[[Array], Array]]
    hr_size: tuple[int, int]
    ratios: tuple[float, ...]
    metric: str
    fingerprint: str
    source: str
    info: dict[str, Any] = field(default_factory=dict)

    def embed_gallery(self, images: Sequence[Array], batch_size: int = 64) -> Array:
        feats = [
            self.gallery(as_batch(images[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, 0), "float32")

    def embed_query(self, image: Array) -> tuple[float, Array]:
        """One LR crop of any size -> (the ratio it was embedded at, its 1 x D feature)."""
        ratio, fitted = fit_query(image, self.hr_size, self.ratios)
        return ratio, self.query[ratio_key(ratio)](as_batch([fitted])).astype(np.float32)


def _torch_call(module: Callable[[Tensor], Tensor]) -> Callable[[Array], Array]:
    @torch.no_grad()
    def call(batch: Array) -> Array:
        return module(torch.from_numpy(batch)).float().cpu().numpy()

    return call


def run_embedder(run_dir: str | Path, registry: Registry, query: str | None = None) -> Embedder:
    """An :class:`Embedder` over a complete run folder's PyTorch modules."""
    run = load_run(run_dir, registry, query)
    query_path = _torch_call(run.query_path())
    return Embedder(
        gallery=_torch_call(run.gallery_path()),
        query={ratio_key(r): query_path for r in run.ratios},
        hr_size=run.hr_size,
        ratios=run.ratios,
        metric=run.config.metric,
        fingerprint=f"run:{run.checkpoint_sha256}:{run.hr_size[0]}x{run.hr_size[1]}",
        source=str(run.run_dir),
        info={"query_kind": run.query_kind},
    )


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """An export folder's model card, with every file's sha256 checked."""
    model_dir = Path(model_dir)
    path = model_dir / CARD
    if not path.is_file():
        raise HarnessError(f"{model_dir} is not an export folder: {CARD} is missing")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(card, dict) or card.get("export_version") != EXPORT_VERSION:
        raise HarnessError(f"{path} is not a harness export card of version {EXPORT_VERSION}")
    for name, digest in (card.get("files") or {}).items():
        file = model_dir / name
        if not file.is_file():
            raise HarnessError(f"{model_dir}: {name} is missing (the card lists it)")
        if sha256_file(file) != digest:
            raise HarnessError(f"{model_dir}: {name} does not match its sha256 in {CARD}")
    return card


def load_exported(model_dir: str | Path) -> Embedder:
    """An :class:`Embedder` over an export folder: onnxruntime for ONNX, torch.jit for
    TorchScript; a format whose runtime is missing is a one-line error."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    fmt = card.get("format")
    if fmt == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            raise HarnessError(
                f"{model_dir} holds ONNX models and onnxruntime is not installed "
                "(pip install 'crossres-harness[export]')"
            )
        import onnxruntime as ort

        def load(name: str) -> Callable[[Array], Array]:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(model_dir / name), options, providers=["CPUExecutionProvider"]
            )
            return lambda batch: session.run(None, {"image": batch})[0]

    elif fmt == "torchscript":

        def load(name: str) -> Callable[[Array], Array]:
            with warnings.catch_warnings():  # torch.jit.load's "deprecated" notice
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(model_dir / name), map_location="cpu")
            return _torch_call(module.eval())

    else:
        raise HarnessError(f"{model_dir / CARD}: unknown format {fmt!r}")
    graphs = card["graphs"]
    gallery_file = graphs["gallery"]["file"]
    return Embedder(
        gallery=load(gallery_file),
        query={key: load(g["file"]) for key, g in graphs["query"].items()},
        hr_size=(int(card["hr_size"][0]), int(card["hr_size"][1])),
        ratios=tuple(float(g["ratio"]) for g in graphs["query"].values()),
        metric=str(card["metric"]),
        fingerprint=f"export:{card['files'][gallery_file]}",
        source=str(model_dir),
        info={"query_kind": card.get("query_kind"), "format": fmt},
    )
