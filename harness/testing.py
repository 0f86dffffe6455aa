"""The pytest plugin for plugin authors: fixtures, and the contract checks re-exported.

The harness registers this module under the ``pytest11`` entry point (tox's
habit), so in any environment where ``crossres-harness`` is installed a
plugin's own tests can ask for ``plugin_manager``, ``register_inline_plugin``,
``tiny_config`` and ``tiny_dataset`` without importing anything, and call the
``check_*`` functions (from :mod:`harness.contracts`, importable from here too)
to prove a component keeps the contract the trainer relies on.

Importing this module imports torch (through ``harness``), so pytest pays
that once per session in an environment that has the harness installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.components import ReidDataset
from harness.config import RunConfig
from harness.contracts import (
    ANY_FACTOR,
    check_component,
    check_dataset,
    check_discriminator,
    check_regulariser,
    check_reid_model,
    check_sr_model,
    component_config,
    find_components,
    make_tiny_dataset,
    tiny_batch,
)
from harness.errors import PluginError
from harness.registry import Registry
from harness.run import resolve_config

__all__ = [
    "ANY_FACTOR",
    "check_component",
    "check_dataset",
    "check_discriminator",
    "check_regulariser",
    "check_reid_model",
    "check_sr_model",
    "component_config",
    "find_components",
    "make_tiny_dataset",
    "tiny_batch",
    "register_inline_plugin",
    "plugin_manager",
    "tiny_config",
    "tiny_dataset",
]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def plugin_manager() -> Registry:
    """A fresh registry with only the built-in plugins, whatever else is installed."""
    registry = Registry()
    registry.load_entry_points(autoload=False)
    return registry


@pytest.fixture
def register_inline_plugin(plugin_manager: Registry) -> Callable[..., Registry]:
    """``register_inline_plugin(module_or_object, name="inline")`` -> the registry.

    Registers a plugin that is not installed (a module of the package under
    test, or an object defined in the test) exactly as an entry point would,
    and raises if its hooks fail instead of recording the failure quietly.
    """

    def register(plugin: Any, name: str = "inline") -> Registry:
        before = plugin_manager.failed.get(name)
        plugin_manager.register_plugin(plugin, name, dist="inline")
        error = plugin_manager.failed.get(name)
        if error is not None and error != before:
            raise PluginError(f"inline plugin {name!r} failed to register: {error}")
        return plugin_manager

    return register


@pytest.fixture
def tiny_config(plugin_manager: Registry) -> RunConfig:
    """The ``smoke`` preset on CPU: 32x16 images, tiny built-in models, a few iterations."""
    return resolve_config({"preset": "smoke", "device": "cpu"}, plugin_manager)


@pytest.fixture
def tiny_dataset() -> ReidDataset:
    """A few in-memory identities over two cameras (see :func:`make_tiny_dataset`)."""
    return make_tiny_dataset()
