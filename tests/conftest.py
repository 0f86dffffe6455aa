"""Test-wide settings: never pick up third-party plugins installed by accident,
keep torch to the cores CI has, and write matplotlib output headless."""

from __future__ import annotations

import os

os.environ.setdefault("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


@pytest.fixture(scope="session")
def registry():
    from harness.registry import get_registry

    return get_registry()


@pytest.fixture
def shared_data():
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"real data not available: {path} is absent (it sits beside the project in CI)")
    return path
