"""Data-parallel training across processes (``torchrun ... -m harness run``).

Each rank draws its own batches (its own seeded generator: the
DistributedSampler idea for with-replacement sampling), gradients of the
step's trainable parameters are averaged across ranks before every optimiser
step, and rank 0 alone writes files and evaluates. We average gradients
explicitly instead of wrapping modules in ``DistributedDataParallel``: the
regularisers call into modules (``functional_call`` on the re-id model,
``phi.encode``) in ways a DDP wrapper would hide, and several steps per
iteration touch overlapping modules; the arithmetic is DDP's (mean of the
per-rank gradients), without its communication/computation overlap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> torch.device | None:
    """Join the process group torchrun describes; returns this rank's device, or None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return None
    use_cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    if not is_distributed():
        return
    n = world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(n)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights and buffers."""
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_gather_int(value: int) -> list[int]:
    if not is_distributed():
        return [value]
    out = [torch.zeros(1, dtype=torch.long) for _ in range(world_size())]
    dist.all_gather(out, torch.tensor([value], dtype=torch.long))
    return [int(t) for t in out]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
