"""What a result records about its origin: versions, commit, command, config.

Every ``config.json`` (and a weights file's ``.json``) is a :func:`config_document`,
so any number can be traced to the exact code and recipe that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from harness.config import RunConfig


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in (
        "crossres-harness",
        "torch",
        "torchvision",
        "timm",
        "torchreid",
        "spandrel",
        "kornia",
        "numpy",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def compute_record(config: RunConfig) -> dict[str, Any]:
    """The settings that decide a run's speed and, on CPU, its last bits.

    Why recorded: a CPU run is bit-for-bit reproducible only at the same torch thread
    count, and its speed depends on the CPU; without them a README number cannot be checked.
    """
    on_gpu = config.device.startswith("cuda") or (
        config.device == "auto" and torch.cuda.is_available()
    )
    gpu = torch.device(config.device) if config.device.startswith("cuda") else None
    # float32 matmuls on a GPU may run in TF32 ("high") or bf16 ("medium"): not float32 then
    matmul = torch.get_float32_matmul_precision()
    if config.amp and on_gpu:
        precision = "bfloat16 autocast"
    elif on_gpu and (matmul != "highest" or torch.backends.cuda.matmul.allow_tf32):
        precision = f"float32 (matmul precision {matmul}: TF32 allowed)"
    else:
        precision = "float32"
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch picked
        "device": torch.cuda.get_device_name(gpu) if on_gpu else "cpu",
        "precision": precision,
    }


def config_document(config: RunConfig, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "protocol_version": config.protocol.version,
        "seed": config.seed,
        "compute": compute_record(config),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
        **dict(extra or {}),
    }
