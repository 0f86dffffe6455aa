"""Run-folder truths (harness.rundir): finished or not, whose folder, same settings or not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.rundir import (
    PROMISED,
    check_run_dir,
    is_complete,
    is_started,
    load_run_config,
    mark_complete,
    refuse_foreign_run,
    run_log,
    stale_settings,
)

SAVED = {
    "sr": "srgan",
    "reid": "resnet50",
    "reg": "intact",
    "data": "synthetic",
    "seed": 0,
    "sr_iters": 20,
    "options": {"lambda_g": 0.001, "sr_blocks": 6},
    "protocol": {"seed": 3},
}


def _config(run_dir: Path, config: dict | None = None, **extra) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"config": dict(config or SAVED), **extra}))
    return run_dir


def _promised(run_dir: Path) -> Path:
    """A folder holding everything a complete run promises, except the final metrics."""
    _config(run_dir)
    for name in PROMISED:
        if name not in ("config.json", "metrics.json"):
            (run_dir / name).write_text("x")
    (run_dir / "metrics.json").write_text('{"status": "running"}')
    return run_dir


# --------------------------------------------------------------------------- complete or not


@pytest.mark.parametrize(
    "metrics",
    [None, '{"status": "running"}', '{"status": "compl', "[1, 2]", '"complete"', '{"queries": {}}'],
)
def test_a_folder_without_the_complete_marker_is_unfinished(tmp_path, metrics) -> None:
    run_dir = _config(tmp_path / "run")
    if metrics is not None:
        (run_dir / "metrics.json").write_text(metrics)
    assert not is_complete(run_dir) and not is_complete(str(run_dir))
    assert is_started(run_dir)


def test_a_missing_folder_is_neither_started_nor_complete(tmp_path) -> None:
    assert not is_complete(tmp_path / "nope") and not is_started(tmp_path / "nope")


def test_earlier_run_folders_are_still_recognised_as_complete(tmp_path) -> None:
    # an mlr-1.0 folder: no hr size in its config, metrics with the old keys only
    old = {k: v for k, v in SAVED.items() if k not in ("options", "protocol")} | {
        "height": 48,
        "width": 24,
    }
    run_dir = _config(tmp_path / "old", old, protocol_version="mlr-1.0")
    (run_dir / "metrics.json").write_text(
        json.dumps(
            {"status": "complete", "protocol_version": "mlr-1.0", "queries": {"sr": {"rank1": 0.5}}}
        )
    )
    assert is_complete(run_dir)
    assert load_run_config(run_dir).hr_size == (48, 24)  # its HR size was the re-id size
    assert (
        stale_settings(run_dir, {"data": "synthetic", "seed": 0, "options": {"lambda_g": 0.5}})
        == []
    )


def test_mark_complete_writes_the_marker_last_and_only_with_every_promised_file(tmp_path) -> None:
    run_dir = _promised(tmp_path / "run")
    (run_dir / "cmc.png").unlink()
    (run_dir / "log.jsonl").unlink()
    with pytest.raises(HarnessError, match="without cmc.png; not marking it"):
        mark_complete(run_dir, {"status": "complete"})
    assert not is_complete(run_dir)
    assert json.loads((run_dir / "metrics.json").read_text()) == {"status": "running"}
    assert (
        run_dir / "log.jsonl"
    ).read_text() == ""  # a run that logged nothing promises an empty log

    (run_dir / "cmc.png").write_text("x")
    mark_complete(run_dir, {"status": "complete", "queries": {"sr": {"rank1": 0.25}}})
    assert is_complete(run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["queries"]["sr"]["rank1"] == 0.25


def test_the_complete_marker_is_atomic(tmp_path, monkeypatch) -> None:
    """A crash while writing it leaves the old document whole and no stray temporary."""
    run_dir = _promised(tmp_path / "run")
    before = sorted(p.name for p in run_dir.iterdir())

    def crash(src, dst):
        raise KeyboardInterrupt  # killed between writing the temporary and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        mark_complete(run_dir, {"status": "complete"})
    assert not is_complete(run_dir)
    assert json.loads((run_dir / "metrics.json").read_text()) == {"status": "running"}
    assert sorted(p.name for p in run_dir.iterdir()) == before


# --------------------------------------------------------------------------- same settings or not


def test_the_same_settings_are_not_stale_even_as_command_line_strings(tmp_path) -> None:
    run_dir = _config(tmp_path / "run")
    planned = {
        "data": "synthetic",
        "seed": 0,
        "sr_iters": "20",
        "options": {"lambda_g": "0.001"},
        "protocol": {"seed": 3},
    }
    assert stale_settings(run_dir, planned) == []


def test_stale_settings_name_each_disagreement(tmp_path) -> None:
    run_dir = _config(tmp_path / "run")
    planned = {
        "data": "viper",
        "seed": 0,
        "options": {"lambda_g": 0.01, "sr_blocks": 6},
        "protocol": {"seed": 4},
    }
    assert stale_settings(run_dir, planned) == [
        "data: planned 'viper', saved 'synthetic'",
        "options.lambda_g: planned 0.01, saved 0.001",
        "protocol.seed: planned 4, saved 3",
    ]


def test_settings_a_folder_never_saved_are_no_disagreement(tmp_path) -> None:
    run_dir = _config(tmp_path / "run")
    assert stale_settings(run_dir, {"grad_clip": 1.0, "options": {"new_option": 2}}) == []


@pytest.mark.parametrize("content", [None, "not json", "[]", '{"config": 3}'])
def test_a_folder_without_readable_settings_is_not_stale(tmp_path, content) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if content is not None:
        (run_dir / "config.json").write_text(content)
    assert stale_settings(run_dir, {"data": "viper"}) == []


# --------------------------------------------------------------------------- whose folder


def test_an_empty_or_missing_folder_is_free(tmp_path) -> None:
    refuse_foreign_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    refuse_foreign_run(tmp_path / "empty")


def test_a_folder_holding_another_run_is_refused_with_what_it_holds(tmp_path) -> None:
    run_dir = _config(tmp_path / "run")
    (run_dir / "metrics.json").write_text('{"status": "running"}')
    with pytest.raises(HarnessError) as info:
        refuse_foreign_run(run_dir)
    message = str(info.value)
    assert "a run (srgan/resnet50/intact on synthetic, seed 0, running)" in message
    assert "(config.json, metrics.json)" in message
    assert f"harness run --resume {run_dir}" in message and "--out NEW_FOLDER" in message


def test_a_folder_with_only_checkpoints_is_still_a_run(tmp_path) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(HarnessError, match=r"already holds a run \(checkpoints\)"):
        refuse_foreign_run(tmp_path / "run")


def test_check_run_dir_makes_the_folder_and_says_when_it_cannot(tmp_path) -> None:
    check_run_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="cannot write to the output folder"):
        check_run_dir(tmp_path / "file" / "run")


def test_a_launched_runs_log_sits_beside_its_folder(tmp_path) -> None:
    assert run_log(tmp_path / "mse-id" / "seed0") == tmp_path / "mse-id" / "seed0.log"


# --------------------------------------------------------------------------- a run that stops


def test_mark_stopped_records_why_and_never_touches_a_complete_run(tmp_path):
    from harness.rundir import FAILED, mark_stopped

    (tmp_path / "metrics.json").write_text(json.dumps({"status": "running"}))
    assert mark_stopped(tmp_path, FAILED, "RuntimeError: boom")
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc == {
        "status": "failed",
        "reason": "RuntimeError: boom",
        "resume": f"harness run --resume {tmp_path}",
    }
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "complete", "queries": {}}))
    assert not mark_stopped(tmp_path, FAILED, "late")
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "complete"


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (RuntimeError("boom\nmore"), "failed", "RuntimeError: boom"),
        (KeyboardInterrupt(), "interrupted", "interrupted (Ctrl-C or SIGTERM)"),
    ],
)
def test_a_run_that_stops_says_so_instead_of_running(tmp_path, monkeypatch, error, status, reason):
    import harness.run as run_module
    from harness.registry import get_registry
    from harness.resolve import resolve_config

    def stop(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(run_module, "prepare_data", stop)
    config = resolve_config({"preset": "smoke"}, get_registry())
    with pytest.raises(type(error)):
        run_module.run_experiment(config, tmp_path / "run", get_registry(), echo=lambda *_: None)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (doc["status"], doc["reason"]) == (status, reason)
    run_module.ACTIVE_RUNS.clear()
