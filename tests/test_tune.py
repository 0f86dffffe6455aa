"""harness tune: equal-budget tuning on the validation split (issue "Is the gap real?").

Most tests replace the trainer by a stand-in that writes a finished metrics.json in
milliseconds, whose validation score peaks at a known weight and whose test score would
pick another one: so the tests see what the tuner reads, how many trials each row gets,
and what a SIGKILL leaves behind, without training. One slow test tunes real smoke runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import bench as bench_mod
from harness import log_range
from harness.errors import ConfigError
from harness.options import Search
from harness.tune import STUDY_FILE, row_space, run_tune

optuna = pytest.importorskip("optuna")

SPEC = """
name = "tiny"
[defaults]
data = "synthetic"
preset = "smoke"
sr = "srgan"
[tune]
space = { lambda_c = [1e-4, 1e-3] }
[[runs]]
label = "GAN"
reg = "gan"
[[runs]]
label = "INTACT"
reg = "intact"
options = { lambda_a = 3e-5 }
"""


def _spec(tmp_path: Path, text: str = SPEC) -> bench_mod.BenchSpec:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return bench_mod.load_spec(path)


def fake_run(settings: dict, run_dir: Path, label: str, paper, query: str) -> None:
    """A finished run whose validation mAP peaks at lambda_c = 3e-4 and whose test mAP
    peaks at the range's low end: a tuner that read the test would pick another trial."""
    lam = float(settings.get("options", {}).get("lambda_c", 3e-4))
    val = 1.0 - abs(math.log10(lam) - math.log10(3e-4))
    test = 1.0 - abs(math.log10(lam) - math.log10(1e-4))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "settings.json").write_text(json.dumps(settings))
    metrics = {
        "status": "complete",
        "queries": {query: {"mAP": test, "rank1": test}},
        "val": {"queries": {query: {"mAP": val, "rank1": val}}},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def _complete(out: Path, study: str) -> list:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{out / STUDY_FILE}")
    return loaded.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_a_spec_narrows_a_declared_space_and_never_widens_it() -> None:
    space = log_range(3e-5, 3e-3)
    assert space.narrowed([1e-4, 1e-3], "k") == Search(low=1e-4, high=1e-3, log=True)
    with pytest.raises(ConfigError, match="must lie inside the declared log"):
        space.narrowed([1e-6, 1e-3], "k")
    with pytest.raises(ConfigError, match=r"give \[low, high\]"):
        space.narrowed("1e-4", "k")
    assert Search(choices=("a", "b")).narrowed(["b"], "k") == Search(choices=("b",))
    with pytest.raises(ConfigError, match="choose among"):
        Search(choices=("a", "b")).narrowed(["c"], "k")
    with pytest.raises(ValueError, match="low > 0"):
        log_range(0.0, 1.0)


def test_each_row_tunes_what_its_plugins_declare_minus_what_it_pins(registry, tmp_path) -> None:
    spec = _spec(tmp_path)
    plan = bench_mod.expand(spec, {}, 1, tmp_path / "out")
    gan, intact = (row_space(r, b, spec, registry) for r, b in zip(spec.runs, plan, strict=True))
    assert set(gan.space) == {"lambda_c", "lambda_g"}
    # INTACT pins lambda_a itself: its bridge weight is tuned, its critic weight is not
    assert set(intact.space) == {"lambda_c", "lambda_g", "lambda_e"}
    assert gan.space["lambda_c"] == Search(low=1e-4, high=1e-3, log=True)  # the spec's [tune]
    assert gan.space["lambda_g"] == log_range(3e-5, 3e-3)  # as declared
    off = bench_mod.expand(spec, {"protocol": {"val_ids": 0.0}}, 1, tmp_path / "out")
    with pytest.raises(ConfigError, match="validation split, and --val-ids is 0"):
        row_space(spec.runs[0], off[0], spec, registry)


def test_every_row_gets_the_same_trials_judged_on_validation_only(registry, tmp_path) -> None:
    spec = _spec(tmp_path, SPEC.replace("space = {", "trials = 3\nspace = {"))
    out = tmp_path / "out"
    said: list[str] = []
    result = run_tune(spec, out, registry=registry, progress=said.append, run_fn=fake_run)
    counted = [m.split("]")[0] for m in said if m.startswith("[GAN: trial")]
    assert counted == ["[GAN: trial 1/3", "[GAN: trial 2/3", "[GAN: trial 3/3"]
    for study in ("gan", "intact"):
        done = _complete(out, study)
        assert len(done) == 3
        # the best trial is the best on validation, whatever the test says
        best = max(done, key=lambda t: t.value)
        label = {"gan": "GAN", "intact": "INTACT"}[study]
        assert result.best[label] == best.params
        assert all((out / study / f"trial{t.number}" / "metrics.json").is_file() for t in done)
    # the final runs carry each row's best settings, the row's own pins kept
    final = json.loads((out / "intact" / "seed0" / "settings.json").read_text())
    assert final["options"]["lambda_a"] == 3e-5
    assert final["options"]["lambda_c"] == result.best["INTACT"]["lambda_c"]
    report = (out / "tune.md").read_text()
    assert "3 finished trials per row, validation-split mAP" in report
    assert report.count("(best)") == 2 and (out / "gan" / "history.png").is_file()
    # started again, a finished tune trains nothing more
    calls: list[str] = []

    def counting(settings, run_dir, label, paper, query) -> None:
        calls.append(label)

    run_tune(spec, out, registry=registry, progress=lambda m: None, run_fn=counting)
    assert calls == [] and len(_complete(out, "gan")) == 3


def test_each_row_first_tries_its_untuned_settings(registry, tmp_path) -> None:
    spec = _spec(tmp_path, SPEC.replace("space = {", "trials = 2\nspace = {"))
    out = tmp_path / "out"
    run_tune(spec, out, registry=registry, progress=lambda m: None, run_fn=fake_run, final=False)
    for study, expected in (
        ("gan", {"lambda_c": 3e-4, "lambda_g": 3e-4}),
        ("intact", {"lambda_c": 3e-4, "lambda_g": 3e-4, "lambda_e": 1.0}),  # lambda_a: pinned
    ):
        first = min(_complete(out, study), key=lambda t: t.number)
        assert first.params == pytest.approx(expected)
    assert (out / "tune.md").read_text().count("(untuned)") == 2  # one trial of each row
    # a space narrowed past a default has no untuned point: the first trial is TPE's
    narrowed = SPEC.replace("lambda_c = [1e-4, 1e-3]", "lambda_c = [1e-3, 3e-3]")
    spec = _spec(tmp_path, narrowed.replace("space = {", "trials = 1\nspace = {"))
    plan = bench_mod.expand(spec, {}, 1, tmp_path / "other")
    row = row_space(spec.runs[0], plan[0], spec, registry)
    assert row.defaults == {"lambda_c": 3e-4, "lambda_g": 3e-4} and row.first_trial is None
    run_tune(
        spec,
        tmp_path / "other",
        registry=registry,
        progress=lambda m: None,
        run_fn=fake_run,
        final=False,
    )
    (only,) = _complete(tmp_path / "other", "gan")
    assert 1e-3 <= only.params["lambda_c"] <= 3e-3
    assert "outside this space: no untuned trial" in (tmp_path / "other" / "tune.md").read_text()


def test_two_tunes_sharing_a_study_never_repeat_a_trial(registry, tmp_path) -> None:
    """A second tune started while the first runs a trial asks the next trial itself; each
    process's sampler once drew the same sequence, so it repeated the first's draw."""
    from harness.errors import HarnessError

    spec = _spec(tmp_path, SPEC.replace("space = {", "trials = 3\nspace = {"))
    spec = dataclasses.replace(spec, runs=spec.runs[:1])  # the GAN row
    out = tmp_path / "out"
    nested: list[str] = []

    def run(settings, run_dir, label, paper, query) -> None:
        if label.endswith("trial 1") and not nested:  # the other process starts meanwhile
            nested.append(label)
            with pytest.raises(HarnessError, match="running in another process"):
                run_tune(
                    spec, out, registry=registry, progress=nested.append, run_fn=run, final=False
                )
        fake_run(settings, run_dir, label, paper, query)

    run_tune(spec, out, registry=registry, progress=lambda m: None, run_fn=run, final=False)
    trials = sorted(_complete(out, "gan"), key=lambda t: t.number)
    assert len(trials) == 3 and any("trial 3/3" in m for m in nested)  # the other ran trial 2
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == 3, drawn


def test_a_search_space_knows_its_points() -> None:
    space = log_range(1e-4, 1e-2)
    assert space.contains(1e-3) and space.contains(1e-4) and not space.contains(1e-1)
    assert not space.contains("1e-3") and not space.contains(float("nan"))
    assert Search(low=1, high=4, integer=True).contains(2)
    assert not Search(low=1, high=4, integer=True).contains(2.5)
    assert Search(choices=("a", "b")).contains("b") and not Search(choices=("a",)).contains("b")


KILLED_TUNE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_tune import fake_run
from harness import bench as bench_mod
from harness.tune import run_tune

calls = []

def run(settings, run_dir, label, paper, query):
    calls.append(label)
    if len(calls) == 2:  # the second trial hangs until the test kills this process
        Path({marker!r}).write_text(str(run_dir))
        time.sleep(600)
    fake_run(settings, run_dir, label, paper, query)

spec = bench_mod.load_spec({spec!r})
run_tune(spec, Path({out!r}), trials=3, progress=print, run_fn=run, final=False)
"""


@pytest.mark.slow
def test_a_tune_killed_mid_trial_resumes_to_exactly_the_budget(registry, tmp_path) -> None:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC)
    out, marker = tmp_path / "out", tmp_path / "hung"
    script = KILLED_TUNE.format(
        tests=str(Path(__file__).parent),
        marker=str(marker),
        spec=str(spec_path),
        out=str(out),
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), "the tune never reached its second trial"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    hung_folder = Path(marker.read_text())
    assert len(_complete(out, "gan")) == 1
    run_tune(
        bench_mod.load_spec(spec_path),
        out,
        trials=3,
        registry=registry,
        progress=lambda m: None,
        run_fn=fake_run,
        final=False,
    )
    for study in ("gan", "intact"):
        assert len(_complete(out, study)) == 3
    # the orphaned trial was retried with its own settings, in its own folder
    loaded = optuna.load_study(study_name="gan", storage=f"sqlite:///{out / STUDY_FILE}")
    failed = loaded.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(failed) == 1
    retried = [t for t in _complete(out, "gan") if t.params == failed[0].params]
    assert retried and retried[0].user_attrs["folder"] == failed[0].number
    assert (hung_folder / "metrics.json").is_file()


@pytest.mark.slow
def test_tune_cli_on_real_smoke_runs_writes_a_report_and_a_test_leaderboard(tmp_path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.split('[[runs]]\nlabel = "INTACT"')[0])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["tune", str(spec), "--trials", "1", "--out", str(out), "--metric", "rank1"]
    )
    assert result.exit_code == 0, result.output
    assert "validation-split rank1" in (out / "tune.md").read_text()
    board = json.loads((out / "leaderboard.json").read_text())
    assert "GAN" in json.dumps(board)
    assert (out / "gan" / "trial0" / "metrics.json").is_file()
    assert (out / "gan" / "seed0" / "metrics.json").is_file()
