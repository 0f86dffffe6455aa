"""Images/s of one SR-stage training iteration for none, gan and intact.

Prints each regulariser's throughput and the ratio of time per iteration
intact/gan (goal: <= 1.25): the critic and its extra step should cost little
next to the GAN cascade it regularises. All three are timed in this process,
on the same batches, same models, same device.

    python benchmarks/train_speed.py                      # CPU, 64x32, resnet18
    python benchmarks/train_speed.py --device cuda --height 256 --width 128 \
        --reid resnet50 --batch 64 --amp --channels-last  # the GPU table
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.components import TrainBatch
from harness.context import StepContext
from harness.data.mlr import downsample
from harness.models import build_models
from harness.registry import get_registry
from harness.run import resolve_config
from harness.schedule import StepRunner


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_regulariser(reg: str, args: argparse.Namespace, device: torch.device) -> float:
    registry = get_registry()
    preset = "paper" if args.height >= 128 else "cpu"
    config = resolve_config(
        {
            "sr": args.sr,
            "reid": args.reid,
            "reg": reg,
            "preset": preset,
            "height": args.height,
            "width": args.width,
            "batch_size": args.batch,
            "amp": args.amp,
            "channels_last": args.channels_last,
        },
        registry,
    )
    torch.manual_seed(0)
    models, regulariser = build_models(config, registry, num_classes=args.classes)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    for m in models.values():
        m.to(device, memory_format=fmt).train()
    if args.compile:
        for name in ("G", "reid"):
            models[name] = torch.compile(models[name])
    amp = torch.bfloat16 if args.amp else None
    runner = StepRunner(
        models, regulariser.schedule(config), {"G": 1e-4, "reid": 3e-5, "default": 1e-4}, amp
    )
    g = torch.Generator().manual_seed(0)
    x_hr = torch.rand(args.batch, 3, args.height, args.width, generator=g).to(
        device, memory_format=fmt
    )
    pids = torch.randint(args.classes, (args.batch,), generator=g).to(device)
    batches = [
        TrainBatch(downsample(x_hr, r, config.protocol), x_hr, pids, r) for r in (2.0, 3.0, 4.0)
    ]

    def iteration(i: int) -> None:
        runner.run_iteration(StepContext(batches[i % 3], models, config), i)

    for i in range(args.warmup):
        iteration(i)
    sync(device)
    start = time.perf_counter()
    for i in range(args.iters):
        iteration(i)
    sync(device)
    elapsed = time.perf_counter() - start
    return args.iters * args.batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sr", default="srgan")
    parser.add_argument("--reid", default="resnet18")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--regs", default="none,gan,intact")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"device={device} sr={args.sr} reid={args.reid} {args.height}x{args.width} "
        f"batch={args.batch} amp={args.amp} channels_last={args.channels_last} "
        f"compile={args.compile} threads={torch.get_num_threads()}"
    )
    rates = {}
    for reg in args.regs.split(","):
        rates[reg] = time_regulariser(reg, args, device)
        print(f"{reg:>16}: {rates[reg]:8.1f} images/s per SR-stage iteration")
    if "gan" in rates and "intact" in rates:
        print(
            f"time per iteration intact/gan = {rates['gan'] / rates['intact']:.3f} (goal <= 1.25)"
        )
    if "none" in rates and "intact" in rates:
        print(f"time per iteration intact/none = {rates['none'] / rates['intact']:.3f}")


if __name__ == "__main__":
    main()
