"""The boundary between the core and the built-in plugins: harness/ never imports a
plugin, and plugins/ installs as the package crossres_plugins with every subpackage."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("plugins", "crossres_plugins")
            ]
    assert offenders == []


def test_the_built_in_plugins_install_as_crossres_plugins_with_every_subpackage():
    """The folder is plugins/, the installed package crossres_plugins (a generic top-level
    name would clash in site-packages); a subpackage missing from the list would be left out
    of a wheel while working in a checkout."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"crossres_plugins": "plugins"}
    folders = {
        "crossres_plugins." + p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py")
    }
    folders |= {"harness." + p.parent.name for p in (ROOT / "harness").glob("*/__init__.py")}
    assert set(config["packages"]) == folders | {"harness", "crossres_plugins"}
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert all(v.startswith("crossres_plugins.") for v in entry_points["harness.plugins"].values())
