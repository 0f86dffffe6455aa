"""harness.cli, the command line as a user meets it: exit codes, messages, run folders,
`harness list` and its wildcards, and a run's output free of other libraries' noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

SMOKE = ["--preset", "smoke"]


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_list_shows_every_kind_with_plugin():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    out = result.output
    for kind in ("sr:", "discriminator:", "reid:", "regulariser:", "dataset:"):
        assert kind in out
    assert "intact" in out and "[reg-intact]" in out
    assert "any timm model name" in out


def test_list_takes_a_kind_as_a_word():
    out = invoke("list", "regulariser").output
    assert out.startswith("regulariser:\n") and "dataset:" not in out
    assert {"intact", "sing", "rain", "cad", "csr-gan"} <= {
        line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ")
    }
    reid = invoke("list", "reid").output
    assert "any timm model name" in reid and "regulariser:" not in reid


def test_list_verbose_shows_option_defaults():
    out = invoke("list", "--verbose").output
    assert "-o lambda_a=" in out and "-o synth_train_ids=" in out
    # launcher options are given to harness bench with -L, and listed so
    assert "-L partition=" in out and "-o partition=" not in out


def test_unknown_plugin_exits_2_with_suggestion():
    result = CliRunner().invoke(main, ["run", *SMOKE, "--reg", "intcat"])
    assert result.exit_code == 2
    assert "unknown regulariser 'intcat'" in result.output
    assert "Did you mean 'intact'" in result.output


def test_unknown_option_exits_2_listing_valid_ones():
    result = CliRunner().invoke(main, ["run", *SMOKE, "-o", "lambda_zz=1"])
    assert result.exit_code == 2
    assert "unknown option(s) lambda_zz" in result.output
    assert "lambda_c" in result.output


def test_bad_ratio_exits_2():
    result = CliRunner().invoke(main, ["run", *SMOKE, "--ratios", "0.5,2"])
    assert result.exit_code == 2
    assert "ratios must all be finite and >= 1" in result.output


def test_unwritable_output_folder(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/harness-cannot-write-here"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = str(locked / "run")
    result = CliRunner().invoke(main, ["run", *SMOKE, "--out", target])
    assert result.exit_code == 2
    assert "cannot write to the output folder" in result.output


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    result = CliRunner().invoke(
        main, ["run", *SMOKE, "--reg", "intact", "--out", str(out), "--amp"]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_run_writes_complete_run_folder(smoke_run):
    out, output = smoke_run
    for name in (
        "config.json",
        "metrics.json",
        "cmc.csv",
        "cmc.png",
        "sr_samples.png",
        "log.jsonl",
    ):
        assert (out / name).is_file(), name
    assert list((out / "checkpoints").glob("ckpt-done-*.pt"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert set(metrics["queries"]) >= {"sr", "bicubic", "hr"}
    sr = metrics["queries"]["sr"]
    assert len(sr["cmc"]) == 50 and 0 <= sr["rank1"] <= 1
    assert set(sr["per_ratio"]) <= {"2", "3", "4"} and sr["per_ratio"]
    assert "psnr" in sr and "ssim" in sr
    config = json.loads((out / "config.json").read_text())
    assert config["protocol_version"] == metrics["protocol_version"]
    assert config["config"]["reg"] == "intact" and config["config"]["preset"] == "smoke"
    assert config["config"]["protocol"]["ratios"] == [2.0, 3.0, 4.0]
    assert config["versions"]["torch"]
    assert "lambda_a" in config["config"]["options"]
    # --amp without a GPU warns and runs in float32
    assert "--amp needs a GPU" in output
    assert config["config"]["amp"] is False or metrics["device"] == "cpu"
    assert "Rank-1" in output or "rank1" in output.lower()


@pytest.mark.slow
def test_log_has_every_named_term(smoke_run):
    out, _ = smoke_run
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    keys = set().union(*lines)
    assert "reid/ce" in keys
    assert any(k.endswith("/dis") or "dis" in k for k in keys), keys


@pytest.mark.slow
def test_eval_reproduces_metrics(smoke_run):
    out, _ = smoke_run
    before = json.loads((out / "metrics.json").read_text())
    result = invoke("eval", str(out))
    assert result.exit_code == 0, result.output
    after = json.loads((out / "metrics.json").read_text())
    assert after["queries"]["sr"]["cmc"] == before["queries"]["sr"]["cmc"]
    assert after["queries"]["hr"]["mAP"] == before["queries"]["hr"]["mAP"]


def test_eval_of_non_run_folder(tmp_path):
    result = CliRunner().invoke(main, ["eval", str(tmp_path)])
    assert result.exit_code == 2
    assert "config.json is missing" in result.output


@pytest.mark.slow
def test_synth_layout_then_run_market1501_folder(tmp_path):
    root = tmp_path / "market"
    result = invoke(
        "data",
        "synth",
        "--out",
        str(root),
        "--layout",
        "market1501",
        "--train-ids",
        "8",
        "--test-ids",
        "6",
        "--images-per-camera",
        "2",
        "--height",
        "32",
        "--width",
        "16",
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    result = invoke(
        "run",
        *SMOKE,
        "--data",
        "market1501",
        "--data-root",
        str(root),
        "--sr",
        "bicubic",
        "--out",
        str(run_dir),
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["dataset"]["name"] == "market1501"


def test_missing_dataset_folder_is_clear(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "run",
            *SMOKE,
            "--data",
            "market1501",
            "--data-root",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2
    assert "nope" in result.output


@pytest.mark.slow
def test_leaderboard_of_runs(smoke_run, tmp_path):
    out, _ = smoke_run
    result = invoke("leaderboard", str(out), "--out", str(tmp_path / "lb"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lb" / "leaderboard.md").is_file()
    assert "mlr-" in result.output


def test_version():
    assert invoke("--version").exit_code == 0


def test_module_entry_point_exists():
    assert (Path(__file__).parents[1] / "harness" / "__main__.py").is_file()


def test_a_malformed_hr_size_is_a_usage_error():
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["run", "--preset", "smoke", "--hr-size", "128by64"])
    assert result.exit_code == 2
    assert "128x64" in result.output and "native" in result.output


def test_list_filters_names_with_wildcards():
    result = CliRunner().invoke(main, ["list", "intact*"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line.startswith("  ")]
    assert names == ["intact", "intact-nobridge"]
    assert "dataset:" not in result.output


@pytest.mark.slow
def test_a_run_does_not_print_torchreids_cython_notice(tmp_path):
    """The harness never uses torchreid's evaluator, so its 'Cython evaluation' warning is noise."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--preset",
            "smoke",
            "--triplet",
            "--sr",
            "bicubic",
            "--sr-iters",
            "0",
            "--reid-iters",
            "1",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Cython" not in result.stdout + result.stderr
