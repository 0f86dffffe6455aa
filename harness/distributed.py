"""Data-parallel training across processes (``torchrun ... -m harness run``).

Each rank draws its own batches (its own seeded generator: the
DistributedSampler idea for with-replacement sampling), gradients of the
step's trainable parameters are averaged across ranks before every optimiser
step, and rank 0 alone writes files and evaluates. We average gradients
explicitly instead of wrapping modules in ``DistributedDataParallel``: the
regularisers call into modules (``functional_call`` on the re-id model,
``phi.encode``) in ways a DDP wrapper would hide, and several steps per
iteration touch overlapping modules; the arithmetic is DDP's (mean of the
per-rank gradients), and so is the bucketing (a few flat all-reduces per
step, not one per tensor), without its communication/computation overlap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from harness.errors import HarnessError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def _env_int(name: str, default: int) -> int:
    """A whole number torchrun sets in the environment; anything else is one line, not a
    traceback."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise HarnessError(
            f"environment variable {name}={text!r} is not a whole number; torchrun sets it "
            f"(unset it to run one process)"
        ) from None


def env_rank() -> int:
    """This process's rank as torchrun announces it, before the process group exists."""
    return _env_int("RANK", 0)


def init_from_env() -> torch.device | None:
    """Join the process group torchrun describes; returns this rank's device, or None."""
    if _env_int("WORLD_SIZE", 1) <= 1 or is_distributed():
        return None
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise HarnessError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {' and '.join(missing)} unset: start "
            "distributed runs with torchrun (torchrun --nproc-per-node N -m harness run ...), "
            "or unset WORLD_SIZE to run one process"
        )
    use_cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


#: bytes of gradient per all-reduce (DDP's default bucket size): big enough that a step costs a
#: handful of collectives, small enough that one bucket's copy stays cheap
BUCKET_BYTES = 25 * 2**20


def gradient_buckets(
    grads: Sequence[torch.Tensor], bucket_bytes: int = BUCKET_BYTES
) -> list[list[torch.Tensor]]:
    """Group gradients into buckets of one dtype and device, each up to ``bucket_bytes``.

    In parameter order, so every rank forms the same buckets (ranks hold the same modules
    and the same step's trainable set); a tensor larger than a bucket gets its own.
    """
    buckets: list[list[torch.Tensor]] = []
    open_: dict[tuple[torch.dtype, torch.device], tuple[list[torch.Tensor], int]] = {}
    for g in grads:
        key = (g.dtype, g.device)
        bucket, size = open_.get(key, ([], 0))
        nbytes = g.numel() * g.element_size()
        if bucket and size + nbytes > bucket_bytes:
            buckets.append(bucket)
            bucket, size = [], 0
        bucket.append(g)
        open_[key] = (bucket, size + nbytes)
    buckets += [bucket for bucket, _ in open_.values() if bucket]
    return buckets


def average_gradients(params: Iterable[torch.Tensor], bucket_bytes: int = BUCKET_BYTES) -> None:
    """Mean of every rank's gradients, in place: one all_reduce per bucket, not per tensor.

    A ResNet-50 has 161 parameter tensors; one collective each costs 161 latencies per
    step, while flat buckets of ~25 MB cost a handful (DDP's bucketing, without its
    overlap with the backward pass). The arithmetic is unchanged (sum over ranks, then
    divide), element by element, so the result equals the per-tensor version.
    """
    if not is_distributed():
        return
    n = world_size()
    grads = [p.grad for p in params if p.grad is not None]
    for bucket in gradient_buckets(grads, bucket_bytes):
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(n)
        for g, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket), strict=True):
            g.copy_(synced)


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
