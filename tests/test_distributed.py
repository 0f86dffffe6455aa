"""Two CPU processes on the gloo backend train one run (torchrun -m harness run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_ranks_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", HARNESS_DISABLE_PLUGIN_AUTOLOAD="1", MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "harness", "run", "--preset", "smoke", "--reg", "gan", "--sr-iters", "2",
           "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["world_size"] == 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    seen = next(x["rank_first_batch"] for x in lines if "rank_first_batch" in x)
    assert len(seen) == 2 and seen[0] != seen[1]  # the ranks drew different data
    # rank 0 alone wrote: one log line per logged iteration, not two
    iters = [x["iteration"] for x in lines if x.get("stage") == "reid" and "reid/ce" in x]
    assert len(iters) == len(set(iters))
