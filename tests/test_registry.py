"""harness.registry: plugins through entry points and pluggy, lookup with "did you mean",
plugins that fail in isolation, and the kinds table (harness.kinds, harness.registrars)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from harness import Option, hookimpl
from harness.errors import PluginError, UnknownNameError
from harness.registry import BUILTIN_DISTRIBUTION, Registry

BUILTINS = {
    "sr-bicubic",
    "sr-srgan",
    "disc-srgan",
    "reid-timm",
    "reid-torchreid",
    "reg-none",
    "reg-gan",
    "reg-intact",
    "reg-associations",
    "data-synthetic",
    "data-market1501",
    "data-dukemtmc",
    "data-cuhk03",
    "data-viper",
    "data-caviar",
}


def test_builtins_arrive_through_entry_points(registry):
    assert registry.failed == {}
    assert BUILTINS <= set(registry.plugins)
    assert all(registry.plugins[name] == BUILTIN_DISTRIBUTION for name in BUILTINS)
    assert {"bicubic", "srgan"} <= set(registry.names("sr"))
    assert {"none", "gan", "intact", "intact-nobridge", "common-space", "d-to-r"} <= set(
        registry.names("regulariser")
    )
    assert {"synthetic", "market1501", "dukemtmc", "cuhk03", "viper", "caviar"} <= set(
        registry.names("dataset")
    )
    assert {"resnet50", "osnet_x1_0"} <= set(registry.names("reid"))


def test_unknown_name_lists_known_and_suggests(registry):
    with pytest.raises(UnknownNameError) as err:
        registry.lookup("regulariser", "intcat")
    msg = str(err.value)
    assert "unknown regulariser 'intcat'" in msg
    assert "Did you mean 'intact'" in msg
    assert "common-space" in msg and "none" in msg


def test_unknown_kind(registry):
    with pytest.raises(UnknownNameError, match="kinds: sr, discriminator"):
        registry.lookup("optimizer", "adam")


def test_timm_names_resolve_without_explicit_registration(registry):
    entry = registry.lookup("reid", "mobilenetv3_small_050")
    assert entry.plugin == "reid-timm"
    with pytest.raises(UnknownNameError):
        registry.lookup("reid", "no_such_network_xyz")


class _SrA:
    @hookimpl
    def harness_register_sr(self, registry):
        registry.add("dup", lambda config: None, "first")


class _SrB:
    @hookimpl
    def harness_register_sr(self, registry):
        registry.add("dup", lambda config: None, "second")


def test_duplicate_names_name_both_plugins():
    reg = Registry()
    reg.register_plugin(_SrA(), "plugin-a")
    with pytest.raises(
        PluginError, match="registered twice: by plugin 'plugin-a' and by plugin 'plugin-b'"
    ):
        reg.register_plugin(_SrB(), "plugin-b")


class _Misspelled:
    @hookimpl
    def harness_register_srr(self, registry):  # typo: no such hook
        pass


def test_misspelled_hook_is_reported_not_silently_ignored():
    reg = Registry()
    reg.register_plugin(_Misspelled(), "typo-plugin")
    assert "typo-plugin" in reg.failed
    assert "harness_register_srr" in reg.failed["typo-plugin"]


class _Raises:
    @hookimpl
    def harness_register_reid(self, registry):
        raise RuntimeError("boom")


def test_plugin_whose_hook_raises_is_isolated():
    reg = Registry()
    reg.register_plugin(_Raises(), "bad")
    reg.register_plugin(_SrA(), "good")
    assert "boom" in reg.failed["bad"]
    assert reg.names("sr") == ["dup"]


def test_options_are_recorded(registry):
    entry = registry.lookup("regulariser", "intact")
    assert isinstance(entry.options["lambda_a"], Option)


def _fake_distribution(tmp_path, module_source: str, module: str = "fake_harness_plugin"):
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / "fake_harness_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-harness-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[harness.plugins]\nfake = {module}\n")


PLUGIN_SOURCE = """
from harness import hookimpl

@hookimpl
def harness_register_sr(registry):
    registry.add("fake-sr", lambda config: None, "a third-party SR model")
"""


def test_third_party_entry_point_and_autoload_switch(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    on = Registry()
    on.load_entry_points(autoload=True)
    assert "fake-sr" in on.names("sr")
    assert on.entries["sr"]["fake-sr"].plugin == "fake"
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    off = Registry()
    off.load_entry_points()
    assert "fake-sr" not in off.names("sr")
    assert "bicubic" in off.names("sr")
    sys.modules.pop("fake_harness_plugin", None)


def test_broken_third_party_plugin_does_not_break_builtins(tmp_path, monkeypatch):
    _fake_distribution(
        tmp_path, "raise ImportError('missing dependency xyz')\n", module="fake_broken_plugin"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    reg.load_entry_points(autoload=True)
    assert "missing dependency xyz" in reg.failed["fake"]
    assert "srgan" in reg.names("sr")


def test_the_kinds_table_is_complete():
    """Every row names a hook spec, a contract check, a registrar and, where a run selects
    the kind, a RunConfig field; the registry and the config read nothing else."""
    import dataclasses

    from harness import contracts, hookspecs, registrars
    from harness.config import COMPONENT_FIELDS, RunConfig
    from harness.kinds import KINDS, RUN_ORDER

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for kind in KINDS:
        assert callable(getattr(hookspecs, kind.hook)), kind
        assert callable(getattr(contracts, kind.check)), kind
        assert issubclass(getattr(registrars, kind.registrar), registrars.KindRegistry), kind
        assert kind.config_field is None or kind.config_field in fields, kind
    assert [k for k, _ in COMPONENT_FIELDS] == list(RUN_ORDER)
    assert COMPONENT_FIELDS == (
        ("sr", "sr"),
        ("reid", "reid"),
        ("regulariser", "reg"),
        ("dataset", "data"),
        ("discriminator", "disc"),
    )


def test_typed_entries_carry_what_a_kind_registers_besides_a_factory(registry):
    from crossres_plugins.data.synthetic import write_layout

    from harness.registrars import DatasetEntry, WeightsEntry

    synthetic = registry.lookup("dataset", "synthetic")
    assert isinstance(synthetic, DatasetEntry) and synthetic.write_layout is write_layout
    assert not hasattr(synthetic.factory, "write_layout")
    market = registry.lookup("dataset", "market1501")
    assert isinstance(market, DatasetEntry) and market.write_layout is None
    source = registry.lookup("weights", "timm-cache")
    assert isinstance(source, WeightsEntry) and source.source.tier == "cache"


class _NoArguments:
    """A hook implementation may take a subset of the hook's arguments (pluggy's promise)."""

    called = False

    @hookimpl
    def harness_register_sr(self):
        _NoArguments.called = True


def test_hooks_are_called_through_pluggy():
    fresh = Registry()
    fresh.register_plugin(_NoArguments(), "no-args")
    assert _NoArguments.called and "no-args" not in fresh.failed
