"""harness.presets and their resolution (harness.resolve): smoke, cpu and paper presets
name core settings only, plugin options carry their own preset values, an explicit value
beats the preset's, and the default preset follows the hardware."""

from __future__ import annotations

import pytest
import torch

from harness import RunConfig
from harness.presets import PRESETS
from harness.run import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_presets_name_core_fields_only_and_options_carry_their_own():
    fields = set(RunConfig.__dataclass_fields__)
    for name, values in PRESETS.items():
        assert set(values) - {"protocol"} <= fields, name
    from harness.registry import get_registry

    registry = get_registry()
    sizes = {p: resolve_config({"preset": p}, registry).options for p in ("smoke", "cpu", "paper")}
    assert [sizes[p]["sr_blocks"] for p in ("smoke", "cpu", "paper")] == [2, 6, 16]
    assert [sizes[p]["synth_train_ids"] for p in ("smoke", "cpu", "paper")] == [8, 100, 500]
    assert [sizes[p]["disc_feat_dim"] for p in ("smoke", "cpu", "paper")] == [32, 128, 256]
    explicit = resolve_config({"preset": "smoke", "options": {"sr_blocks": "5"}}, registry)
    assert explicit.options["sr_blocks"] == 5  # an explicit value beats the preset's


def test_preset_values_and_explicit_override(registry):
    config = resolve_config(
        {"preset": "smoke", "height": 40, "options": {"synth_train_ids": "5"}}, registry
    )
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


def test_paper_preset_keeps_the_dataset_native_size(registry):
    config = resolve_config({"preset": "paper"}, registry)
    assert config.hr_height is None and config.reid_size == (256, 128)
    assert resolve_config({"preset": "cpu"}, registry).hr_size == (64, 32)
    assert resolve_config({"preset": "cpu", "hr_size": "native"}, registry).hr_height is None
