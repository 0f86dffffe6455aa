"""Experiment trackers (issue 26, item 1): TensorBoard and MLflow read back what a run logged,
with their own readers; the fan-out's rules (fail early, never fail a run later, resume
continues) on a tracker that records calls; the setting changes no cache key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import HarnessError, hookimpl
from harness.cli import main
from harness.registry import Registry
from harness.tracking import (
    RunTrackers,
    TrackerSettings,
    final_metrics,
    flatten,
    record_metrics,
)

# --------------------------------------------------------------------------- one real run


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    """``harness run --preset smoke --tracker tensorboard --tracker mlflow`` (the acceptance)."""
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--preset",
            "smoke",
            "--tracker",
            "tensorboard",
            "--tracker",
            "mlflow",
            "--out",
            str(run_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    return run_dir


def _logged(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every loss term and diagnostic of log.jsonl, as the trackers must name them."""
    out: dict[str, dict[int, float]] = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name, value in record_metrics(record).items():
            out.setdefault(name, {})[int(record["iteration"])] = value
    return out


@pytest.mark.slow
def test_tensorboard_reads_back_every_loss_term(tracked_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    logged = _logged(tracked_run)
    assert any(name.startswith("reid/") for name in logged)
    assert any(name.startswith("sr/") for name in logged)
    for name, points in logged.items():
        read = {e.step: e.value for e in events.Scalars(name)}
        assert read.keys() == points.keys(), name  # every log step once, none twice
        assert read == pytest.approx(points, rel=1e-6), name
    metrics = json.loads((tracked_run / "metrics.json").read_text())
    assert events.Scalars("test/sr/rank1")[0].value == pytest.approx(
        metrics["queries"]["sr"]["rank1"]
    )
    assert {"artefacts/cmc", "artefacts/sr_samples"} <= set(events.Tags()["images"])
    assert "config/text_summary" in events.Tags()["tensors"]  # the config table (add_text)


@pytest.mark.slow
def test_mlflow_reads_back_params_metrics_and_artefacts(tracked_run: Path) -> None:
    from mlflow.tracking import MlflowClient

    state = json.loads((tracked_run / "mlflow.json").read_text())
    assert state["tracking_uri"].startswith("sqlite:///")  # a local store, no server
    assert Path(state["tracking_uri"][len("sqlite:///") :]).parent == tracked_run.parent / "mlruns"
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == tracked_run.name
    assert client.get_experiment(run.info.experiment_id).name == "harness"

    config = json.loads((tracked_run / "config.json").read_text())
    assert run.data.params == flatten(config)
    assert run.data.params["config.preset"] == "smoke"
    assert run.data.params["config.trackers"] == "tensorboard,mlflow"

    for name, points in _logged(tracked_run).items():
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
        assert history == pytest.approx(points, rel=1e-6), name
    metrics = json.loads((tracked_run / "metrics.json").read_text())
    final = final_metrics(metrics)
    assert final["test/sr/rank1"] == metrics["queries"]["sr"]["rank1"]
    assert any(name.startswith("test/sr/x") for name in final)  # per ratio too
    for name, value in final.items():
        assert run.data.metrics[name] == pytest.approx(value), name

    artefacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"cmc.png", "sr_samples.png"} <= artefacts
    assert {p for p in ("ranks.png", "ranks.json") if (tracked_run / p).is_file()} <= artefacts


# --------------------------------------------------------------------------- failing early


def test_an_unknown_tracker_fails_before_the_run_starts(tmp_path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["run", "--preset", "smoke", "--tracker", "tensorbord", "--out", str(run_dir)]
    )
    assert result.exit_code != 0
    assert "unknown tracker 'tensorbord'" in result.output and "tensorboard" in result.output
    assert not (run_dir / "log.jsonl").exists() and not (run_dir / "split.json").exists()


class Recorder:
    """A tracker that keeps every call."""

    def __init__(self, settings: TrackerSettings, calls: list, fail_on: str | None = None):
        self.settings, self.calls, self.fail_on = settings, calls, fail_on

    def _call(self, name: str, *args) -> None:
        if name == self.fail_on:
            raise RuntimeError(f"{name} broke\nsecond line")
        self.calls.append((name, *args))

    def log_params(self, params):
        self._call("params", dict(params))

    def log_metrics(self, metrics, step):
        self._call("metrics", dict(metrics), step)

    def log_artifact(self, path):
        self._call("artifact", Path(path).name)

    def close(self, status):
        self._call("close", status)


def _registry(calls: list, fail_on: str | None = None) -> Registry:
    class Plugin:
        @hookimpl
        def harness_register_trackers(self, registry):
            registry.add("rec", lambda s: Recorder(s, calls), "records calls")
            registry.add("bad", lambda s: Recorder(s, calls, fail_on), "breaks on a call")
            registry.add(
                "needs",
                lambda s: Recorder(s, calls),
                "needs a library that is not here",
                requires="no_such_module_for_harness",
                install_hint="pip install no-such-module",
            )

    reg = Registry()
    reg.register_plugin(Plugin(), "test-trackers")
    return reg


def test_a_missing_library_fails_in_one_line_and_closes_the_trackers_opened(tmp_path) -> None:
    calls: list = []
    trackers = RunTrackers(echo=lambda m: None)
    with pytest.raises(HarnessError) as info:
        trackers.open(["rec", "needs"], TrackerSettings(tmp_path, "r"), _registry(calls))
    assert str(info.value) == (
        "tracker 'needs' needs the no_such_module_for_harness package, which is not installed "
        "(pip install no-such-module)"
    )
    assert calls == [("close", "failed")] and not trackers


def test_a_tracker_failing_later_is_dropped_and_the_run_goes_on(tmp_path) -> None:
    calls: list = []
    warnings: list[str] = []
    trackers = RunTrackers(echo=warnings.append)
    trackers.open(["bad", "rec"], TrackerSettings(tmp_path, "r"), _registry(calls, "metrics"))
    trackers.log_record({"stage": "sr", "iteration": 2, "G/pixel": 0.5, "time": 1.0})
    trackers.log_record({"stage": "sr", "iteration": 4, "G/pixel": 0.25})
    trackers.close("complete")
    assert warnings == [
        "warning: tracker 'bad' failed to log metrics and is dropped for the rest of this run: "
        "RuntimeError: metrics broke"
    ]
    assert calls == [
        ("metrics", {"sr/G/pixel": 0.5}, 2),
        ("metrics", {"sr/G/pixel": 0.25}, 4),
        ("close", "complete"),
    ]


def test_a_resumed_run_logs_no_step_twice(tmp_path) -> None:
    """The interrupted attempt logged up to sr iteration 6 (past its last checkpoint, at 4):
    the resumed attempt logs from the first step after 6, whatever it recomputes."""
    log = tmp_path / "log.jsonl"
    lines = [
        {"stage": "reid", "iteration": 4, "ID/id": 1.0},
        {"stage": "sr", "iteration": 2, "G/pixel": 0.5},
        {"stage": "sr", "iteration": 6, "G/pixel": 0.3},
        '{"stage": "sr", "iter',  # torn by the crash
    ]
    log.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    calls: list = []
    trackers = RunTrackers(echo=lambda m: None)
    trackers.open(["rec"], TrackerSettings(tmp_path, "r", resume=True), _registry(calls), log)
    for iteration in (4, 6, 8):
        trackers.log_record({"stage": "sr", "iteration": iteration, "G/pixel": 0.1})
    assert calls == [("metrics", {"sr/G/pixel": 0.1}, 8)]


def test_results_and_artefacts_go_to_every_tracker(tmp_path) -> None:
    calls: list = []
    trackers = RunTrackers(echo=lambda m: None)
    trackers.open(["rec"], TrackerSettings(tmp_path, "r"), _registry(calls))
    (tmp_path / "cmc.png").write_bytes(b"png")
    (tmp_path / "ranks.json").write_text("{}")
    metrics = {
        "queries": {
            "sr": {"rank1": 0.5, "cmc": [0.5, 1.0], "per_ratio": {"2": {"rank1": 0.25}}},
            "hr": {"rank1": 0.75, "mAP": float("nan")},
        },
        "val": {"queries": {"sr": {"rank1": 0.4}}},
    }
    trackers.log_results(metrics, tmp_path)
    assert calls == [
        (
            "metrics",
            {
                "test/sr/rank1": 0.5,
                "test/sr/x2/rank1": 0.25,
                "test/hr/rank1": 0.75,
                "val/sr/rank1": 0.4,
            },
            0,
        ),
        ("artifact", "cmc.png"),
        ("artifact", "ranks.json"),
    ]


# --------------------------------------------------------------------------- the setting


def test_the_tracker_setting_changes_no_cache_key_nor_recipe(registry) -> None:
    from harness.cache import stage_settings
    from harness.config import tracker_names
    from harness.leaderboard import recipe
    from harness.run import resolve_config
    from harness.settings import CACHED_STAGES

    for stage in CACHED_STAGES:
        assert not {"trackers", "tracker_uri"} & set(stage_settings(stage)), stage.name
    plain = resolve_config({"preset": "smoke"}, registry)
    tracked = resolve_config(
        {"preset": "smoke", "trackers": "mlflow,none,mlflow", "tracker_uri": "x"}, registry
    )
    assert tracked.trackers == ("mlflow",)
    assert recipe(plain.to_dict()) == recipe(tracked.to_dict())
    assert tracker_names(["tensorboard", " mlflow", "None"]) == ("tensorboard", "mlflow")


def test_a_bad_tracker_uri_is_refused_in_one_line(tmp_path) -> None:
    from crossres_plugins.trackers.mlflow_tracker import store

    from harness import ConfigError

    with pytest.raises(ConfigError, match="never a server"):
        store("http://localhost:5000", tmp_path / "run")
    uri, artefacts = store(str(tmp_path / "mine"), tmp_path / "run")
    assert uri == f"sqlite:///{tmp_path / 'mine' / 'mlflow.db'}"
    assert artefacts == tmp_path / "mine" / "artifacts"


@pytest.mark.slow
def test_mlflow_reopens_its_run_on_resume(tmp_path) -> None:
    from crossres_plugins.trackers.mlflow_tracker import MlflowTracker
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "bench" / "row" / "seed0"
    run_dir.mkdir(parents=True)
    uri = str(tmp_path / "bench" / "mlruns")
    first = MlflowTracker(TrackerSettings(run_dir, "INTACT s0", group="my-spec", uri=uri))
    first.log_metrics({"sr/G/pixel": 0.5}, 2)
    first.close("interrupted")
    again = MlflowTracker(
        TrackerSettings(run_dir, "INTACT s0", group="my-spec", uri=uri, resume=True)
    )
    assert again.run_id == first.run_id  # the same MLflow run, continued
    again.log_metrics({"sr/G/pixel": 0.25}, 4)
    again.close("complete")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'bench' / 'mlruns' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "my-spec"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "INTACT s0"
    history = client.get_metric_history(run.info.run_id, "sr/G/pixel")
    assert [(m.step, m.value) for m in history] == [(2, 0.5), (4, 0.25)]


# --------------------------------------------------------------------------- a bench


def test_a_bench_passes_its_trackers_on_and_groups_runs_under_its_spec(
    tmp_path, monkeypatch
) -> None:
    """``harness bench --tracker mlflow``: each run is tracked, in one store in the bench's
    folder, in the experiment named after the spec (run_experiment is stood in for)."""
    import harness.bench as bench_mod

    seen: list = []
    monkeypatch.setattr(
        bench_mod,
        "run_experiment",
        lambda config, run_dir, registry, **kw: seen.append((config, run_dir, kw["extra"])),
    )
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "my-spec"\n[[runs]]\nlabel = "MSE"\nreg = "none"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["bench", str(spec), "--preset", "smoke", "--tracker", "mlflow", "--out", str(out)],
    )
    assert seen, result.output
    (config, run_dir, extra) = seen[0]
    assert config.trackers == ("mlflow",)
    assert config.tracker_uri == str((out / "mlruns").resolve())
    assert extra["bench"] == "my-spec" and extra["label"] == "MSE"
    assert run_dir == out / "mse" / "seed0"


def test_the_built_in_trackers_are_typed_entries(registry) -> None:
    from harness.registrars import TrackerEntry

    mlflow, tensorboard = (registry.lookup("tracker", n) for n in ("mlflow", "tensorboard"))
    assert isinstance(mlflow, TrackerEntry) and mlflow.requires == "mlflow"
    assert "crossres-harness[track]" in (mlflow.install_hint or "")
    assert isinstance(tensorboard, TrackerEntry) and tensorboard.requires is None
