"""Every hook is documented (datasette's habit) and the README stays true."""

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
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
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


def test_cli_examples_in_readme_name_real_commands_and_options():
    from click.testing import CliRunner

    from harness.cli import main

    readme = (ROOT / "README.md").read_text()
    blocks = [re.search(rf"## {title}.*?```bash\n(.*?)```", readme, re.S).group(1)
              for title in ("Using it", "Real people")]
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
