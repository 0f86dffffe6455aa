"""One house: the core owns the contract, plugins own their code (issue "One house").

The core never imports a concrete plugin; options carry their own preset values,
declared once beside their plugin; one rule types option and setting strings;
hooks are called through pluggy; the contract checks work without pytest.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest
from click.testing import CliRunner

from harness import Option, PluginError, RunConfig, coerce_option, hookimpl, read_options
from harness.cli import main
from harness.config import ConfigError, coerce_setting
from harness.presets import PRESETS
from harness.registry import Registry
from harness.resolve import resolve_config

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_under_harness_imports_plugins():
    offenders = []
    for path in (ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("plugins", "crossres_plugins")]
    assert offenders == []


def test_the_built_in_plugins_install_as_crossres_plugins_with_every_subpackage():
    """The folder is plugins/, the installed package crossres_plugins (a generic top-level
    name would clash in site-packages); a subpackage missing from the list would be left out
    of a wheel while working in a checkout."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"crossres_plugins": "plugins"}
    folders = {"crossres_plugins." + p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py")}
    folders |= {"harness." + p.parent.name for p in (ROOT / "harness").glob("*/__init__.py")}
    assert set(config["packages"]) == folders | {"harness", "crossres_plugins"}
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert all(v.startswith("crossres_plugins.") for v in entry_points["harness.plugins"].values())


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


def test_option_value_for_a_preset_and_read_options_types_values():
    option = Option(8, "blocks", presets={"cpu": 6})
    assert (option.value_for("cpu"), option.value_for("paper"), option.value_for(None)) == (6, 8, 8)
    config = RunConfig(options={"blocks": 3.0})
    assert read_options(config, {"blocks": option, "other": Option(0.5, "x")}) == {"blocks": 3, "other": 0.5}


@pytest.mark.parametrize(
    "value,default,expected",
    [("0.5", 1.0, 0.5), ("3", 1, 3), ("yes", False, True), ("off", True, False), ("x", "y", "x"),
     (2, 0.1, 2.0), ("keep", None, "keep")],
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
    with pytest.raises(ConfigError, match="expected a boolean"):
        coerce_setting("triplet", "maybe")


class _SharedKey:
    """Declares an option key that the built-in srgan generator also declares."""

    @hookimpl
    def harness_register_discriminators(self, registry):
        registry.add("clashing", lambda config: None, "test D", options={"sr_blocks": Option(1, "x")})


def test_an_option_two_selected_components_declare_is_an_error_naming_both(registry):
    fresh = Registry()
    fresh.load_entry_points(autoload=False)
    fresh.register_plugin(_SharedKey(), "shared-key")
    with pytest.raises(PluginError, match=r"'sr_blocks' is declared by sr 'srgan' \(plugin 'sr-srgan'\) "
                                          r"and by discriminator 'clashing' \(plugin 'shared-key'\)"):
        resolve_config({"preset": "smoke", "disc": "clashing"}, fresh)


def test_options_may_be_named_by_their_component(registry):
    config = resolve_config({"preset": "smoke", "reg": "intact", "options": {"intact.lambda_a": "0.05"}},
                            registry)
    assert config.options["lambda_a"] == 0.05
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_config({"preset": "smoke", "reg": "gan", "options": {"intact.lambda_a": "0.05"}}, registry)


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


def test_contract_checks_run_without_pytest():
    code = ("import sys; sys.modules['pytest'] = None\n"
            "from harness.cli import main\n"
            "main(['check-plugin', 'srgan', '--kind', 'sr'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={"HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sr 'srgan'" in result.stdout


def test_list_filters_names_with_wildcards():
    result = CliRunner().invoke(main, ["list", "intact*"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line.startswith("  ")]
    assert names == ["intact", "intact-nobridge"]
    assert "dataset:" not in result.output


def test_a_run_does_not_print_torchreids_cython_notice(tmp_path):
    """The harness never uses torchreid's evaluator, so its 'Cython evaluation' warning is noise."""
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--preset", "smoke", "--triplet", "--sr", "bicubic",
         "--sr-iters", "0", "--reid-iters", "1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env={"HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1",
                                                          "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Cython" not in result.stdout + result.stderr
