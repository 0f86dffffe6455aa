"""What a result records about its origin: versions, commit, command, config.

Every ``config.json`` (and a weights file's ``.json``) is a :func:`config_document`,
so any number can be traced to the exact code and recipe that produced it.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config import PROTOCOL_VERSION, RunConfig


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("crossres-harness", "torch", "torchvision", "timm", "torchreid", "spandrel", "kornia", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def config_document(config: RunConfig, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "protocol_version": PROTOCOL_VERSION,
        "seed": config.seed,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
        **dict(extra or {}),
    }
