"""Training-loop behaviour: presets and overrides, stage-0 reuse, learning on a tiny problem."""

from __future__ import annotations

import json

import pytest
import torch

from harness.config import ConfigError
from harness.run import resolve_config, run_experiment


def test_preset_values_and_explicit_override(registry):
    config = resolve_config({"preset": "smoke", "height": 40, "options": {"synth_train_ids": "5"}}, registry)
    assert config.preset == "smoke"
    assert config.height == 40 and config.width == 16  # explicit beats preset, the rest from preset
    assert config.option("synth_train_ids") == 5  # CLI string coerced to the default's type
    assert config.option("synth_test_ids") == 6  # preset value
    assert config.option("lambda_c") is not None  # declared default filled in


def test_default_preset_depends_on_cuda(registry, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_config({}, registry).preset == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_config({}, registry).preset == "paper"


def test_options_of_unselected_plugins_are_refused(registry):
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_config({"preset": "smoke", "reg": "none", "options": {"lambda_a": "0.1"}}, registry)


def test_bad_option_type(registry):
    with pytest.raises(ConfigError, match="expected int"):
        resolve_config({"preset": "smoke", "options": {"synth_train_ids": "many"}}, registry)


def _run(registry, tmp_path, name, cache=None, **values):
    config = resolve_config({"preset": "smoke", "sr_iters": 2, **values}, registry)
    return run_experiment(config, tmp_path / name, registry, echo=lambda s: None, stage0_cache_dir=cache)


@pytest.mark.slow
def test_stage0_cache_gives_identical_results(registry, tmp_path):
    cache = tmp_path / "cache"
    _run(registry, tmp_path, "none", cache, reg="none")
    assert len(list(cache.glob("stage0-*.pt"))) == 1
    cached = _run(registry, tmp_path, "gan-cached", cache, reg="gan")
    log = (tmp_path / "gan-cached" / "log.jsonl").read_text()
    assert "stage0_cache" in log  # stage 0 was reused, not retrained
    fresh = _run(registry, tmp_path, "gan-fresh", None, reg="gan")
    for kind in ("sr", "hr"):
        assert cached["queries"][kind]["cmc"] == fresh["queries"][kind]["cmc"]
    # a different re-id recipe does not hit the cache
    _run(registry, tmp_path, "other", cache, reg="none", lr_reid=0.01)
    assert len(list(cache.glob("stage0-*.pt"))) == 2


def test_stage0_learns_on_a_tiny_problem(registry, tmp_path):
    config = resolve_config({"preset": "smoke", "sr": "bicubic", "reid_iters": 40, "sr_iters": 0,
                             "random_erasing": 0.0, "log_every": 1, "lr_reid": 3e-3,
                             "batch_size": 16}, registry)
    run_experiment(config, tmp_path / "r", registry, echo=lambda s: None)
    lines = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    ce = [x["reid/ce"] for x in lines if "reid/ce" in x]
    assert sum(ce[-5:]) / 5 < sum(ce[:5]) / 5 * 0.8, ce
