"""One run end to end: prepare data, train, evaluate, report (and pretrain, eval).

The run folder is the unit of truth: ``config.json`` first, checkpoints while
training, and ``metrics.json`` with ``status: complete`` only at the very end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import distributed
from harness.cache import cache_files
from harness.checkpoint import STAGE_ORDER, latest_checkpoint, stage1_checkpoint
from harness.config import ConfigError, RunConfig
from harness.data.mlr import lr_size, ratio_key
from harness.data.prepare import prepare_data
from harness.diagnostics import read_log
from harness.diagnostics import summarise as summarise_diagnostics
from harness.errors import DatasetError, HarnessError, NumericalError, exception_chain
from harness.evaluate import evaluate_splits
from harness.io import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    remove_partial_writes,
)
from harness.models import build_models, count_parameters
from harness.pretrained import describe_init, init_record, resolve_init
from harness.provenance import config_document
from harness.registry import Registry
from harness.report import format_summary, write_run_report
from harness.resolve import resolve_config
from harness.rundir import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    check_output_file,
    check_run_dir,
    check_split,
    hold_run_dir,
    is_complete,
    load_run_config,
    mark_complete,
    mark_stopped,
    refuse_edited_config,
    refuse_foreign_run,
)
from harness.timing import RunTiming
from harness.tracking import RunTrackers, TrackerSettings, run_name
from harness.train import Trainer
from harness.validation import curve_from_log, validation_point

Echo = Callable[[str], None]

__all__ = [
    "evaluate_run",
    "load_run_config",
    "pretrain_reid",
    "pretrained_weights_path",
    "resolve_config",
    "resolve_device",
    "run_experiment",
    "write_pretrained_weights",
]


def device_problem(name: str) -> str | None:
    """Why this machine's torch cannot run on device ``name`` (``cuda:1``, ``mps``), or None.

    Asked before anything is built: torch itself only says so at the first ``.to(device)``,
    deep in a traceback (``PyTorch is not linked with support for mps devices``).
    """
    kind, _, index = name.partition(":")
    fix = "use --device cpu, or auto (CUDA where there is one, else CPU)"
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = "" if torch.version.cuda else " (this torch build has no CUDA support)"
            return f"--device {name} was asked for but no CUDA device is available{build}; {fix}"
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"--device {name}: this machine's CUDA devices are cuda:0 to cuda:{count - 1}"
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_built():
            return f"--device mps: this torch build has no MPS (Apple GPU) support; {fix}"
        if not mps.is_available():
            return f"--device mps: no MPS device is available on this machine; {fix}"
    return None


def resolve_device(config: RunConfig, echo: Echo) -> tuple[RunConfig, torch.device]:
    """The device a run uses (``auto``: CUDA where there is one), refused in one line where
    this machine's torch lacks it."""
    name = config.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    problem = device_problem(name)
    if problem:
        raise ConfigError(problem)
    device = torch.device(name)
    if config.amp and device.type != "cuda":
        echo(
            "warning: --amp needs a GPU; running in float32 on CPU"
        )  # once: not also a Python warning
        config = config.replace(amp=False)
    if config.compile and device.type != "cuda":
        config = config.replace(compile=False)
    return config, device


_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


def _out_of_memory(exc: BaseException) -> str | None:
    """What an allocation failure anywhere in ``exc``'s chain asked for, or None."""
    for current in exception_chain(exc):
        text = str(current)
        if not isinstance(current, HarnessError) and (
            isinstance(current, MemoryError) or any(t in text.lower() for t in _OUT_OF_MEMORY)
        ):
            asked = re.search(r"allocate (\d+) bytes", text)  # the CPU allocator
            if asked:
                return f"tried to allocate {int(asked.group(1)) / 2**30:.1f} GiB"
            asked = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text)  # CUDA's
            return f"tried to allocate {asked.group(1)}" if asked else "an allocation failed"
    return None


def _raise_if_out_of_memory(
    exc: BaseException,
    config: RunConfig,
    fix: str = "lower them and start the run again with --out NEW_FOLDER (a resume keeps the "
    "saved settings)",
) -> None:
    """An allocation failure (``--batch-size 100000000``) as one line saying what to lower;
    torch's own message is a traceback deep in the trainer."""
    asked = _out_of_memory(exc)
    if asked is None:
        return
    raise HarnessError(
        f"out of memory ({asked}) with --batch-size {config.batch_size}, --eval-batch-size "
        f"{config.eval_batch_size} and {config.height}x{config.width} images: {fix}"
    ) from exc


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def trim_log(path: Path, stage: str, iteration: int, warn: Echo = print) -> None:
    """Drop log lines past the checkpoint a resume starts from, so no iteration is logged twice.

    A line that is no log record (torn by a crash, or written by hand) is dropped too,
    and said so with its line number.
    """
    if not path.is_file():
        return
    here = (STAGE_ORDER.get(stage, 0), iteration)
    kept = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:  # not JSON, not an object (no .get), an iteration that is no number
            rec = json.loads(line)
            position = (STAGE_ORDER.get(str(rec.get("stage")), -1), int(rec.get("iteration", 0)))
        except (ValueError, TypeError, AttributeError):
            if line.strip():
                shown = line if len(line) <= 40 else f"{line[:37]}..."
                warn(f"warning: {path} line {number} is not a log record; dropped ({shown!r})")
            continue
        if "stage" not in rec or position <= here:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


#: the run folder being trained, so an interrupt can say how to continue it
ACTIVE_RUNS: list[Path] = []


def run_experiment(
    config: RunConfig,
    run_dir: Path,
    registry: Registry,
    *,
    resume: bool = False,
    echo: Echo = print,
    extra: Mapping[str, Any] | None = None,
    stage0_cache_dir: Path | None = None,
    show_samples: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one run in ``run_dir`` (or continue it with ``resume``); returns
    its metrics.

    While it runs, ``ACTIVE_RUNS`` names its folder, so the CLI can answer an
    interrupt with the command that continues it. ``show_samples`` draws the sample images
    of a dataset that forbids redistributing them (a private, local report): a report
    choice, not a setting, so it is not in ``config.json`` and no resume compares it.
    """
    # one process trains in a folder at a time (ranks other than 0 share rank 0's)
    held = hold_run_dir(run_dir) if distributed.env_rank() == 0 else contextlib.nullcontext()
    with held:
        return _run_guarded(
            config, run_dir, registry, resume, echo, extra, stage0_cache_dir, show_samples
        )


def _run_guarded(
    config: RunConfig,
    run_dir: Path,
    registry: Registry,
    resume: bool,
    echo: Echo,
    extra: Mapping[str, Any] | None,
    stage0_cache_dir: Path | None,
    show_samples: bool = False,
) -> dict[str, Any]:
    ACTIVE_RUNS.append(run_dir)
    trackers = RunTrackers(echo)  # opened by the run before training; closed with its outcome
    try:
        metrics = _run_experiment(
            config,
            run_dir,
            registry,
            resume=resume,
            echo=echo,
            extra=extra,
            stage0_cache_dir=stage0_cache_dir,
            trackers=trackers,
            show_samples=show_samples,
        )
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI turns it into this)
        trackers.close(INTERRUPTED)
        mark_stopped(run_dir, INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)")
        raise  # the folder stays named for the interrupt message
    except BaseException as exc:
        trackers.close(FAILED)
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        mark_stopped(run_dir, FAILED, f"{type(exc).__name__}: {first_line}")
        ACTIVE_RUNS.remove(run_dir)
        _raise_if_out_of_memory(exc, config)
        raise
    trackers.close(COMPLETE)
    ACTIVE_RUNS.remove(run_dir)
    return metrics


def _run_experiment(
    config: RunConfig,
    run_dir: Path,
    registry: Registry,
    *,
    resume: bool = False,
    echo: Echo = print,
    extra: Mapping[str, Any] | None = None,
    stage0_cache_dir: Path | None = None,
    trackers: RunTrackers | None = None,
    show_samples: bool = False,
) -> dict[str, Any]:
    start = time.time()
    timing = RunTiming()  # metrics.json's timing block: seconds per stage (harness.timing)
    trackers = trackers if trackers is not None else RunTrackers(echo)
    rank_device = distributed.init_from_env()
    main_rank = distributed.is_main()
    if not main_rank:
        echo = _quiet
    config, device = resolve_device(config, echo)
    if rank_device is not None:
        device = rank_device
    init = resolve_init(config.reid_init, config.reid, registry)
    extra = {**dict(extra or {}), "reid_init": init_record(config, init)}
    if main_rank:
        if not resume:
            refuse_foreign_run(run_dir)
        check_run_dir(run_dir)
        if not resume:
            doc = config_document(config, extra)
            doc["world_size"] = distributed.world_size()
            atomic_write_json(run_dir / "config.json", doc)
            atomic_write_json(run_dir / "metrics.json", {"status": "running"})
        elif not is_complete(run_dir):  # a resumed run that had stopped is running again
            atomic_write_json(run_dir / "metrics.json", {"status": "running"})
        # every tracker opens now, so a missing library or bad URI fails before any work
        settings = TrackerSettings(
            run_dir,
            run_name(run_dir, extra, config.seed),
            extra.get("bench"),
            config.tracker_uri,
            resume,
        )
        trackers.open(config.trackers, settings, registry, run_dir / "log.jsonl")
    distributed.barrier()
    echo(
        f"run folder {run_dir}  preset={config.preset}  device={device}  "
        f"sr={config.sr} reid={config.reid} reg={config.reg} data={config.data}"
    )
    echo(describe_init(config, init))

    seed_everything(config.seed)
    try:
        data = prepare_data(config, registry)
    except DatasetError as exc:
        if not resume:
            raise
        # A resume reads every setting from config.json, so `--resume` again cannot help:
        # say what the folder was trained on and where the data must be.
        where = f" at {config.data_root}" if config.data_root else ""
        raise DatasetError(
            f"{exc}; {run_dir} was trained on --data {config.data}{where} (a --resume takes "
            "every setting from its config.json): put that data back there to continue it"
        ) from exc
    if (config.hr_height, config.hr_width) != data.hr_size:
        # The dataset declares its native HR size: the config on disk says which was used.
        config = config.replace(hr_height=data.hr_size[0], hr_width=data.hr_size[1])
        if main_rank and not resume:
            doc = config_document(config, extra)
            doc["world_size"] = distributed.world_size()
            atomic_write_json(run_dir / "config.json", doc)
    ratios = config.protocol.ratios
    echo(
        f"HR size {config.hr_height}x{config.hr_width} "
        f"(LR x{'/x'.join(ratio_key(r) for r in ratios)}: "
        f"{', '.join('x'.join(map(str, lr_size(config.hr_size, r))) for r in ratios)}); "
        f"re-id input {config.height}x{config.width}"
    )
    if data.bad_images:
        echo(f"skipped {len(data.bad_images)} unreadable image(s), e.g. {data.bad_images[0]}")
    desc = data.split.describe()
    if data.num_classes < 2:
        raise HarnessError(
            f"{config.data}: the training split has {data.num_classes} identity; re-id training "
            "needs at least two (its ID loss is zero with one), so nothing could be learned"
        )
    if main_rank:
        listing = {
            "protocol": dataclasses.asdict(config.protocol),
            "data": config.data,
            "options": dict(config.options),
            "skipped_images": list(data.bad_images),
            **data.split.listing(config.data_root, data.hr_size),
        }
        if resume and (run_dir / "split.json").is_file():
            check_split(run_dir, listing)  # the data or protocol changed since: refused
        else:
            atomic_write_json(run_dir / "split.json", listing)
    echo(
        f"data: {desc['num_train']} train images of {desc['num_train_ids']} ids; "
        f"{desc['num_query']} LR queries (cameras {desc['lr_cameras']}, "
        f"ratios {desc['query_ratio_counts']}); "
        f"{desc['num_gallery']} HR gallery images"
    )
    seed_everything(config.seed)
    models, regulariser = build_models(config, registry, data.num_classes, init=init, echo=echo)
    if config.sr_weights:  # what the SR plugin found in --sr-weights: architecture, scale, sha256
        extra["sr_weights"] = dict(models["G"].loaded_weights)
        echo(
            f"SR weights {config.sr_weights}: {extra['sr_weights']['architecture']} "
            f"x{extra['sr_weights']['scale']}, sha256 {extra['sr_weights']['sha256'][:12]}"
        )
        if main_rank and not resume:
            atomic_write_json(
                run_dir / "config.json",
                {**config_document(config, extra), "world_size": distributed.world_size()},
            )
    critic_iters = regulariser.critic_warmup_iters(config) if config.sr_iters else 0
    if (
        critic_iters
    ):  # when the critic's terms first act on G: after its warm-up, from stage 1's start
        extra["critic_warmup"] = {
            "iters": int(critic_iters),
            "generator_terms_from": {"stage": "sr", "iteration": 0},
        }
        if main_rank and not resume:
            atomic_write_json(
                run_dir / "config.json",
                {**config_document(config, extra), "world_size": distributed.world_size()},
            )
    log_path = run_dir / "log.jsonl"
    cache = warmup_cache = critic_cache = None
    if stage0_cache_dir is not None and not distributed.is_distributed():
        cache, warmup_cache, critic_cache = cache_files(
            config, registry, device, Path(stage0_cache_dir), init.sha256 if init else None
        )

    def log(rec: dict[str, Any]) -> None:
        if main_rank:
            append_jsonl(log_path, rec)
            trackers.log_record(rec)  # every loss term and diagnostic, to --tracker too

    trainer = Trainer(
        config,
        data,
        models,
        regulariser,
        run_dir,
        device,
        log,
        stage0_cache=cache,
        warmup_cache=warmup_cache,
        critic_cache=critic_cache,
        timing=timing,
        validate=(
            functools.partial(validation_point, models, data, config, device)
            if data.val is not None
            else None
        ),
    )
    if resume:
        for tmp in remove_partial_writes(run_dir):
            echo(f"removed {tmp.name}, a write the interrupted run left unfinished")
        ckpt = latest_checkpoint(run_dir / "checkpoints", config.to_dict(), warn=echo)
        if ckpt is not None:
            trainer.load_state(ckpt)
            if main_rank:
                trim_log(log_path, trainer.stage, trainer.iteration, warn=echo)
            echo(f"resumed at stage {trainer.stage}, iteration {trainer.iteration}")
            timing.resumed_at = {"stage": trainer.stage, "iteration": trainer.iteration}
        else:
            echo(f"no checkpoint in {run_dir / 'checkpoints'}: training starts over")
            if main_rank and log_path.is_file():
                log_path.unlink()  # and so does its log
    if trackers:  # the resolved config, as config.json holds it now (HR size filled in)
        trackers.log_config(json.loads((run_dir / "config.json").read_text()))
    timing.lap("setup")  # data, models, a resume's checkpoint
    trainer.fit()
    if not main_rank:  # rank 0 evaluates the (identical) models and writes the results
        distributed.shutdown()
        return {}

    metrics, samples = evaluate_splits(
        models["G"], models["reid"], data, config, device, run_dir=run_dir
    )
    records = read_log(log_path)
    diagnostics = summarise_diagnostics(records, trainer.critic_iters)
    if diagnostics:
        metrics["diagnostics"] = diagnostics
    curve = curve_from_log(records)
    if curve:
        metrics["val_curve"] = curve
    timing.lap("evaluation")
    metrics.update(
        {
            "status": "complete",
            # the version the split was built under (a resumed mlr-2.1 run keeps its split)
            "protocol_version": config.protocol.version,
            "wall_time_s": round(time.time() - start, 2),
            "device": str(device),
            "split": desc,
            "dataset": data.dataset_summary,
            "bad_images": len(data.bad_images),
            "parameters": count_parameters(models),
            "world_size": distributed.world_size(),
            "reid_init": extra["reid_init"],
        }
    )
    write_run_report(run_dir, metrics, samples, show_samples)
    timing.lap("report")
    metrics["timing"] = timing.record()
    metrics["wall_time_s"] = round(time.time() - start, 2)  # the report included
    mark_complete(run_dir, metrics)
    trackers.log_results(metrics, run_dir)
    echo(format_summary(metrics))
    registry.hook().harness_run_finished(run_dir=str(run_dir), metrics=metrics)
    if distributed.is_distributed():
        metrics["world_size"] = distributed.world_size()
        distributed.shutdown()
    return metrics


def pretrain_reid(
    config: RunConfig,
    run_dir: Path,
    weights_out: Path,
    registry: Registry,
    *,
    echo: Echo = print,
    stage0_cache_dir: Path | None = None,
    resume: bool = False,
) -> Path:
    """Stage 0 alone (``sr_iters`` must be 0), then the re-id weights as a plain state_dict.

    A ``<weights>.json`` beside the weights records the recipe and the HR/bicubic-query
    numbers on the pretraining data's own test split, so a weights file is never anonymous.
    ``config.json`` records where the weights go (``pretrain_weights``), so an interrupted
    pretraining continued by ``harness pretrain --resume`` or ``harness run --resume`` still
    writes them (:func:`write_pretrained_weights`).
    """
    if config.sr_iters != 0:
        raise ConfigError("pretraining runs stage 0 only; sr_iters must be 0")
    check_output_file(Path(weights_out), "--weights")  # now, not after the training
    metrics = run_experiment(
        config,
        run_dir,
        registry,
        resume=resume,
        echo=echo,
        extra={"pretrain": True, "pretrain_weights": str(weights_out)},
        stage0_cache_dir=stage0_cache_dir,
    )
    return write_pretrained_weights(run_dir, Path(weights_out), metrics)


def pretrained_weights_path(run_dir: Path) -> Path | None:
    """Where a pretraining run writes its weights (``None``: not a pretraining run, or one
    from before the path was recorded)."""
    try:
        doc = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    where = doc.get("pretrain_weights") if isinstance(doc, dict) else None
    return Path(where) if isinstance(where, str) and where else None


def write_pretrained_weights(run_dir: Path, weights_out: Path, metrics: Mapping[str, Any]) -> Path:
    """The finished re-id model of a pretraining run as a plain state_dict, and its record."""
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None or ckpt["stage"] != "done":
        raise HarnessError(
            f"{run_dir} did not finish; continue it with harness pretrain --resume {run_dir}"
        )
    doc = json.loads((run_dir / "config.json").read_text())
    state = {k: v.detach().cpu() for k, v in ckpt["models"]["reid"].items()}
    path = atomic_torch_save(state, weights_out)
    queries = metrics.get("queries", {})
    record = {k: v for k, v in doc.items() if k not in ("pretrain_weights",)}
    atomic_write_json(
        Path(f"{weights_out}.json"),
        {
            "weights": str(weights_out),
            "run_dir": str(run_dir),
            **record,
            "test_rank1": {k: q.get("rank1") for k, q in queries.items()},
        },
    )
    return path


def _quiet(message: str) -> None:
    pass


def _recorded_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json`` (``{}`` where there is none), which evaluation extends.

    It is not only an output: it holds what training recorded (timing, the split's counts,
    parameters, the initial weights), which evaluation cannot recreate. So a corrupt one is
    refused rather than replaced.
    """
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        problem = f"not JSON: {exc}"
    else:
        if isinstance(doc, dict):
            return doc
        problem = "not a JSON object"
    raise HarnessError(
        f"{path} is corrupt ({problem}); it holds what training recorded (timing, split, "
        "parameters), which evaluation cannot recreate: restore it, or move it aside to "
        "re-evaluate without that record"
    )


def evaluation_at_dir(run_dir: Path, iteration: int) -> Path:
    """Where ``harness eval RUN --at N`` writes: inside the run, beside nothing it replaces
    (no config.json there, so a leaderboard never counts it as a run of its own)."""
    return run_dir / "at" / f"sr-{iteration}"


def evaluate_run(
    run_dir: Path,
    registry: Registry,
    echo: Echo = print,
    show_samples: bool = False,
    at: int | None = None,
) -> dict[str, Any]:
    """Re-evaluate a finished run from its final checkpoint (``harness eval``); ``show_samples``
    as for :func:`run_experiment`.

    ``at``: evaluate the kept stage-1 checkpoint of that iteration instead, the test numbers a
    run with a stage 1 that long would report (stage 1 has no learning-rate schedule), into
    :func:`evaluation_at_dir`; the run's own results are left as they are.
    """
    recorded = load_run_config(run_dir)
    config, device = resolve_device(recorded, echo)
    old = _recorded_metrics(run_dir)  # a corrupt file or a folder it cannot write: named now,
    check_run_dir(run_dir)  # not after the evaluation
    if at is not None:
        ckpt = stage1_checkpoint(run_dir / "checkpoints", at, config.sr_iters)
    else:
        ckpt = latest_checkpoint(run_dir / "checkpoints")
        if ckpt is None or ckpt["stage"] != "done":
            raise HarnessError(
                f"{run_dir} has no final checkpoint; "
                f"finish it first with harness run --resume {run_dir}"
            )
    refuse_edited_config(run_dir, recorded, ckpt)
    seed_everything(config.seed)
    data = prepare_data(config, registry)
    models, _ = build_models(config, registry, data.num_classes)
    for name in ("G", "reid"):  # what evaluation reads; a critic's layout may have changed since
        state = ckpt["models"][name]
        bad = [k for k, t in state.items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:  # training never writes such a checkpoint (it checks first): altered since
            raise NumericalError(
                f"{run_dir}: the final checkpoint's weights of {name!r} are not finite "
                f"({len(bad)} tensors, e.g. {bad[0]}); training never writes such a file, so it "
                "was altered or corrupted after the run: nothing to evaluate"
            )
        models[name].load_state_dict(state)
        models[name].to(device)
    start = time.time()
    out_dir = run_dir if at is None else evaluation_at_dir(run_dir, at)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        metrics, samples = evaluate_splits(
            models["G"], models["reid"], data, config, device, run_dir=out_dir
        )
    except Exception as exc:
        fix = f"lower eval_batch_size in {run_dir / 'config.json'} (it changes no result)"
        _raise_if_out_of_memory(exc, config, fix)
        raise
    if at is not None:
        return _write_evaluation_at(
            out_dir, metrics, samples, old, config, at, start, echo, show_samples
        )
    metrics.update({k: v for k, v in old.items() if k not in metrics})
    # the training diagnostics, summarised again from the log (a newer summary may say more)
    recorded_diagnostics = old.get("diagnostics")
    warmup = (
        recorded_diagnostics.get("critic_warmup_iters", 0)
        if isinstance(recorded_diagnostics, dict)
        else 0
    )
    warmup = int(warmup) if isinstance(warmup, int | float) and not isinstance(warmup, bool) else 0
    diagnostics = summarise_diagnostics(read_log(run_dir / "log.jsonl"), warmup)
    if diagnostics:
        metrics["diagnostics"] = diagnostics
    metrics.update(
        {
            "status": "complete",
            # the version the run was made under (an mlr-2.0 run stays one: no val split)
            "protocol_version": old.get("protocol_version", config.protocol.version),
            "eval_time_s": round(time.time() - start, 2),
        }
    )
    write_run_report(run_dir, metrics, samples, show_samples)
    mark_complete(run_dir, metrics)
    echo(format_summary(metrics))
    return metrics


def _write_evaluation_at(
    out_dir: Path,
    metrics: dict[str, Any],
    samples: dict[str, Any],
    old: Mapping[str, Any],
    config: RunConfig,
    at: int,
    start: float,
    echo: Echo,
    show_samples: bool,
) -> dict[str, Any]:
    """``harness eval --at``'s results: the run's own facts about its data (what decides
    whether images may be shown), none of its training record (timing, diagnostics: those are
    the whole run's), and which checkpoint this is."""
    metrics.update({k: old[k] for k in ("dataset", "split", "reid_init") if k in old})
    metrics.update(
        {
            "status": "complete",
            "at": {"stage": "sr", "iteration": at, "sr_iters": config.sr_iters},
            "protocol_version": old.get("protocol_version", config.protocol.version),
            "eval_time_s": round(time.time() - start, 2),
        }
    )
    write_run_report(out_dir, metrics, samples, show_samples)
    atomic_write_json(out_dir / "metrics.json", metrics)
    echo(f"stage-1 iteration {at} of {config.sr_iters}: results in {out_dir}")
    echo(format_summary(metrics))
    return metrics
