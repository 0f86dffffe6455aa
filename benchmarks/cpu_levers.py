"""Seconds per iteration of every training stage under each CPU lever, as ratios in one process.

Why: issue 27 asks for a faster CPU run, and ``metrics.json``'s timing block says where a run's
time goes (stage 0, the pixel warm start, the critic warm-up, stage 1) but not what would make
each stage faster. This script runs the real training code (``harness.run.run_experiment``,
the ``cpu`` preset, synthetic data, every stage shortened to a few dozen iterations) once per
lever, alternating the levers so a machine that slows down during the script slows all of them,
and prints each stage's seconds per iteration and its ratio to the first lever:

    python benchmarks/cpu_levers.py                           # float32 vs channels_last
    python benchmarks/cpu_levers.py --levers base,channels_last,log --repeats 2

Levers (each a set of run settings, recorded in the run's config.json like any other):

* ``base``: float32, contiguous tensors (``--no-channels-last``);
* ``channels_last``: the models and batches in channels_last memory format;
* ``log``: ``base`` with no log step inside the timed stages (``log_every`` past every stage's
  length), i.e. the cost of the diagnostics that every log step computes.

bfloat16 is not a lever here: the harness runs float32 on a CPU (``--amp`` is GPU-only), and
``benchmarks/train_speed.py --amp`` measures bf16 autocast on the CPU directly.

Only ratios measured in the same run mean anything: absolute seconds depend on the machine
and on what else it runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from harness.registry import get_registry
from harness.run import resolve_config, run_experiment

STAGES = ("reid", "warmup", "critic", "sr")

LEVERS: dict[str, dict[str, Any]] = {
    "base": {"channels_last": False},
    "channels_last": {"channels_last": True},
    "log": {"channels_last": False, "log_every": 100_000},
}


def time_lever(lever: str, args: argparse.Namespace, root: Path) -> dict[str, float]:
    """Seconds per iteration of each stage of one short run with ``lever``'s settings."""
    registry = get_registry()
    values: dict[str, Any] = {
        "sr": args.sr,
        "reid": args.reid,
        "reg": args.reg,
        "preset": "cpu",
        "reid_iters": args.reid_iters,
        "sr_warmup_iters": args.warmup_iters,
        "sr_iters": args.sr_iters,
        "options": {"critic_iters": args.critic_iters},
        **LEVERS[lever],
    }
    config = resolve_config(values, registry)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{lever}-", dir=root))
    run_experiment(config, run_dir, registry, echo=lambda _message: None)
    timing = json.loads((run_dir / "metrics.json").read_text())["timing"]["stages"]
    return {
        stage: timing[stage]["wall_s"] / timing[stage]["batches"]
        for stage in STAGES
        if stage in timing and timing[stage].get("batches")
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levers", default="base,channels_last")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sr", default="srgan")
    parser.add_argument("--reid", default="resnet18")
    parser.add_argument("--reg", default="intact")
    parser.add_argument("--reid-iters", type=int, default=20)
    parser.add_argument("--warmup-iters", type=int, default=30)
    parser.add_argument("--critic-iters", type=int, default=20)
    parser.add_argument("--sr-iters", type=int, default=25)
    args = parser.parse_args()
    levers = args.levers.split(",")
    unknown = sorted(set(levers) - set(LEVERS))
    if unknown:
        parser.error(f"unknown lever(s) {', '.join(unknown)}; levers: {', '.join(LEVERS)}")
    print(
        f"cpu preset, {args.sr} + {args.reid} + {args.reg}, synthetic data, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    seconds: dict[str, dict[str, list[float]]] = {lever: {} for lever in levers}
    with tempfile.TemporaryDirectory(prefix="cpu-levers-") as tmp:
        for _ in range(args.repeats):
            for lever in levers:  # alternating: a slowing machine slows every lever alike
                for stage, s in time_lever(lever, args, Path(tmp)).items():
                    seconds[lever].setdefault(stage, []).append(s)
    reference = levers[0]
    header = f"{'lever':>14} " + " ".join(f"{s:>16}" for s in STAGES)
    print(f"seconds per iteration (median of {args.repeats}); ratio = {reference} / lever")
    print(header)
    for lever in levers:
        cells = []
        for stage in STAGES:
            if stage not in seconds[lever]:
                cells.append(f"{'-':>16}")
                continue
            s = statistics.median(seconds[lever][stage])
            ratio = statistics.median(seconds[reference][stage]) / s
            cells.append(f"{s:8.3f} ({ratio:4.2f}x)")
        print(f"{lever:>14} " + " ".join(cells))


if __name__ == "__main__":
    main()
