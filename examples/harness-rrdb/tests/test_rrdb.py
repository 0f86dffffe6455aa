"""The plugin's own tests, written with the harness's kit for plugin authors.

The fixtures (``plugin_manager``, ``register_inline_plugin``, ``tiny_config``,
``tiny_dataset``) come from the harness's pytest plugin, which pytest loads
through its ``pytest11`` entry point: nothing to import, no conftest.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from harness import PluginError, StepContext
from harness.testing import (
    check_component,
    check_regulariser,
    check_reid_model,
    check_sr_model,
    tiny_batch,
)

from harness_rrdb import plugin
from harness_rrdb.rrdb import RRDBNet, integer_factor


@pytest.fixture
def registry(register_inline_plugin):
    """The built-ins plus this plugin, registered as its entry point would be."""
    return register_inline_plugin(plugin, name="rrdb")


def test_components_are_registered_with_their_plugin_and_options(registry):
    assert registry.lookup("sr", "rrdb").plugin == "rrdb"
    assert registry.lookup("reid", "tiny-cnn").plugin == "rrdb"
    entry = registry.lookup("regulariser", "perceptual-id")
    assert entry.plugin == "rrdb"
    assert {k: o.default for k, o in entry.options.items()} == {"lambda_f": 1.0, "lambda_c": 0.1}


def test_rrdb_keeps_the_sr_contract(registry, tiny_config):
    passed = check_sr_model(registry, "rrdb", tiny_config)
    assert any("ratios 2, 2.5, 3, 4" in line for line in passed)


def test_tiny_cnn_keeps_the_reid_contract(registry, tiny_config):
    passed = check_reid_model(registry, "tiny-cnn", tiny_config, num_classes=7)
    assert any("f_c (4, 64)" in line for line in passed)  # width 16 -> 4 * 16 features


def test_perceptual_id_trains_only_g(registry, tiny_config):
    passed = check_regulariser(registry, "perceptual-id", tiny_config)
    assert any("feat, id, mse" in line and "changes G and nothing else" in line for line in passed)


def test_every_component_passes_the_generic_dispatch(registry, tiny_config):
    for kind, name in [("sr", "rrdb"), ("reid", "tiny-cnn"), ("regulariser", "perceptual-id")]:
        assert check_component(registry, kind, name, tiny_config)


def test_untrained_rrdb_is_exactly_bicubic():
    x = torch.rand(2, 3, 16, 8)
    model = RRDBNet(blocks=1, channels=8, growth=4).eval()
    expected = F.interpolate(x, size=(32, 16), mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(model(x, (32, 16)), expected)


@pytest.mark.parametrize(
    "in_size,out_size,factor",
    [
        ((16, 8), (32, 16), 2),
        ((11, 5), (32, 16), 3),
        ((8, 4), (32, 16), 4),
        ((13, 6), (32, 16), None),
    ],
)
def test_integer_factors_use_pixel_shuffle_others_resize_then_refine(in_size, out_size, factor):
    assert integer_factor(in_size, out_size) == factor


def test_perceptual_id_terms_are_zero_when_sr_equals_hr(registry, tiny_config):
    """Hand-computed case: a generator that returns HR exactly leaves only the ID term."""
    reg = registry.lookup("regulariser", "perceptual-id").factory(tiny_config)
    batch = tiny_batch((tiny_config.height, tiny_config.width))

    class Oracle(torch.nn.Module):
        def forward(self, x_lr, out_size):
            return batch.x_hr.clone()

    reid = registry.lookup("reid", "tiny-cnn").factory(tiny_config, 5).train()
    terms = reg.generator_loss(StepContext(batch, {"G": Oracle(), "reid": reid}, tiny_config))
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert values["mse"] == 0.0 and values["feat"] == 0.0
    assert values["id"] > 0.0


def test_a_broken_option_is_reported_with_the_plugin_name(registry, tiny_config):
    config = tiny_config.replace(options={**tiny_config.options, "rrdb_blocks": 0})
    with pytest.raises(PluginError, match=r"sr 'rrdb' \(plugin 'rrdb'\) .*rrdb_blocks"):
        check_sr_model(registry, "rrdb", config)


def test_tiny_dataset_fixture_feeds_the_tiny_cnn(registry, tiny_config, tiny_dataset):
    model = registry.lookup("reid", "tiny-cnn").factory(tiny_config, tiny_dataset.num_train_pids)
    images = torch.stack(
        [torch.from_numpy(r.image).permute(2, 0, 1).float() / 255 for r in tiny_dataset.train]
    )
    logits, f_c = model.train()(images)
    assert logits.shape == (len(tiny_dataset.train), tiny_dataset.num_train_pids)
    assert f_c.shape == (len(tiny_dataset.train), 64)
