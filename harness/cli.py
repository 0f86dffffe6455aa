"""The ``harness`` command line: run, eval, list, leaderboard, bench, data.

Errors a user can fix (unknown names, bad folders, bad options) print as one
line on stderr with exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import functools
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness import bench as bench_mod
from harness import leaderboard as lb
from harness import tune as tune_mod
from harness.cli_settings import SectionedCommand, setting_options, stage_visible, values_from
from harness.config import coerce_setting, tracker_names
from harness.contracts import (
    ContractWarning,
    check_component,
    component_config,
    find_components,
)
from harness.data.mlr import build_mlr
from harness.data.pack import pack_dataset
from harness.errors import ConfigError, DatasetError, HarnessError
from harness.kinds import kind_names
from harness.pretrained import availability
from harness.publish import check_out_dir, write_leaderboard
from harness.registrars import DatasetEntry, WeightsEntry
from harness.registry import get_registry
from harness.run import (
    ACTIVE_RUNS,
    evaluate_run,
    load_run_config,
    pretrain_reid,
    pretrained_weights_path,
    resolve_config,
    run_experiment,
    write_pretrained_weights,
)
from harness.rundir import check_run_dir
from harness.settings import PRESET_NAMES, STAGE0
from harness.tables import render_markdown

os.environ.setdefault("KMP_WARNINGS", "0")


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn harness errors into a clear message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = _sigterm_as_interrupt()
        try:
            return func(*args, **kwargs)
        except HarnessError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            hint = "".join(
                f"; continue with harness run --resume {d} (its last checkpoint is kept)"
                for d in ACTIVE_RUNS[-1:]
            )
            if func.__name__ == "bench":
                hint = (
                    "; rerun the same harness bench command to continue (finished rows are skipped)"
                )
            click.echo(f"interrupted{hint}", err=True)
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> Any:
    """SIGTERM (a scheduler's stop, ``kill``) ends a command as Ctrl-C does: the run folder
    records ``interrupted`` and the message says how to continue. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _registry():
    return get_registry()


def _parse_options(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]):
    out = {}
    for item in value:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = val
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crossres-harness")
def main() -> None:
    """Cross-resolution person re-id benchmark harness (SR + re-id cascades, INTACT)."""


# ---------------------------------------------------------------------------- run
_plugin_options = click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    callback=_parse_options,
    metavar="KEY=VALUE",
    help="Plugin option (see harness list --verbose); repeatable.",
)


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One option per declared setting (``harness.config.RunConfig``), then ``-o`` for
    plugin options."""
    return setting_options()(_plugin_options(func))


def stage0_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the settings stage 0 depends on: pretraining never builds an SR model."""
    return setting_options(stage_visible(STAGE0))(_plugin_options(func))


#: the opt-in to sample images of a dataset that forbids redistributing them (harness.ranks)
_show_samples = click.option(
    "--show-samples",
    is_flag=True,
    help="Draw sample images (sr_samples.png, ranks.png) even of a dataset whose images may "
    "not be redistributed (CUHK03), for a private, local report. Not a run setting: not "
    "recorded in config.json.",
)


def _default_run_dir(config, models: str | None = None) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    models = models or f"{config.sr}-{config.reid}-{config.reg}"
    return Path("runs") / f"{stamp}-{config.data}-{models}-s{config.seed}"


@main.command(cls=SectionedCommand)
@run_options
@click.option(
    "--out", type=click.Path(), help="Run folder (default runs/<time>-<data>-<sr>-<reid>-<reg>)."
)
@click.option(
    "--resume", "resume_dir", type=click.Path(), help="Continue RUN_DIR from its last checkpoint."
)
@click.option(
    "--stage0-cache",
    type=click.Path(file_okay=False),
    help="Folder of finished stage-0 re-id models, reused by runs with the same re-id recipe.",
)
@_show_samples
@_friendly
def run(
    out: str | None,
    resume_dir: str | None,
    stage0_cache: str | None,
    show_samples: bool,
    **kw: Any,
) -> None:
    """Train an SR + re-id cascade under the MLR protocol and evaluate it."""
    registry = _registry()
    if resume_dir:
        run_dir = Path(resume_dir)
        config = load_run_config(run_dir)
        click.echo(f"resuming {run_dir} (its saved config wins over other options)")
        metrics = run_experiment(
            config,
            run_dir,
            registry,
            resume=True,
            echo=click.echo,
            stage0_cache_dir=Path(stage0_cache) if stage0_cache else None,
            show_samples=show_samples,
        )
        weights = pretrained_weights_path(run_dir)
        if weights is not None:  # a pretraining continued here still delivers its weights
            path = write_pretrained_weights(run_dir, weights, metrics)
            click.echo(f"wrote re-id weights to {path} (use --reid-weights {path})")
        return
    values = {**values_from(kw), **kw}
    config = resolve_config(values, registry)
    click.echo(
        f"preset: {config.preset}" + ("" if values.get("preset") else " (default for this machine)")
    )
    run_dir = Path(out) if out else _default_run_dir(config)
    run_experiment(
        config,
        run_dir,
        registry,
        echo=click.echo,
        stage0_cache_dir=Path(stage0_cache) if stage0_cache else None,
        show_samples=show_samples,
    )


@main.command(cls=SectionedCommand)
@stage0_options
@click.option(
    "--weights",
    "weights_out",
    type=click.Path(dir_okay=False),
    help="Where to write the re-id weights (a plain state_dict, for --reid-weights); "
    "required unless --resume, which reads it from the run's config.json.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(),
    help="Continue an interrupted pretraining from its last checkpoint, then write its weights.",
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(),
    help="Run folder, as for harness run (default runs/<time>-<data>-pretrain-<reid>-s<seed>).",
)
@click.option(
    "--stage0-cache",
    type=click.Path(file_okay=False),
    help="Folder of finished stage-0 re-id models (shared with harness run / bench).",
)
@_friendly
def pretrain(
    weights_out: str | None,
    resume_dir: str | None,
    run_dir: str | None,
    stage0_cache: str | None,
    **kw: Any,
) -> None:
    """Train only the re-id model on HR images of --data, and save its weights.

    The way to start from something better than random weights where no ImageNet
    weights can be had: e.g. pretrain on CUHK03, then
    `harness pretrain --data cuhk03-partial ... --weights cuhk03.pt`, then
    `harness run --data viper --reid-weights cuhk03.pt` fine-tunes on VIPeR.
    The run folder keeps the usual report (HR and bicubic queries on --data's test set).
    """
    registry = _registry()
    cache = Path(stage0_cache) if stage0_cache else None
    if resume_dir:
        folder = Path(resume_dir)
        config = load_run_config(folder)
        recorded = pretrained_weights_path(folder)
        if weights_out is None and recorded is None:
            raise ConfigError(
                f"{folder} records no weights path (not a pretraining run, or one from before "
                "the path was recorded): give --weights PATH"
            )
        click.echo(f"resuming {folder} (its saved config wins over other options)")
        path = pretrain_reid(
            config,
            folder,
            Path(weights_out) if weights_out else recorded,
            registry,
            echo=click.echo,
            stage0_cache_dir=cache,
            resume=True,
        )
        click.echo(f"wrote re-id weights to {path} (use --reid-weights {path})")
        return
    if weights_out is None:
        raise ConfigError("harness pretrain needs --weights PATH (where the re-id weights go)")
    values = {**values_from(kw), **kw}
    values.update({"sr": "bicubic", "reg": "none", "sr_iters": 0})
    config = resolve_config(values, registry)
    folder = Path(run_dir) if run_dir else _default_run_dir(config, f"pretrain-{config.reid}")
    path = pretrain_reid(
        config, folder, Path(weights_out), registry, echo=click.echo, stage0_cache_dir=cache
    )
    click.echo(f"wrote re-id weights to {path} (use --reid-weights {path})")


@main.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--at",
    type=click.IntRange(min=0),
    metavar="N",
    help="Evaluate the kept stage-1 checkpoint of iteration N instead: what a run with an "
    "N-iteration stage 1 reports. Written to RUN_DIR/at/sr-N/; the run's results stay. A run "
    "keeps one every --ckpt-every iterations, the newest --keep-checkpoints.",
)
@_show_samples
@_friendly
def eval_(run_dir: str, at: int | None, show_samples: bool) -> None:
    """Re-evaluate a finished run from its final checkpoint."""
    evaluate_run(Path(run_dir), _registry(), echo=click.echo, show_samples=show_samples, at=at)


# ---------------------------------------------------------------------------- list
@main.command("list")
@click.argument("pattern", required=False)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Also show each component's options, defaults and preset values.",
)
@_friendly
def list_(pattern: str | None, verbose: bool) -> None:
    """Every registered SR model, discriminator, re-id model, regulariser, dataset and
    weight source.

    PATTERN filters names with shell wildcards, as timm's list_models does
    (`harness list 'intact*'`, `harness list '*cuhk*'`); a kind's name lists that kind
    (`harness list weights`, `harness list regulariser`).
    """
    registry = _registry()
    kinds = kind_names()
    whole_kind = pattern in kinds and not any(pattern in registry.names(k) for k in kinds)
    for kind in kinds:
        if whole_kind and kind != pattern:
            continue
        names = [
            n
            for n in registry.names(kind)
            if pattern is None or whole_kind or fnmatch.fnmatch(n, pattern)
        ]
        if pattern is not None and not names:
            continue
        click.echo(f"{kind}:")
        for name in names:
            entry = registry.entries[kind][name]
            click.echo(f"  {name:<22} {entry.summary}  [{entry.plugin}]")
            if isinstance(entry, WeightsEntry):  # a source: say whether its files are here
                click.echo(f"      {availability(entry.source)}")
            if verbose:
                flag = "-L" if kind == "launcher" else "-o"  # how a user sets this kind's options
                for key, option in sorted(entry.options.items()):
                    presets = "".join(f", {p} {v!r}" for p, v in sorted(option.presets.items()))
                    tuned = f" (tune: {option.search.describe()})" if option.search else ""
                    click.echo(
                        f"      {flag} {key}={option.default!r:<10} {option.help}"
                        + (f" (presets: {presets[2:]})" if presets else "")
                        + tuned
                    )
        for res in registry.resolvers(kind) if pattern is None or whole_kind else []:
            click.echo(f"  {'<name>':<22} {res.summary}  [{res.plugin}]")
    if registry.failed:
        click.echo("plugins that failed to load:")
        for name, err in sorted(registry.failed.items()):
            click.echo(f"  {name}: {err}")


# ---------------------------------------------------------------------------- leaderboard / bench
@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(),
    help="Folder for the static site (index.html) and leaderboard.md/.json (default: print only).",
)
@click.option(
    "--show-samples",
    is_flag=True,
    help="Show sample images in the site even of datasets whose images may not be "
    "redistributed (CUHK03), for a private page.",
)
@_friendly
def leaderboard(run_dirs: tuple[str, ...], out: str | None, show_samples: bool) -> None:
    """One table per dataset of finished runs (mean ± std over seeds): markdown, and with
    --out a static site that opens from file:// (index.html)."""
    dirs = _expand_run_dirs([Path(d) for d in run_dirs])
    if out:
        check_out_dir(out, dirs)  # before anything is written: output never replaces an input
        check_run_dir(Path(out))  # an unwritable --out is named before anything is read
    groups = lb.group(lb.collect(dirs))
    click.echo(render_markdown(groups))
    if out:
        write_leaderboard(Path(out), groups, show_samples=show_samples)
        tables = len(lb.boards(groups))
        click.echo(
            f"wrote {Path(out) / 'index.html'} ({tables} table(s); open it in a browser), "
            "leaderboard.md and leaderboard.json"
        )


def _expand_run_dirs(dirs: list[Path]) -> list[Path]:
    """A folder of run folders counts as all of them."""
    out: list[Path] = []
    for d in dirs:
        if (d / "config.json").is_file():
            out.append(d)
        else:
            out.extend(sorted(p.parent for p in d.rglob("config.json")))
    if not out:
        raise HarnessError(f"no run folders (with config.json) under {', '.join(map(str, dirs))}")
    return out


#: the options every grid command shares (bench, tune): where the grid runs and on what
_GRID_OPTIONS = (
    click.option("--data", help="Override the spec's dataset (e.g. synthetic)."),
    click.option("--data-root", type=click.Path()),
    click.option("--preset", type=click.Choice(PRESET_NAMES)),
    click.option("--reid", help="Override the spec's re-id model."),
    click.option(
        "-o", "--option", "options", multiple=True, callback=_parse_options, metavar="KEY=VALUE"
    ),
    click.option(
        "--set",
        "settings",
        multiple=True,
        callback=_parse_options,
        metavar="FIELD=VALUE",
        help="Override any run setting, e.g. --set sr_iters=100 or --set protocol.val_ids=0.",
    ),
    click.option(
        "--tracker",
        "trackers",
        multiple=True,
        metavar="NAME",
        help="Also log each run to this tracker (tensorboard, mlflow; repeatable); MLflow runs "
        "go to OUT/mlruns, one experiment named after the spec.",
    ),
    click.option("--tracker-uri", metavar="URI", help="The trackers' store (default OUT/mlruns)."),
    click.option(
        "--launcher",
        help="How runs are started: local (default with --jobs), ray, slurm, or a "
        "plugin's (harness list launcher). Without --launcher and --jobs: one after another "
        "in this process.",
    ),
    click.option(
        "--jobs",
        type=int,
        help="Runs at once (default: 1 for local; ray/slurm: as many as the engine takes).",
    ),
    click.option(
        "--threads-per-run",
        type=int,
        help="torch threads (and CPUs asked for) per run; a run's numbers "
        "depend on it. Default with a launcher: this machine's cores / --jobs.",
    ),
    click.option(
        "--gpus-per-run",
        type=float,
        help="GPUs per run (default: 1 where this machine has CUDA, else 0).",
    ),
    click.option(
        "--ray-address",
        help="Ray cluster to join (auto, ray://host:10001); same as -L address=...",
    ),
    click.option(
        "-L",
        "--launcher-option",
        "launcher_options",
        multiple=True,
        callback=_parse_options,
        metavar="KEY=VALUE",
        help="Launcher option, e.g. -L partition=gpu -L time_min=120 (harness list -v launcher).",
    ),
)


def _grid_options(func: Callable) -> Callable:
    for option in reversed(_GRID_OPTIONS):
        func = option(func)
    return func


@dataclass(frozen=True)
class _Grid:
    """A grid command's overrides and launcher, read once from its options."""

    overrides: dict[str, Any]
    launcher: str | None
    launcher_options: dict[str, Any]


def _grid(
    data: str | None,
    data_root: str | None,
    preset: str | None,
    reid: str | None,
    options: dict,
    settings: dict,
    trackers: tuple[str, ...],
    tracker_uri: str | None,
    launcher: str | None,
    jobs: int | None,
    ray_address: str | None,
    launcher_options: dict,
) -> _Grid:
    overrides: dict[str, Any] = {
        k: v
        for k, v in {"data": data, "data_root": data_root, "preset": preset, "reid": reid}.items()
        if v
    }
    for key, value in settings.items():  # --set protocol.val_ids=0 sets the protocol table's
        section, dot, field = key.partition(".")
        if dot and section == "protocol":
            overrides.setdefault("protocol", {})[field] = coerce_setting(key, value)
        else:
            overrides[key] = coerce_setting(key, value)
    if options:
        overrides["options"] = options
    if trackers:  # where runs are logged too: no cache key, no number changes with it
        overrides["trackers"] = tracker_names(trackers)
    if tracker_uri:
        overrides["tracker_uri"] = tracker_uri
    if ray_address:
        if launcher not in (None, "ray"):
            raise HarnessError(f"--ray-address is for --launcher ray, not {launcher!r}")
        launcher = "ray"
        launcher_options = {**launcher_options, "address": ray_address}
    if launcher is None and jobs is not None:
        launcher = "local"
    if launcher is None and launcher_options:
        raise HarnessError("-L/--launcher-option needs --launcher (or --jobs for the local one)")
    return _Grid(overrides, launcher, dict(launcher_options))


def _board_text(out_dir: Path) -> str:
    board = out_dir / "leaderboard.md"
    return board.read_text() if board.is_file() else ""


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--seeds", type=int, default=1, show_default=True, help="Runs per row, seeds 0..N-1.")
@click.option(
    "--row", "rows", multiple=True, metavar="LABEL", help="Run only this row (repeatable)."
)
@click.option(
    "--splits",
    type=int,
    help="Dataset splits per seed, 0..N-1 (option split; default: the spec's, else 1).",
)
@click.option("--out", type=click.Path(), help="Output folder (default runs/bench/<spec name>).")
@_grid_options
@_friendly
def bench(
    spec: str,
    seeds: int,
    rows: tuple[str, ...],
    splits: int | None,
    out: str | None,
    jobs: int | None,
    threads_per_run: int | None,
    gpus_per_run: float | None,
    **grid: Any,
) -> None:
    """Run a grid of runs from SPEC.toml (finished runs are skipped) and write its leaderboard.

    With --launcher/--jobs each run is its own process, handed to an engine (local
    processes, Ray, Slurm); runs sharing a stage-0 model wait for the one that trains it.
    """
    registry = _registry()
    loaded = bench_mod.select_rows(bench_mod.load_spec(Path(spec)), rows)
    how = _grid(jobs=jobs, **grid)
    out_dir = Path(out) if out else Path("runs") / "bench" / loaded.name
    try:
        bench_mod.run_bench(
            loaded,
            out_dir,
            seeds=seeds,
            overrides=how.overrides,
            progress=click.echo,
            splits=splits,
            registry=registry,
            launcher=how.launcher,
            jobs=jobs,
            threads_per_run=threads_per_run,
            gpus_per_run=gpus_per_run,
            launcher_options=how.launcher_options,
        )
    except bench_mod.BenchFailed as exc:
        click.echo(_board_text(out_dir))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(_board_text(out_dir))


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--trials",
    type=int,
    help="Finished trials per row, the same for every row (default: the spec's [tune] trials).",
)
@click.option(
    "--seeds",
    type=int,
    default=1,
    show_default=True,
    help="Seeds each row's best settings then run on the test split.",
)
@click.option(
    "--metric",
    type=click.Choice(tune_mod.METRICS),
    help="Validation-split metric to maximise (default: the spec's, else mAP).",
)
@click.option(
    "--row", "rows", multiple=True, metavar="LABEL", help="Tune only this row (repeatable)."
)
@click.option("--out", type=click.Path(), help="Output folder (default runs/tune/<spec name>).")
@click.option(
    "--no-final", is_flag=True, help="Stop after tuning: do not run the best settings on test."
)
@_grid_options
@_friendly
def tune(
    spec: str,
    trials: int | None,
    seeds: int,
    metric: str | None,
    rows: tuple[str, ...],
    out: str | None,
    no_final: bool,
    jobs: int | None,
    threads_per_run: int | None,
    gpus_per_run: float | None,
    **grid: Any,
) -> None:
    """Tune every row of SPEC.toml with the same number of trials on the validation split
    (Optuna TPE, study in OUT/tune.db: a stopped tune resumes), then run each row's best
    settings on the test split and write its leaderboard and OUT/tune.md."""
    registry = _registry()
    loaded = bench_mod.select_rows(bench_mod.load_spec(Path(spec)), rows)
    how = _grid(jobs=jobs, **grid)
    out_dir = Path(out) if out else Path("runs") / "tune" / loaded.name
    try:
        tune_mod.run_tune(
            loaded,
            out_dir,
            trials=trials,
            seeds=seeds,
            metric=metric,
            overrides=how.overrides,
            registry=registry,
            progress=click.echo,
            launcher=how.launcher,
            jobs=jobs,
            threads_per_run=threads_per_run,
            gpus_per_run=gpus_per_run,
            launcher_options=how.launcher_options,
            final=not no_final,
        )
    except bench_mod.BenchFailed as exc:
        click.echo(_board_text(out_dir))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo((out_dir / "tune.md").read_text())
    click.echo(_board_text(out_dir))


# ---------------------------------------------------------------------------- data
@main.group()
def data() -> None:
    """Dataset utilities."""


@data.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option(
    "--layout",
    default="market1501",
    show_default=True,
    type=click.Choice(["market1501", "dukemtmc", "cuhk03", "cuhk03-partial", "viper", "caviar"]),
)
@click.option(
    "--train-ids", type=int, help="Training identities (default: the synthetic dataset's own)."
)
@click.option("--test-ids", type=int, help="Test identities.")
@click.option("--cameras", type=int)
@click.option("--images-per-camera", type=int)
@click.option("--height", type=int, help="Image height (default: the generator's native 128).")
@click.option("--width", type=int)
@click.option("--seed", type=int)
@_friendly
def data_synth(out: str, layout: str, **sizes: int | None) -> None:
    """Write the synthetic dataset to disk in an official layout."""
    entry = _registry().lookup("dataset", "synthetic")
    if not isinstance(entry, DatasetEntry) or entry.write_layout is None:
        raise HarnessError(
            "the registered 'synthetic' dataset offers no layout writer (write_layout)"
        )
    try:
        path = entry.write_layout(
            Path(out), layout, **{k: v for k, v in sizes.items() if v is not None}
        )
    except ValueError as exc:  # the generator's own range checks, before anything is written
        raise ConfigError(f"harness data synth: {exc}") from None
    click.echo(f"wrote synthetic {layout} data to {path}")


@data.command("pack")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option(
    "--size", default="128x64", show_default=True, help="HEIGHTxWIDTH of every image in the copy."
)
@click.option("--quality", default=80, show_default=True, help="JPEG quality for .jpg images.")
@_friendly
def data_pack(src: str, out: str, size: str, quality: int) -> None:
    """Copy dataset folder SRC to OUT (a folder, or one .tar) with every image resized.

    The layout and file names are kept, so the copy loads with the same --data reader;
    e.g. `harness data pack ../shared/data/cuhk03-labeled cuhk03-128x64.tar` makes a
    ~30 MB CUHK03 for a size-limited upload (unpack with `tar xf`).
    """
    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError as exc:
        raise click.BadParameter(
            f"expected HEIGHTxWIDTH such as 128x64, got {size!r}", param_hint="--size"
        ) from exc
    if not (1 <= height <= 4096 and 1 <= width <= 4096):
        raise click.BadParameter(
            f"each side must be 1 to 4096 pixels, got {height}x{width}", param_hint="--size"
        )
    if not 1 <= quality <= 100:
        raise click.BadParameter(f"must be 1 to 100, got {quality}", param_hint="--quality")
    summary = pack_dataset(src, out, (height, width), quality)
    click.echo(
        f"wrote {summary.images} images ({height}x{width}) and {summary.other_files} other file(s) "
        f"to {summary.out}: {summary.bytes_written / 2**20:.1f} MiB"
    )


@data.command("info")
@click.option("--data", "name", default="synthetic", show_default=True)
@click.option("--data-root", type=click.Path())
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="cpu", show_default=True)
@_friendly
def data_info(name: str, data_root: str | None, preset: str) -> None:
    """Parse a dataset folder and print its statistics and MLR split."""
    registry = _registry()
    config = resolve_config({"data": name, "data_root": data_root, "preset": preset}, registry)
    dataset = registry.lookup("dataset", name).factory(data_root, config)
    click.echo(
        json.dumps(
            {"dataset": dataset.summary(), "mlr": build_mlr(dataset, config.protocol).describe()},
            indent=2,
            default=str,
        )
    )


# ---------------------------------------------------------------------------- check-plugin
@main.command("check-plugin")
@click.argument("name")
@click.option(
    "--kind", help="Only components of this kind: sr, discriminator, reid, regulariser, dataset."
)
@click.option(
    "--data-root",
    type=click.Path(),
    help="Folder for dataset checks (datasets that read files need one).",
)
@_friendly
def check_plugin(name: str, kind: str | None, data_root: str | None) -> None:
    """Contract-check NAME: a component of any kind, or every component of the plugin NAME.

    Tiny inputs on CPU (the smoke preset); prints one line per passed check.
    """
    registry = _registry()
    checked = 0
    for entry in find_components(registry, name, kind):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ContractWarning)
                config = component_config(registry, entry, data_root)
                lines = check_component(registry, entry.kind, entry.name, config, root=data_root)
        except DatasetError as exc:
            if data_root is not None:
                raise
            click.echo(f"skipped dataset {entry.name!r} (no --data-root): {exc}")
            continue
        for line in lines:
            click.echo(f"ok  {line}")
        for warning in caught:
            if issubclass(warning.category, ContractWarning):
                click.echo(f"warning: {warning.message}")  # kept, but it will not work well
            else:  # anything else is shown as Python would have shown it
                warnings.showwarning(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        checked += 1
    if not checked:
        raise HarnessError(f"nothing was checked for {name!r}: give --data-root for its dataset(s)")


# ---------------------------------------------------------------------------- export, search
@main.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript"]),
    default="onnx",
    show_default=True,
    help="onnx (runs in onnxruntime) or torchscript (torch.jit.load).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option(
    "--query-path",
    type=click.Choice(["sr", "bicubic"]),
    help="The LR query path to export (default: the run's own row, sr unless a bench row says).",
)
@_friendly
def export(run_dir: str, fmt: str, out: str, query_path: str | None) -> None:
    """Write a finished run's query path (LR -> SR -> feature, one graph per ratio) and gallery
    path (HR -> feature) as models that run without the harness, with a model card."""
    from harness.export import export_run

    export_run(Path(run_dir), Path(out), fmt, _registry(), query=query_path, echo=click.echo)


@main.command("search")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option(
    "--model", type=click.Path(file_okay=False), help="An export folder instead of RUN_DIR."
)
@click.option(
    "--query",
    "queries",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="An LR query image of any size; repeat for several.",
)
@click.option("--gallery", required=True, type=click.Path(), help="A folder of gallery crops.")
@click.option("--top", default=10, show_default=True, help="Matches shown per query.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    help="Folder of cached gallery features (default OUT/cache).",
)
@click.option(
    "--query-path",
    type=click.Choice(["sr", "bicubic"]),
    help="With RUN_DIR: the LR query path (default: the run's own row).",
)
@_friendly
def search(
    run_dir: str | None,
    model: str | None,
    queries: tuple[str, ...],
    gallery: str,
    top: int,
    out: str,
    cache: str | None,
    query_path: str | None,
) -> None:
    """Find each LR --query person among the --gallery folder's crops, with RUN_DIR's models
    (or an exported --model); writes results.json and index.html to --out."""
    from harness.export import load_exported, run_embedder
    from harness.search import search as run_search

    if (run_dir is None) == (model is None):
        raise HarnessError("give either a run folder RUN_DIR or --model EXPORT_DIR, not both")
    if model is not None:
        embedder = load_exported(Path(model))
    else:
        embedder = run_embedder(Path(run_dir), _registry(), query=query_path)
    doc = run_search(embedder, list(queries), gallery, out, top=top, cache_dir=cache)
    click.echo(
        f"searched {len(doc['queries'])} quer{'y' if len(doc['queries']) == 1 else 'ies'} "
        f"against {doc['gallery_size']} gallery images ({doc['embedded']} embedded, "
        f"{doc['cached']} cached); wrote {Path(out) / 'index.html'} and results.json"
    )
    for q in doc["queries"]:
        best = q["matches"][0]
        click.echo(f"  {q['image']}: 1. {best['image']}  d={best['distance']:.4f}")


if __name__ == "__main__":
    main()
