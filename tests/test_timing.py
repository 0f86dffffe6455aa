"""harness.timing: where a run's time goes (metrics.json's ``timing`` block), and what a
person reading a piped run's output sees (a progress line per stage, with ETAs)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from harness.run import run_experiment
from harness.timing import RunTiming
from tests.helpers import smoke_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_laps_and_stages_add_up_and_the_data_share_is_wait_over_wall():
    clock = FakeClock()
    timing = RunTiming(clock)
    clock.now += 2.0
    assert timing.lap("setup") == 2.0
    with timing.stage("reid"):
        for _ in range(4):

            def batch():
                clock.now += 0.5  # half a second making each batch
                return "x"

            assert timing.wait(batch) == "x"
            clock.now += 1.5  # the step itself
    clock.now += 3.0
    timing.lap("evaluation")
    out = timing.record()
    assert out["order"] == ["setup", "reid", "evaluation"]
    assert out["stages"]["reid"] == {
        "wall_s": 8.0,
        "batches": 4,
        "data_wait_s": 2.0,
        "data_share": 0.25,
    }
    assert out["stages"]["evaluation"] == {"wall_s": 3.0}
    assert out["total_s"] == 13.0 and out["scope"] == "this process"
    assert out["resumed_at"] is None


def test_work_set_aside_inside_a_stage_is_its_own_share_of_the_stage_wall():
    clock = FakeClock()
    timing = RunTiming(clock)
    with timing.stage("sr"):
        for _ in range(2):
            timing.wait(lambda: clock.__setattr__("now", clock.now + 0.5))
            clock.now += 1.0
            with timing.aside("validation"):  # a validation point: part of the stage's wall
                clock.now += 0.75
    with timing.aside("validation"):  # outside any stage: nothing to count it in
        clock.now += 9.0
    sr = timing.record()["stages"]["sr"]
    assert sr["wall_s"] == 4.5 and sr["validation_s"] == 1.5 and sr["data_wait_s"] == 1.0
    assert sr["data_share"] == pytest.approx(1.0 / 4.5, abs=1e-4)


def test_a_cached_stage_records_its_load_time_and_a_stage_that_did_nothing_is_left_out():
    clock = FakeClock()
    timing = RunTiming(clock)
    with timing.stage("reid"):
        clock.now += 0.25
        timing.cached()
    with timing.stage("critic"):  # no critic in this schedule: returns at once
        clock.now += 0.001
    out = timing.record()
    assert out["order"] == ["reid"]
    assert out["stages"]["reid"]["cached"] is True
    assert out["stages"]["reid"]["wall_s"] == 0.25 and out["stages"]["reid"]["batches"] == 0


def test_a_batch_made_outside_any_stage_is_not_counted():
    timing = RunTiming(FakeClock())
    assert timing.wait(lambda: 3) == 3
    assert timing.record()["stages"] == {}


@pytest.mark.slow
def test_a_piped_smoke_run_shows_each_stage_with_etas_and_accounts_for_its_time(
    registry, tmp_path, capsys, one_thread
):
    """Issue 27's acceptance: stdout not a terminal -> a progress line per stage with both
    ETAs; metrics.json's timing stages sum to the run's wall time (within 10%); config.json
    records what decides speed."""
    config = smoke_config(
        registry, reg="intact", options={"synth_train_ids": 4, "synth_test_ids": 4}
    )
    run_dir = tmp_path / "run"
    run_experiment(config, run_dir, registry)
    out = capsys.readouterr().out
    for stage in ("stage 0: re-id on HR", "warm start:", "critic warm-up:", "stage 1:"):
        lines = [line for line in out.splitlines() if line.startswith(stage)]
        assert lines, f"no progress line for {stage!r} in:\n{out}"
        assert any(re.search(r"stage ETA \d+m\d\ds  run ETA ~\d+m\d\ds", x) for x in lines)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    timing = metrics["timing"]
    assert timing["order"] == ["setup", "reid", "warmup", "critic", "sr", "evaluation", "report"]
    assert timing["scope"] == "this process" and timing["resumed_at"] is None
    stages = timing["stages"]
    total = sum(s["wall_s"] for s in stages.values())
    assert total == pytest.approx(metrics["wall_time_s"], rel=0.10)
    for name in ("reid", "warmup", "critic", "sr"):
        assert stages[name]["batches"] >= 1
        assert 0 < stages[name]["data_share"] < 1
        assert stages[name]["data_wait_s"] <= stages[name]["wall_s"]

    compute = json.loads((run_dir / "config.json").read_text())["compute"]
    assert compute["torch_threads"] == torch.get_num_threads() == 1
    assert compute["torch_interop_threads"] >= 1
    assert compute["cpu"] and compute["device"] == "cpu" and compute["precision"] == "float32"
    assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
