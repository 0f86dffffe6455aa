"""A run killed mid-way (SIGKILL, a real subprocess) resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = [
    "--preset",
    "smoke",
    "--reg",
    "gan",
    "--reid-iters",
    "12",
    "--sr-iters",
    "40",
    "--ckpt-every",
    "4",
    "--log-every",
    "4",
    "--seed",
    "3",
]


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"OMP_NUM_THREADS": "1", "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1", "MPLBACKEND": "Agg"}
    )
    return env


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(
        _harness(*ARGS, "--out", str(straight)), check=True, env=_env(), capture_output=True
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _harness(*ARGS, "--out", str(killed)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    ckpts = killed / "checkpoints"
    while time.time() < deadline:
        if list(ckpts.glob("ckpt-sr-00000[1-9]*.pt")) or list(ckpts.glob("ckpt-sr-0000[1-9]*.pt")):
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["status"] == "running"  # no partial folder pretends to be complete

    resumed = subprocess.run(
        _harness("--resume", str(killed)), env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed at stage sr" in resumed.stdout

    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["status"] == "complete"
    for kind in ("sr", "bicubic", "hr"):
        assert a["queries"][kind]["cmc"] == b["queries"][kind]["cmc"], kind
        assert a["queries"][kind]["mAP"] == b["queries"][kind]["mAP"], kind
    assert a["queries"]["sr"]["psnr"] == b["queries"]["sr"]["psnr"]


def test_keeps_only_last_k_checkpoints(tmp_path):
    import torch

    from harness.checkpoint import latest_checkpoint, list_checkpoints, save_checkpoint

    for i in range(1, 6):
        save_checkpoint(tmp_path, "sr", i, {"models": {"reid": {}}, "w": torch.tensor([i])}, keep=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["ckpt-sr-0000004.pt", "ckpt-sr-0000005.pt"]
    # a torn newest file (crash mid-write of a non-atomic copy) falls back to the previous one
    Path(tmp_path / "ckpt-sr-0000006.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipping checkpoint ckpt-sr-0000006.pt"):
        assert int(latest_checkpoint(tmp_path)["w"]) == 5


class Evil:
    """Any class: unpickling it would import and run code from this module."""


def test_checkpoint_needing_pickled_code_is_refused(tmp_path):
    import torch

    from harness.checkpoint import safe_load
    from harness.errors import HarnessError

    path = tmp_path / "evil.pt"
    torch.save({"obj": Evil()}, path)
    with pytest.raises(HarnessError, match="refusing to unpickle code"):
        safe_load(path)


def test_rng_states_round_trip_without_pickle(tmp_path):
    import random

    import numpy as np
    import torch

    from harness.checkpoint import restore_rng, rng_state, safe_load
    from harness.io import atomic_torch_save

    gen = torch.Generator().manual_seed(5)
    random.seed(1)
    np.random.seed(2)
    np.random.normal()  # leaves a cached gaussian in the state
    atomic_torch_save(rng_state(gen), tmp_path / "rng.pt")
    expected = (
        random.random(),
        float(np.random.normal()),
        torch.rand(1, generator=gen).item(),
        torch.rand(1).item(),
    )
    restore_rng(safe_load(tmp_path / "rng.pt"), gen)  # weights_only load: no pickled bytes inside
    assert (
        random.random(),
        float(np.random.normal()),
        torch.rand(1, generator=gen).item(),
        torch.rand(1).item(),
    ) == expected
