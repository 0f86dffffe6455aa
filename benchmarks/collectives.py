"""All-reduce calls per training step: one per parameter tensor (before) vs bucketed (now).

Two CPU processes on the gloo backend average the gradients of resnet18- and
resnet50-sized parameter lists (torchvision's shapes) both ways, count the
``all_reduce`` calls each makes per step, time them, and check that both give the
same averaged gradients bit for bit. The bucketed count depends on the bytes of
gradient (25 MB buckets), not on the number of tensors.

    python benchmarks/collectives.py             # resnet18 and resnet50, 5 steps each
    python benchmarks/collectives.py --steps 20
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

MODELS = ("resnet18", "resnet50")


def per_tensor_average(params: list[torch.Tensor]) -> None:
    """The harness's average_gradients before bucketing: one all_reduce per tensor."""
    n = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(n)


def _params(name: str, rank: int) -> list[torch.Tensor]:
    import torchvision

    model = getattr(torchvision.models, name)()
    gen = torch.Generator().manual_seed(1234 + rank)  # each rank its own gradients
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    return params


def _worker(rank: int, world: int, port: int, steps: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from harness import distributed

    calls = {"n": 0}
    real = dist.all_reduce

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    dist.all_reduce = counting  # harness.distributed calls it through the same module
    try:
        for name in MODELS:
            row = {}
            for how, average in (
                ("per-tensor", per_tensor_average),
                ("bucketed", distributed.average_gradients),
            ):
                params = _params(name, rank)
                start_calls, start = calls["n"], time.perf_counter()
                for _ in range(steps):
                    average(params)
                dist.barrier()
                row[how] = (
                    (calls["n"] - start_calls) / steps,
                    (time.perf_counter() - start) / steps,
                    [p.grad.clone() for p in params],
                )
            same = all(
                torch.equal(a, b)
                for a, b in zip(row["per-tensor"][2], row["bucketed"][2], strict=True)
            )
            if rank == 0:
                out[name] = {
                    "tensors": len(params),
                    "mb": sum(p.numel() for p in params) * 4 / 2**20,
                    "same": same,
                    **{how: row[how][:2] for how in row},
                }
    finally:
        dist.all_reduce = real
        dist.destroy_process_group()


def measure(steps: int = 5, world: int = 2) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(world, port, steps, out), nprocs=world, join=True)
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    results = measure(args.steps)
    print(
        f"{'model':<10} {'tensors':>7} {'grad MB':>8} {'calls/step before':>18} {'after':>6} "
        f"{'ms/step before':>15} {'after':>7} {'identical':>9}"
    )
    for name in MODELS:
        r = results[name]
        print(
            f"{name:<10} {r['tensors']:>7} {r['mb']:>8.1f} {r['per-tensor'][0]:>18.0f} "
            f"{r['bucketed'][0]:>6.0f} "
            f"{r['per-tensor'][1] * 1e3:>15.1f} {r['bucketed'][1] * 1e3:>7.1f} {str(r['same']):>9}"
        )


if __name__ == "__main__":
    main()
