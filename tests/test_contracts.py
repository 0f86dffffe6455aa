"""harness.contracts: a plugin that breaks its contract fails before training, naming the
plugin (an SR output of the wrong size, a factory that raises, a re-id model without
``f_c``); the checks change no loaded state and run without pytest installed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from harness.errors import PluginError
from harness.run import resolve_config, run_experiment
from tests.helpers import Faulty, registry_with, same_state, smoke_config, state


@pytest.fixture(scope="module")
def faulty():
    return registry_with(Faulty())


def _run(registry, tmp_path, **values):
    config = resolve_config({"preset": "smoke", "reid_iters": 1, "sr_iters": 4, **values}, registry)
    return run_experiment(config, tmp_path / "run", registry, echo=lambda s: None)


def test_sr_of_wrong_size_is_caught_before_training(faulty, tmp_path):
    with pytest.raises(
        PluginError,
        match=r"sr 'wrong-size' \(plugin 'faulty'\) broke its contract: "
        r"expected .*\(2, 3, 32, 16\)",
    ):
        _run(faulty, tmp_path, sr="wrong-size")
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_factory_that_raises_names_the_plugin(faulty, tmp_path):
    with pytest.raises(
        PluginError, match=r"sr 'raises' \(plugin 'faulty'\) failed to build: ZeroDivisionError"
    ):
        _run(faulty, tmp_path, sr="raises")


def test_reid_without_feature_output_is_caught(faulty, tmp_path):
    with pytest.raises(
        PluginError, match=r"reid 'logits-only'.*expected \(logits, f_c\) in train mode"
    ):
        _run(faulty, tmp_path, reid="logits-only")


@pytest.mark.usefixtures("one_thread")
def test_contract_checks_leave_loaded_statistics_alone(registry):
    config = smoke_config(registry)
    torch.manual_seed(0)
    reid = registry.lookup("reid", "resnet18").factory(config, 5)
    before = state(reid)
    from harness.contracts import dry_run_reid as check_reid

    check_reid(registry.lookup("reid", "resnet18"), reid, 5, config.reid_size)
    assert same_state(before, state(reid))


@pytest.mark.slow
def test_contract_checks_run_without_pytest():
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from harness.cli import main\n"
        "main(['check-plugin', 'srgan', '--kind', 'sr'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sr 'srgan'" in result.stdout
