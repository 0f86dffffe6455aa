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
