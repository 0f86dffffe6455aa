"""Each setting declared once: sections, cache keys, CLI options, presets and checks all read it.

The cache-key tests are the guard the hand lists never had: a setting a cached stage
depends on must change that stage's key (else two recipes would share one model), and
a setting outside it must not (else every run would retrain it).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter

import pytest
import torch
from click.testing import CliRunner

from harness import Option, hookimpl
from harness.cache import critic_key, depends_on, stage0_key, stage_settings, warmup_key
from harness.cli import main, pretrain, run
from harness.cli_settings import SettingOption, help_text, values_from
from harness.config import (
    COMPONENT_FIELDS,
    SETTING,
    SETTINGS,
    ConfigError,
    ProtocolConfig,
    RunConfig,
)
from harness.leaderboard import IGNORED_FIELDS
from harness.presets import PRESETS, preset_values
from harness.registry import Registry
from harness.resolve import resolve_config
from harness.settings import CACHED_STAGES, PRESET_NAMES, STAGE0, Section, undeclared_fields

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- sections


def test_every_setting_is_declared_in_exactly_one_section():
    assert undeclared_fields(RunConfig) == [
        "options"
    ]  # plugin options: each plugin declares its own
    assert undeclared_fields(ProtocolConfig) == []
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"options", "protocol"}
    fields |= {f"protocol.{f.name}" for f in dataclasses.fields(ProtocolConfig)}
    assert set(names) == fields
    by_section = {
        section: [s.name for s in SETTINGS if s.section is section] for section in Section
    }
    assert Counter(n for group in by_section.values() for n in group) == Counter(names)
    assert all(by_section.values()), "a section without settings"


def test_cached_stages_name_real_settings_and_components():
    kinds = {kind for kind, _ in COMPONENT_FIELDS}
    stage_names = {stage.name for stage in CACHED_STAGES}
    for stage in CACHED_STAGES:
        assert set(stage.components) <= kinds, stage.name
        assert set(stage.reads) <= set(SETTING), stage.name
        assert set(stage.after) <= stage_names, stage.name


# --------------------------------------------------------------------------- cache keys


class _OtherDisc:
    """A second discriminator, so that changing ``disc`` names a registered one."""

    @hookimpl
    def harness_register_discriminators(self, registry):
        registry.add(
            "other-disc",
            lambda config: None,
            "test D",
            options={"other_disc_width": Option(4, "x")},
        )


@pytest.fixture(scope="module")
def keyed():
    """A registry with a second discriminator and a smoke config whose every stage is cached."""
    registry = Registry()
    registry.load_entry_points(autoload=False)
    registry.register_plugin(_OtherDisc(), "other-disc")
    return registry, resolve_config({"preset": "smoke", "reg": "gan"}, registry)


def _keys(config: RunConfig, registry: Registry) -> dict[str, str]:
    stage0 = stage0_key(config, registry, CPU)
    warmup = warmup_key(config, registry, CPU)
    return {
        "stage0": stage0,
        "warmup": warmup,
        "critic": critic_key(config, registry, CPU, stage0, warmup),
    }


_OTHER = {
    "sr": "bicubic",
    "reid": "resnet34",
    "reg": "intact",
    "disc": "other-disc",
    "data": "market1501",
    "data_root": "/elsewhere",
    "reid_init": "imagenet",
    "device": "cpu",
    "reid_requested": "resnet18|resnet34",
    "protocol.version": "mlr-x",
    "protocol.lr_cameras": (1,),
}


def _another(setting, value, tmp_path):
    """A valid value other than ``value``."""
    if setting.name in ("sr_weights", "reid_weights"):  # hashed by content
        path = tmp_path / f"{setting.name}.pth"
        path.write_bytes(b"weights")
        return str(path)
    if setting.name in _OTHER:
        return _OTHER[setting.name]
    if setting.choices:
        return next(c for c in setting.choices if c != value)
    if setting.kind is bool:
        return not value
    if setting.many:
        return value[:-1]
    if setting.kind is int:
        return value + 1 if setting.max is None or value + 1 <= setting.max else value - 1
    return value * 1.5 if value else 0.5


def _changed(config: RunConfig, setting, value) -> RunConfig:
    if setting.name.startswith("protocol."):
        return config.replace(
            protocol=dataclasses.replace(config.protocol, **{setting.field: value})
        )
    return config.replace(**{setting.field: value})


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_a_setting_changes_exactly_the_keys_of_the_stages_that_depend_on_it(
    keyed, setting, tmp_path
):
    registry, config = keyed
    before = _keys(config, registry)
    after = _keys(
        _changed(
            config,
            setting,
            _another(
                setting,
                getattr(
                    config.protocol if setting.name.startswith("protocol.") else config,
                    setting.field,
                ),
                tmp_path,
            ),
        ),
        registry,
    )
    for stage in CACHED_STAGES:
        if setting.name in depends_on(stage):
            assert before[stage.name] != after[stage.name], f"{stage.name} ignores {setting.name}"
        else:
            assert before[stage.name] == after[stage.name], (
                f"{stage.name} changes with {setting.name}"
            )


#: Settings declared ``trains=False`` (no cache key holds them), each reviewed: marking another
#: one so must be argued here, since a wrong mark lets two recipes share a cached model.
NOT_TRAINING = {
    "preset": "its values are resolved into the other settings",
    "device": "the key holds the device type itself",
    "compile": "torch.compile on CUDA only; keys before issue 22 left it out too",
    "workers": "decoding processes; images are the same",
    "log_every": "logging cadence",
    "ckpt_every": "checkpoint cadence; a resume is exact",
    "keep_checkpoints": "files kept",
    "val_every": "validation points change no weight (tests/test_validation_curve.py)",
    "eval_batch_size": "evaluation only",
    "metric": "evaluation only",
    "protocol.trials": "evaluation only",
    "protocol.version": "the key holds PROTOCOL_VERSION itself",
    "trackers": "where a run is also logged (issue 26); nothing it computes",
    "tracker_uri": "where a tracker keeps its runs; nothing a run computes",
}


def test_only_reviewed_settings_are_left_out_of_every_cache_key():
    assert {s.name for s in SETTINGS if not s.trains} == set(NOT_TRAINING)


def test_every_training_setting_of_a_stage_section_is_in_its_key():
    for stage in CACHED_STAGES:
        own = set(stage_settings(stage))
        assert {s.name for s in SETTINGS if s.section in stage.sections and s.trains} <= own
        assert {f for kind, f in COMPONENT_FIELDS if kind in stage.components} <= own
    assert "reid_iters" in stage_settings(STAGE0) and "sr_iters" not in stage_settings(STAGE0)


@pytest.mark.parametrize(
    ("option", "value", "changes"),
    [
        ("synth_train_ids", 9, {"stage0", "warmup", "critic"}),  # the dataset's: every stage
        ("sr_blocks", 3, {"warmup", "critic"}),  # G's: not stage 0
        ("disc_feat_dim", 16, {"critic"}),  # D's: only the critic warm-up
        ("lambda_g", 0.5, set()),  # a loss weight only G's step reads: a sweep shares the warm-up
    ],
)
def test_a_plugin_option_changes_the_keys_of_the_stages_building_its_component(
    keyed, option, value, changes
):
    registry, config = keyed
    assert option in config.options
    before = _keys(config, registry)
    after = _keys(config.replace(options={**config.options, option: value}), registry)
    assert {stage for stage in before if before[stage] != after[stage]} == changes


# --------------------------------------------------------------------------- CLI and presets


def _setting_params(command):
    return {p.setting.name: p for p in command.params if isinstance(p, SettingOption)}


def test_cli_options_are_the_declared_settings_with_their_defaults(registry):
    params = _setting_params(run)
    assert set(params) == {s.name for s in SETTINGS if s.option}
    for name, param in params.items():
        setting = SETTING[name]
        assert param.default is None  # not given: the preset, else the declared default, decides
        assert param.help == help_text(setting)
        if setting.default is not None and not setting.shown_default:
            assert "default: " in param.help, name
    given = run.make_context("run", [], resilient_parsing=True).params
    values = values_from(dict(given))
    assert all(v is None for k, v in values.items() if k != "protocol")
    assert all(v is None for v in values["protocol"].values())
    for preset in PRESET_NAMES:
        config = resolve_config({**values, "preset": preset}, registry)
        for setting in SETTINGS:
            if setting.name == "preset":
                assert config.preset == preset
                continue
            holder = config.protocol if setting.name.startswith("protocol.") else config
            assert getattr(holder, setting.field) == setting.value_for(preset), (
                preset,
                setting.name,
            )


def test_pretrain_offers_the_settings_stage0_depends_on_and_no_sr_stage_ones():
    offered = set(_setting_params(pretrain))
    assert set(stage_settings(STAGE0)) <= offered | {"hr_width"}  # --hr-size sets both
    for name in (
        "sr",
        "reg",
        "disc",
        "sr_iters",
        "sr_warmup_iters",
        "lr",
        "lr_warmup",
        "finetune_reid",
        "grad_clip",
        "sr_weights",
    ):
        assert name not in offered


def test_help_groups_options_by_section():
    out = CliRunner().invoke(main, ["run", "--help"]).output
    for title in (
        "Components:",
        "Data:",
        "Reid stage:",
        "Warm start:",
        "SR stage:",
        "Runtime:",
        "Protocol:",
    ):
        assert title in out
    assert (
        "smoke 4; cpu 400; paper 6000" in out
    )  # --reid-iters' preset values, from its declaration


def test_presets_come_from_the_declarations():
    assert tuple(PRESETS) == PRESET_NAMES
    for preset in PRESET_NAMES:
        expected = {
            s.field: s.presets[preset]
            for s in SETTINGS
            if preset in s.presets and not s.name.startswith("protocol.")
        }
        protocol = {
            s.field: s.presets[preset]
            for s in SETTINGS
            if preset in s.presets and s.name.startswith("protocol.")
        }
        if protocol:
            expected["protocol"] = protocol
        assert preset_values(preset) == expected
    assert preset_values("smoke")["reid_iters"] == 4 and preset_values("smoke")["protocol"] == {
        "trials": 2
    }
    assert [p.name for p in run.params if p.name == "preset"] and SETTING[
        "preset"
    ].choices == PRESET_NAMES


def test_the_leaderboard_recipe_ignores_the_settings_declared_outside_it():
    assert IGNORED_FIELDS == {s.name for s in SETTINGS if not s.recipe}
    assert {"seed", "protocol.seed", "data_root", "device", "workers"} <= IGNORED_FIELDS
    assert not IGNORED_FIELDS & {"lr", "reid_iters", "protocol.ratios", "preset"}


# --------------------------------------------------------------------------- validation


BAD = [
    (["--lr-reid", "-0.1"], {"lr_reid": -0.1}, "--lr-reid must be finite and > 0 (got -0.1)"),
    (["--color-jitter", "2"], {"color_jitter": 2.0}, "color_jitter is a probability"),
    (
        ["--metric", "manhattan"],
        {"metric": "manhattan"},
        "--metric must be one of cosine, euclidean",
    ),
    (["--reid-iters", "-1"], {"reid_iters": -1}, "--reid-iters must be >= 0 (got -1)"),
    (["--kernel", "box"], {"protocol": {"kernel": "box"}}, "--kernel must be one of bicubic"),
    (["--trials", "0"], {"protocol": {"trials": 0}}, "--trials must be >= 1 (got 0)"),
    (["--batch-size", "1"], {"batch_size": 1}, "--batch-size must be >= 2 (got 1)"),
]


@pytest.mark.parametrize(("args", "spec", "needle"), BAD, ids=[a[0] for a, _, _ in BAD])
def test_a_bad_value_gets_the_same_error_from_the_cli_and_from_a_spec(registry, args, spec, needle):
    with pytest.raises(ConfigError) as info:
        resolve_config({"preset": "smoke", **spec}, registry)
    assert needle in str(info.value)
    result = CliRunner().invoke(main, ["run", "--preset", "smoke", *args])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"error: {info.value}"


def test_a_saved_config_loads_and_is_checked_like_a_given_one():
    saved = RunConfig(preset="smoke", reg="gan", grad_clip=0.5).to_dict()
    assert RunConfig.from_dict(saved) == RunConfig(preset="smoke", reg="gan", grad_clip=0.5)
    with pytest.raises(ConfigError, match="--label-smooth must be finite and >= 0 and <= 0.999"):
        RunConfig.from_dict({**saved, "label_smooth": 1.5})
    with pytest.raises(ConfigError, match="--height must be a number"):
        RunConfig.from_dict({**saved, "height": "tall"})


def test_a_replaced_reid_weights_file_misses_the_stage0_cache(tmp_path, registry):
    """Keyed by the file's sha256, not its path: the old model is not reused for new weights."""
    path = tmp_path / "w.pt"
    config = RunConfig(preset="smoke", reid_weights=str(path))
    torch.save({"w": torch.zeros(2)}, path)
    before = stage0_key(config, registry, CPU)
    torch.save({"w": torch.ones(2)}, path)
    after = stage0_key(config, registry, CPU)
    assert after != before
    moved = tmp_path / "elsewhere.pt"
    path.rename(moved)  # the same file under another name: the same model
    assert stage0_key(config.replace(reid_weights=str(moved)), registry, CPU) == after


def test_an_edited_or_upgraded_plugin_misses_its_cache(tmp_path, monkeypatch):
    import importlib.util

    from harness.cache import code_fingerprint

    source = tmp_path / "editable_plugin.py"
    source.write_text("def build(config):\n    return 1\n")
    spec = importlib.util.spec_from_file_location("editable_plugin", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "editable_plugin", module)
    before = code_fingerprint(module.build, "crossres-harness")
    assert code_fingerprint(module.build, "crossres-harness") == before  # stable
    source.write_text("def build(config):\n    return 2  # edited\n")
    assert code_fingerprint(module.build, "crossres-harness") != before
    assert code_fingerprint(module.build, "another-dist") != code_fingerprint(
        module.build, "crossres-harness"
    )
