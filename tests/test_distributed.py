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
    env = dict(
        os.environ, OMP_NUM_THREADS="1", HARNESS_DISABLE_PLUGIN_AUTOLOAD="1", MPLBACKEND="Agg"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "harness",
        "run",
        "--preset",
        "smoke",
        "--reg",
        "gan",
        "--sr-iters",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
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


def _bucket_worker(rank: int, port: int, out: dict) -> None:
    import torch
    import torch.distributed as dist

    from harness import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        gen = torch.Generator().manual_seed(rank)
        shapes = [
            (64, 3, 7, 7),
            (64,),
            (64,),
            *[(64, 64, 3, 3), (64,), (64,)] * 20,
            (1000, 512),
            (1000,),
        ]
        grads = [torch.randn(s, generator=gen) for s in shapes]
        grads.append(
            torch.randn(5, generator=gen, dtype=torch.float64)
        )  # another dtype: its own bucket
        reference = [g.clone() for g in grads]
        for g in reference:  # the per-tensor version this replaced
            dist.all_reduce(g)
            g.div_(2)
        params = [torch.zeros(g.shape, dtype=g.dtype, requires_grad=True) for g in grads]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        params.append(torch.zeros(3, requires_grad=True))  # no grad: skipped
        calls, real = [], dist.all_reduce
        dist.all_reduce = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
        try:
            distributed.average_gradients(params)
            small = len(calls)
            calls.clear()
            distributed.average_gradients(params, bucket_bytes=1 << 20)
            many = len(calls)
        finally:
            dist.all_reduce = real
        if rank == 0:
            out["same"] = all(
                torch.equal(p.grad, r) for p, r in zip(params[:-1], reference, strict=True)
            )
            out["tensors"], out["calls"], out["calls_1mb"] = len(grads), small, many
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_bucketed_average_equals_per_tensor_with_a_few_all_reduces():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_bucket_worker, args=(port, out), nprocs=2, join=True)
    assert out["same"]  # bit-identical to one all_reduce per tensor (sum, then divide)
    assert out["tensors"] == 66 and out["calls"] == 2  # one float32 bucket (~3.7 MB), one float64
    # the count follows bytes, not tensors: smaller buckets, more calls, still far fewer
    # than tensors
    assert 4 <= out["calls_1mb"] <= 8
