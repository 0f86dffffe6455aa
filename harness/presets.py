"""Named bundles of defaults; any single option given explicitly overrides them.

``cpu`` is sized so an idle 2-core CPU finishes a whole run with the default resnet18 in
about a quarter of an hour (the README's demo, measured with its date and thread count;
resnet50's stage 0 alone takes several times that); ``paper`` is the 256x128 schedule for a GPU;
``smoke`` exists for tests and takes seconds. Each setting declares its own
per-preset values (``setting(..., presets=...)`` in :mod:`harness.config`), as a
plugin's option does (``Option(..., presets=...)``); this module only reads them.

HR size: ``paper`` leaves it to the dataset (Market-1501's native 128x64, so
its LR queries are the paper's 64x32 / 43x21 / 32x16, and the re-id model sees
256x128); ``cpu`` and ``smoke`` fix a small HR size equal to the re-id size,
recorded in ``config.json`` like every other choice.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.config import SETTINGS
from harness.errors import UnknownNameError
from harness.settings import PRESET_NAMES


def _declared(name: str) -> dict[str, Any]:
    """The values settings declare for preset ``name`` (``setting(presets=...)``), protocol
    ones nested."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if name in s.presets:
            table = values.setdefault("protocol", {}) if s.name.startswith("protocol.") else values
            table[s.field] = s.presets[name]
    return values


#: preset -> the settings it gives, read from the declarations (``harness.config.RunConfig``)
PRESETS: dict[str, dict[str, Any]] = {name: _declared(name) for name in PRESET_NAMES}


def default_preset() -> str:
    """``paper`` with a GPU, ``cpu`` without: what a bare ``harness run`` uses."""
    return "paper" if torch.cuda.is_available() else "cpu"


def preset_values(name: str) -> dict[str, Any]:
    """A fresh copy of a preset's settings; an unknown name is a one-line error listing them."""
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    values = PRESETS[name]
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
