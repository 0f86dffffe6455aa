"""Every hook is documented (datasette's habit) and the README stays true: its quick start,
its plugin example, its CLI examples, and its Layout section (every module and plugin folder)."""

from __future__ import annotations

import re
from pathlib import Path

from harness import hookspecs

ROOT = Path(__file__).parents[1]


def _hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("harness_")]


def test_every_hook_is_documented_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    missing = [h for h in _hook_names() if f"### {h}" not in guide]
    assert not missing, f"hooks without a section in docs/plugins.md: {missing}"


def test_every_hook_has_params_and_an_example_in_its_docstring():
    for name in _hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert ":param" in doc and "Example::" in doc, name


def test_readme_quick_start_is_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [
        line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()
    ]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_plugin_example_registers_and_runs():
    import types

    import torch.nn.functional as F
    from torch import nn

    from harness.registry import Registry

    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Writing a plugin.*?```python\n(.*?)```", readme, re.S).group(1)

    class MySR(nn.Module):
        def forward(self, x, out_size):
            return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)

    module = types.ModuleType("readme_plugin")
    module.MySR = MySR
    exec(compile(code, "README.md", "exec"), module.__dict__)
    reg = Registry()
    reg.register_plugin(module, "readme")
    entry = reg.lookup("sr", "my-sr")
    assert entry.plugin == "readme" and entry.summary == "my super-resolution model"
    import torch

    assert entry.factory(None)(torch.rand(1, 3, 8, 4), (16, 8)).shape == (1, 3, 16, 8)


def test_plugin_guide_minimal_sr_module_starts_at_bicubic_and_keeps_the_contract(
    register_inline_plugin, tiny_config
):
    """docs/plugins.md's complete minimal SR plugin, executed as written: it registers, keeps
    the SR contract without a warning, and its untrained output is exactly bicubic."""
    import types
    import warnings

    import torch

    from harness.contracts import ContractWarning, check_sr_model
    from harness.data.mlr import upsample_bicubic

    guide = (ROOT / "docs" / "plugins.md").read_text()
    code = re.search(r"A complete minimal SR plugin.*?```python\n(.*?)```", guide, re.S).group(1)
    module = types.ModuleType("guide_sr_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    registry = register_inline_plugin(module, name="guide-sr")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContractWarning)  # no BatchNorm, no warning
        assert check_sr_model(registry, "tiny-sr", tiny_config)
    model = registry.lookup("sr", "tiny-sr").factory(tiny_config).eval()
    x = torch.rand(2, 3, 11, 5)
    with torch.no_grad():
        assert torch.equal(model(x, (32, 16)), upsample_bicubic(x, (32, 16)))


def test_cli_examples_in_readme_name_real_commands_and_options():
    from click.testing import CliRunner

    from harness.cli import main

    readme = (ROOT / "README.md").read_text()
    blocks = [
        re.search(rf"## {title}.*?```bash\n(.*?)```", readme, re.S).group(1)
        for title in ("Using it", "Real people")
    ]
    for line in "\n".join(blocks).splitlines():
        line = line.split("#")[0].strip()
        if not line.startswith("harness "):
            continue
        words = line.split()
        sub = [w for w in words[1:3] if not w.startswith("-")]
        help_args = (sub[:2] if sub[:1] == ["data"] else sub[:1]) + ["--help"]
        result = CliRunner().invoke(main, help_args)
        assert result.exit_code == 0, line
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in result.output, f"{word} not an option of: {line}"


# --------------------------------------------------------------------------
# README's "## Layout" block names every module of harness/ (and harness/data/) and every
# folder of plugins/, and nothing that no longer exists. Its grammar: a line starting in
# column 0 opens ``harness/`` or ``plugins/``; in ``harness/``, every ``*.py`` word on an
# indented line is a module of harness/, or of harness/data/ on the line that starts with
# ``data/``; in ``plugins/``, an indented line starting with ``name/`` names plugins/name/.
# --------------------------------------------------------------------------


def layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"^## Layout\n.*?^```\n(.*?)^```", readme, re.S | re.M).group(1).splitlines()


def named_in_layout() -> set[str]:
    """Paths (relative to the root) the Layout block names."""
    named: set[str] = set()
    top = None
    for line in layout_block():
        words = line.split()
        if not words:
            continue
        if not line.startswith(" "):
            top = words[0].rstrip("/")
            continue
        if top == "harness":
            folder = "harness/data" if words[0] == "data/" else "harness"
            named |= {f"{folder}/{name}" for name in re.findall(r"\b(__\w+__\.py|\w+\.py)\b", line)}
        elif top == "plugins" and words[0].endswith("/"):
            named.add(f"plugins/{words[0].rstrip('/')}")
    return named


def on_disk() -> set[str]:
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "harness").glob("*.py")}
    modules |= {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "harness" / "data").glob("*.py")
        if p.name != "__init__.py"
    }  # the folder's own line stands for it
    folders = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "plugins").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    }
    return modules | folders


def test_the_layout_block_is_read_as_both_sections():
    named = named_in_layout()
    assert "harness/cli.py" in named and "harness/data/mlr.py" in named and "plugins/sr" in named


def test_readme_layout_names_every_module_and_plugin_folder():
    missing = sorted(on_disk() - named_in_layout())
    assert not missing, f"README.md's Layout section does not name: {missing}"


def test_readme_layout_names_nothing_that_no_longer_exists():
    stale = sorted(named_in_layout() - on_disk())
    assert not stale, f"README.md's Layout section names what is not there: {stale}"
