"""harness.options: a plugin's options, declared once beside their plugin (issue "One house").

An option carries its own preset values; one rule types option strings (and, in
harness.config, setting strings); at resolution an option may be named by its component,
one two selected components both declare is an error naming both, and an option of a
component not selected, or of the wrong type, is refused.
"""

from __future__ import annotations

import pytest

from harness import Option, PluginError, RunConfig, coerce_option, hookimpl, read_options
from harness.config import ConfigError, coerce_setting
from harness.registry import Registry
from harness.resolve import resolve_config


def test_option_value_for_a_preset_and_read_options_types_values():
    option = Option(8, "blocks", presets={"cpu": 6})
    assert (option.value_for("cpu"), option.value_for("paper"), option.value_for(None)) == (6, 8, 8)
    config = RunConfig(options={"blocks": 3.0})
    assert read_options(config, {"blocks": option, "other": Option(0.5, "x")}) == {
        "blocks": 3,
        "other": 0.5,
    }


@pytest.mark.parametrize(
    "value,default,expected",
    [
        ("0.5", 1.0, 0.5),
        ("3", 1, 3),
        ("yes", False, True),
        ("off", True, False),
        ("x", "y", "x"),
        (2, 0.1, 2.0),
        ("keep", None, "keep"),
    ],
)
def test_one_rule_types_option_strings(value, default, expected):
    assert coerce_option(value, default) == expected
    assert type(coerce_option(value, default)) is type(expected)


def test_settings_are_typed_by_their_field_with_the_same_rule():
    assert coerce_setting("grad_clip", "0.5") == 0.5  # default None: the annotation decides
    assert coerce_setting("grad_clip", "none") is None
    assert coerce_setting("triplet", "true") is True
    assert coerce_setting("sr_iters", "7") == 7
    assert coerce_setting("data_root", "/data") == "/data"
    # protocol settings by their dotted names (harness bench --set protocol.val_ids=0)
    assert coerce_setting("protocol.val_ids", "0") == 0.0
    assert coerce_setting("protocol.ratios", "2,4") == (2.0, 4.0)
    assert coerce_setting("protocol.lr_cameras", "1,3") == (1, 3)
    with pytest.raises(ConfigError, match="expected a boolean"):
        coerce_setting("triplet", "maybe")


class _SharedKey:
    """Declares an option key that the built-in srgan generator also declares."""

    @hookimpl
    def harness_register_discriminators(self, registry):
        registry.add(
            "clashing", lambda config: None, "test D", options={"sr_blocks": Option(1, "x")}
        )


def test_an_option_two_selected_components_declare_is_an_error_naming_both(registry):
    fresh = Registry()
    fresh.load_entry_points(autoload=False)
    fresh.register_plugin(_SharedKey(), "shared-key")
    with pytest.raises(
        PluginError,
        match=r"'sr_blocks' is declared by sr 'srgan' \(plugin 'sr-srgan'\) "
        r"and by discriminator 'clashing' \(plugin 'shared-key'\)",
    ):
        resolve_config({"preset": "smoke", "disc": "clashing"}, fresh)


def test_options_may_be_named_by_their_component(registry):
    config = resolve_config(
        {"preset": "smoke", "reg": "intact", "options": {"intact.lambda_a": "0.05"}}, registry
    )
    assert config.options["lambda_a"] == 0.05
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_config(
            {"preset": "smoke", "reg": "gan", "options": {"intact.lambda_a": "0.05"}}, registry
        )


def test_options_of_unselected_plugins_are_refused(registry):
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_config({"preset": "smoke", "reg": "none", "options": {"lambda_a": "0.1"}}, registry)


def test_bad_option_type(registry):
    with pytest.raises(ConfigError, match="expected int"):
        resolve_config({"preset": "smoke", "options": {"synth_train_ids": "many"}}, registry)


def test_a_weight_is_not_a_boolean_and_a_count_is_whole(registry) -> None:
    """Silent wrong values (issue 25): lambda_g = true was a weight of 1, sr_blocks = 2.5 a
    count that ran as 2 or 3; both are refused where the option is declared."""
    from harness.errors import HarnessError
    from harness.resolve import resolve_config

    with pytest.raises(HarnessError, match=r"-o lambda_g=True: must be a number"):
        resolve_config({"preset": "smoke", "reg": "gan", "options": {"lambda_g": True}}, registry)
    with pytest.raises(HarnessError, match=r"-o sr_blocks=2.5: must be a whole number"):
        resolve_config({"preset": "smoke", "reg": "gan", "options": {"sr_blocks": 2.5}}, registry)
    ok = resolve_config({"preset": "smoke", "reg": "gan", "options": {"lambda_g": 1}}, registry)
    assert ok.options["lambda_g"] == 1
    with pytest.raises(HarnessError, match="--reid-iters must be a whole number"):
        resolve_config({"preset": "smoke", "reid_iters": 2.5}, registry)
