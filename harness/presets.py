"""Named bundles of defaults; any single option given explicitly overrides them.

``cpu`` is sized so a 2-core CPU finishes a whole run with the default
resnet18 in about 7 minutes (resnet50 takes about 11; add ``--reid-iters 300
--sr-iters 180`` to bring it under 10); ``paper`` is the 256x128 schedule for a GPU;
``smoke`` exists for tests and takes seconds. Presets name core fields only: a
plugin's option carries its own per-preset values (``Option(..., presets=...)``).

HR size: ``paper`` leaves it to the dataset (Market-1501's native 128x64, so
its LR queries are the paper's 64x32 / 43x21 / 32x16, and the re-id model sees
256x128); ``cpu`` and ``smoke`` fix a small HR size equal to the re-id size,
recorded in ``config.json`` like every other choice.
"""

from __future__ import annotations

from typing import Any

import torch

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "height": 32,
        "width": 16,
        "hr_height": 32,
        "hr_width": 16,
        "batch_size": 8,
        "reid_iters": 4,
        "sr_warmup_iters": 2,
        "sr_iters": 3,
        "log_every": 2,
        "ckpt_every": 50,
        "eval_batch_size": 64,
        "protocol": {"trials": 2},
    },
    "cpu": {
        "height": 64,
        "width": 32,
        "hr_height": 64,
        "hr_width": 32,
        "batch_size": 32,
        "reid_iters": 400,
        "sr_warmup_iters": 1000,
        "sr_iters": 250,
        "log_every": 25,
        "ckpt_every": 100,
    },
    "paper": {
        "height": 256,
        "width": 128,
        "batch_size": 64,
        "reid_iters": 6000,
        "sr_warmup_iters": 4000,
        "lr_warmup": 2e-4,
        "sr_iters": 6000,
        "log_every": 100,
        "ckpt_every": 1000,
        "workers": 8,
        "amp": True,
        "channels_last": True,
    },
}


def default_preset() -> str:
    """``paper`` with a GPU, ``cpu`` without: what a bare ``harness run`` uses."""
    return "paper" if torch.cuda.is_available() else "cpu"


def preset_values(name: str) -> dict[str, Any]:
    from harness.errors import UnknownNameError

    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    values = PRESETS[name]
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
