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


def _harness_imports() -> tuple[dict[str, set[str]], list[str]]:
    """Each harness module's imports of other harness modules (inside functions included,
    ``if TYPE_CHECKING:`` blocks left out), and the imports written inside functions."""
    import ast

    root = Path(__file__).resolve().parents[1]
    modules = {}
    for path in sorted((root / "harness").rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path

    def owner(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    inner: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        in_function = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(node)
            if n is not node
        }
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skipped:
                continue
            if id(node) in in_function:
                inner.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom):
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
            else:
                targets = [a.name for a in node.names]
            for target in targets:
                found = owner(target) if target.startswith("harness") else None
                if found and found not in (name, "harness"):
                    graph[name].add(found)
    return graph, inner


def test_harness_has_no_import_circle_and_few_imports_inside_functions():
    graph, inner = _harness_imports()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in visiting:
            cycle = visiting[visiting.index(module) :] + [module]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if module in done:
            return
        visiting.append(module)
        for other in sorted(graph[module]):
            visit(other)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert len(inner) < 20, f"imports written inside functions: {inner}"
