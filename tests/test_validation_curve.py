"""harness.validation: the validation curve over stage 1 (``--val-every``).

What must hold for the curve to answer "would a shorter stage 1 have done as well": a point
changes nothing in training (a run's weights are the same with and without the curve), and the
point at iteration N is exactly what an N-iteration run scores on the validation split.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from harness.config import ConfigError
from harness.report import format_summary, write_run_report
from harness.run import run_experiment, seed_everything
from harness.validation import curve_from_log, validation_point
from tests.helpers import make_trainer, same_state, smoke_config, state

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(registry, tmp_path, sr_iters: int, val_every: int):
    """A smoke intact run (spectral-normalised D, a critic warm-up: state a point could
    disturb) trained through stage 1; its trainer and its log. Runs that differ only in stage
    1 share stage 0, the warm start and the critic warm-up through their caches, as in a bench."""
    seed_everything(0)
    records: list[dict] = []
    trainer = make_trainer(registry, tmp_path, reg="intact", sr_iters=sr_iters, val_every=val_every)
    caches = tmp_path.parent / "caches"
    caches.mkdir(exist_ok=True)
    trainer.stage0_cache, trainer.warmup_cache, trainer.critic_cache = (
        caches / f"{name}.pt" for name in ("stage0", "warmup", "critic")
    )
    trainer.log = records.append
    trainer.validate = functools.partial(
        validation_point, trainer.models, trainer.data, trainer.config, torch.device("cpu")
    )
    trainer.fit()
    return trainer, records


@pytest.mark.slow
def test_a_curve_point_is_what_a_run_of_that_length_scores_and_changes_nothing(registry, tmp_path):
    long, records = _train(registry, tmp_path / "a", sr_iters=4, val_every=2)
    curve = curve_from_log(records)
    assert [p["iteration"] for p in curve] == [2, 4]
    assert set(curve[0]) == {"iteration", "rank1", "rank5", "mAP", "psnr"}

    plain, _ = _train(registry, tmp_path / "b", sr_iters=4, val_every=0)
    for name in ("G", "D", "reid"):  # the curve's reads left every module where it would be
        assert same_state(state(long.models[name]), state(plain.models[name])), name

    short, _ = _train(registry, tmp_path / "c", sr_iters=2, val_every=0)
    point = validation_point(short.models, short.data, short.config, torch.device("cpu"))
    assert {k.removeprefix("val/"): v for k, v in point.items()} == {
        k: v for k, v in curve[0].items() if k != "iteration"
    }
    assert point["val/psnr"] != curve[1]["psnr"]  # the two points differ: G moved between them


def test_a_point_restores_every_training_flag(registry, tmp_path):
    seed_everything(0)
    trainer = make_trainer(registry, tmp_path, reg="intact")
    trainer.models["reid"].eval()  # frozen re-id, as stage 1 holds it
    trainer.models["G"].train()
    before = {name: [m.training for m in model.modules()] for name, model in trainer.models.items()}
    validation_point(trainer.models, trainer.data, trainer.config, torch.device("cpu"))
    after = {name: [m.training for m in model.modules()] for name, model in trainer.models.items()}
    assert before == after


def test_the_curve_needs_a_validation_split(registry):
    with pytest.raises(ConfigError, match=r"--val-every 5 .* --val-ids above 0"):
        smoke_config(registry, val_every=5, protocol={"val_ids": 0.0})


def test_curve_from_log_keeps_stage_1_points_in_order_and_nothing_else():
    records = [
        {"stage": "warmup", "iteration": 2, "val/rank1": 0.9},  # not stage 1
        {"stage": "sr", "iteration": 2, "loss": 1.0},  # a loss line
        {"stage": "sr", "iteration": 2, "val/rank1": 0.25, "val/mAP": 0.3, "val/psnr": 24.0},
        {"stage": "sr", "iteration": 4, "val/rank1": 0.5, "val/mAP": 0.4},  # a native-LR split
    ]
    assert curve_from_log(records) == [
        {"iteration": 2, "rank1": 0.25, "mAP": 0.3, "psnr": 24.0},
        {"iteration": 4, "rank1": 0.5, "mAP": 0.4},
    ]


def test_the_report_draws_the_curve_only_for_a_run_that_has_one(tmp_path):
    queries = {"sr": {"rank1": 0.5, "mAP": 0.4, "cmc": [0.5, 0.7]}}
    write_run_report(tmp_path, {"queries": queries})
    assert not (tmp_path / "val_curve.png").exists()
    curve = [
        {"iteration": 125, "rank1": 1.0, "rank5": 1.0, "mAP": 0.94, "psnr": 25.7},
        {"iteration": 250, "rank1": 0.93, "rank5": 1.0, "mAP": 0.95},  # a point without PSNR
    ]
    written = write_run_report(tmp_path, {"queries": queries, "val_curve": curve})
    assert tmp_path / "val_curve.png" in written
    assert (tmp_path / "val_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_run_records_its_curve_its_cost_and_prints_it(registry, tmp_path):
    config = smoke_config(
        registry, reg="gan", sr_iters=4, val_every=2, ckpt_every=2, keep_checkpoints=5
    )
    printed: list[str] = []
    run_experiment(config, tmp_path / "run", registry, echo=printed.append)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    curve = metrics["val_curve"]
    assert [p["iteration"] for p in curve] == [2, 4]
    # the last point is the run's own validation score: the same models, the same split
    assert curve[-1]["rank1"] == pytest.approx(metrics["val"]["queries"]["sr"]["rank1"], abs=1e-5)
    assert curve[-1]["psnr"] == pytest.approx(metrics["val"]["queries"]["sr"]["psnr"], abs=1e-4)
    assert (tmp_path / "run" / "val_curve.png").stat().st_size > 0
    sr_stage = metrics["timing"]["stages"]["sr"]
    assert 0 < sr_stage["validation_s"] < sr_stage["wall_s"]
    summary = format_summary(metrics)
    assert "validation curve over stage 1 (iteration: SR Rank-1 / PSNR): 2: " in summary
    assert any("validation curve" in line for line in printed)

    # harness eval --at: the kept stage-1 checkpoint of an iteration, evaluated on both splits
    run = tmp_path / "run"
    before = (run / "metrics.json").read_bytes()
    result = CliRunner().invoke(main, ["eval", str(run), "--at", "2"])
    assert result.exit_code == 0, result.output
    assert "stage-1 iteration 2 of 4: results in" in result.output
    at = json.loads((run / "at" / "sr-2" / "metrics.json").read_text())
    assert at["at"] == {"stage": "sr", "iteration": 2, "sr_iters": 4}
    assert at["val"]["queries"]["sr"]["rank1"] == pytest.approx(curve[0]["rank1"], abs=1e-5)
    assert at["val"]["queries"]["sr"]["psnr"] == pytest.approx(curve[0]["psnr"], abs=1e-4)
    assert "diagnostics" not in at and "timing" not in at  # the whole run's, not this point's
    assert (run / "at" / "sr-2" / "per_query.json").is_file()
    assert not (run / "at" / "sr-2" / "config.json").exists()  # never a leaderboard row
    assert (run / "metrics.json").read_bytes() == before  # the run's own results stay
    # at the last iteration: the run's own numbers again
    result = CliRunner().invoke(main, ["eval", str(run), "--at", "4"])
    assert result.exit_code == 0, result.output
    last = json.loads((run / "at" / "sr-4" / "metrics.json").read_text())
    assert last["queries"]["sr"]["rank1"] == metrics["queries"]["sr"]["rank1"]
    assert last["queries"]["sr"]["psnr"] == pytest.approx(metrics["queries"]["sr"]["psnr"])
    # an iteration whose checkpoint was not kept: one line naming what was
    result = CliRunner().invoke(main, ["eval", str(run), "--at", "3"])
    assert result.exit_code != 0
    assert "no stage-1 checkpoint at iteration 3" in result.output
    assert "(kept: 0, 2, 4)" in result.output and "Traceback" not in result.output
