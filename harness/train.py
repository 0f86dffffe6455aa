"""Algorithm 1 as one visible loop.

Stage 0 trains the re-id model on HR images. The warm start trains G alone on
the pixel loss (SRGAN's SRResNet stage), so the adversarial and association
terms refine a generator that already super-resolves instead of steering a
blank one. The critic warm-up runs the regulariser's steps that do not train
G (D, the association networks) with G frozen, so a critic is informative on
the first iteration its terms act on G. Stage 1 runs the regulariser's
schedule of steps each iteration (e.g. INTACT: D, then phi+sigma, then G),
freezing every module a step does not name. Stage 0, the warm start and the
critic warm-up each draw from their own seeded generators, so each can be
cached and shared by runs that agree on its recipe.

Diagnostics: on log iterations of stage 1 the step runner measures each
term's share of G's gradient, and the regulariser probes its critics on a
fixed held-out batch of real HR training images (``PROBE_IMAGES``) that the
critic warm-up and stage 1 never sample. All generators are checkpointed, so a resumed CPU run ends
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import augment, distributed
from harness.checkpoint import (
    FROZEN_REID,
    restore_rng,
    rng_state,
    safe_load,
    save_checkpoint,
    save_frozen_reid,
)
from harness.components import Regulariser, TrainBatch
from harness.config import TRIPLET_INSTANCES, RunConfig
from harness.context import StepContext
from harness.data.mlr import TrainRatioSampler, downsample
from harness.data.prepare import PreparedData
from harness.distributed import all_gather_int, average_gradients, barrier, is_main
from harness.errors import NumericalError
from harness.freezing import (
    buffers_restored,
    inference_mode_layers,
    requires_grad_restored,
    set_trainable,
    training_modes_restored,
)
from harness.io import atomic_torch_save
from harness.losses import pixel_mse
from harness.progress import Progress
from harness.schedule import GENERATOR, StepRunner, default_learning_rates
from harness.timing import RunTiming

LogFn = Callable[[dict[str, Any]], None]

#: held-out real HR training images for the critics' probes (at most an eighth of the
#: training set): never drawn by the critic warm-up or stage 1
PROBE_IMAGES = 64


def probe_split(num_train: int, seed: int) -> tuple[Tensor, Tensor]:
    """``(probe indices, the rest)`` of the training images: a seeded, fixed draw.

    Why held out: a critic's fit measured on the images it is trained on says
    how well it memorised them, not whether it predicts ``f_d`` for an image it
    has not seen, which is what it does to every SR image.
    """
    n = min(PROBE_IMAGES, num_train // 8)
    order = torch.randperm(num_train, generator=torch.Generator().manual_seed(seed * 1000 + 9))
    if n < 4:  # too few images for a variance: no probe, nothing held out
        return order[:0], torch.arange(num_train)
    return order[:n].sort().values, order[n:].sort().values


def pk_indices(pids: Tensor, batch_size: int, instances: int, generator: torch.Generator) -> Tensor:
    """P identities x K images each (for the triplet loss); sampling with replacement within
    an id."""
    uniq = torch.unique(pids)
    p = max(1, batch_size // instances)
    chosen = uniq[torch.randperm(len(uniq), generator=generator)[:p]]
    out = []
    for pid in chosen.tolist():
        pool = torch.nonzero(pids == pid).flatten()
        out.append(pool[torch.randint(len(pool), (instances,), generator=generator)])
    return torch.cat(out)


def warmup_schedule(iters: int) -> Callable[[int], float]:
    """Learning-rate factor of the warm start: a linear ramp over the first 5%, then cosine to 0.

    Why: a constant 1e-3 sped the pixel loss up but diverged on one of two seeds
    (MSE x15 at iteration 200, never back below bicubic); the ramp keeps Adam's
    first, badly estimated steps small and the decay lets G settle at the end.
    """
    ramp = max(1, iters // 20)

    def factor(i: int) -> float:
        if i < ramp:
            return (i + 1) / ramp
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (i - ramp) / max(1, iters - ramp))))

    return factor


class Trainer:
    """Owns the modules, optimisers, RNG and checkpoints of one run."""

    def __init__(
        self,
        config: RunConfig,
        data: PreparedData,
        models: dict[str, nn.Module],
        regulariser: Regulariser,
        run_dir: Path,
        device: torch.device,
        log: LogFn,
        stage0_cache: Path | None = None,
        warmup_cache: Path | None = None,
        critic_cache: Path | None = None,
        timing: RunTiming | None = None,
        validate: Callable[[], dict[str, float]] | None = None,
    ):
        self.config = config
        #: the validation curve's one point (harness.validation), every ``val_every`` stage-1
        #: iterations; None where the run has no validation split
        self.validate = validate
        self.timing = timing if timing is not None else RunTiming()  # seconds per stage
        self.data = data
        self.models = models
        self.regulariser = regulariser
        self.run_dir = run_dir
        self.device = device
        self.log = log
        self.rank = distributed.rank()
        # Each rank draws its own batches (rank 0 draws exactly what a one-process run draws).
        self.generator = torch.Generator().manual_seed(config.seed + 7919 * self.rank)
        self.amp_dtype = torch.bfloat16 if (config.amp and device.type == "cuda") else None
        for module in models.values():
            module.to(device)
            if config.channels_last:
                module.to(memory_format=torch.channels_last)
            if config.compile and device.type == "cuda":
                module.compile(dynamic=True)  # in place: state_dict keys stay the same
        reid = models["reid"]
        self.reid_optimizer = torch.optim.Adam(
            reid.parameters(), lr=config.lr_reid, weight_decay=config.weight_decay
        )
        warmup = max(1, config.reid_iters // 10)
        self.reid_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.reid_optimizer,
            lambda i: (
                min(1.0, (i + 1) / warmup)
                * 0.5
                * (1 + math.cos(math.pi * min(i, config.reid_iters) / max(1, config.reid_iters)))
            ),
        )
        self.steps = regulariser.schedule(config)
        self.runner = StepRunner(
            models, self.steps, default_learning_rates(config), self.amp_dtype, config.grad_clip
        )
        # One ratio per batch, the same on every rank, so all ranks run the same graph.
        self.ratio_generator = torch.Generator().manual_seed(config.seed * 1000 + 5)
        self.ratio_sampler = TrainRatioSampler(config.protocol.ratios, self.ratio_generator)
        # The warm start has its own generators: its result depends on its own recipe only.
        self.warmup_generator = torch.Generator().manual_seed(
            config.seed * 1000 + 6 + 7919 * self.rank
        )
        self.warmup_ratio_generator = torch.Generator().manual_seed(config.seed * 1000 + 7)
        self.warmup_ratio_sampler = TrainRatioSampler(
            config.protocol.ratios, self.warmup_ratio_generator
        )
        # The critic warm-up has its own generators too, and draws from the images not held out.
        self.critic_generator = torch.Generator().manual_seed(
            config.seed * 1000 + 10 + 7919 * self.rank
        )
        self.critic_ratio_generator = torch.Generator().manual_seed(config.seed * 1000 + 11)
        self.critic_ratio_sampler = TrainRatioSampler(
            config.protocol.ratios, self.critic_ratio_generator
        )
        self.critic_iters = int(regulariser.critic_warmup_iters(config))
        self.critic_steps = [s for s in self.steps if s.runs_in("critic")]
        self.stage1_steps = [s for s in self.steps if s.runs_in("sr")]
        self.probe_idx, self.sr_pool = probe_split(len(data.train_pids), config.seed)
        generator_params = list(models["G"].parameters())
        self.warmup_optimizer = (
            torch.optim.Adam(generator_params, lr=config.lr_warmup) if generator_params else None
        )
        self.warmup_scheduler = (
            torch.optim.lr_scheduler.LambdaLR(
                self.warmup_optimizer, warmup_schedule(config.sr_warmup_iters)
            )
            if self.warmup_optimizer is not None
            else None
        )
        self.stage = "reid"
        self.iteration = 0
        self._triplet = None
        self.stage0_cache = stage0_cache
        self.warmup_cache = warmup_cache
        self.critic_cache = critic_cache
        self._finite_keys: tuple[str, ...] = ()
        self._first_bad: tuple[Tensor, Tensor] | None = None

    # -- checkpoints -----------------------------------------------------------
    def _reid_frozen(self) -> bool:
        """After stage 0, unless a step of the schedule trains it, the re-id model cannot change."""
        return self.stage != "reid" and not any("reid" in step.trainable for step in self.steps)

    def state(self) -> dict[str, Any]:
        frozen = self._reid_frozen()
        state: dict[str, Any] = {
            "models": {
                k: m.state_dict() for k, m in self.models.items() if not (frozen and k == "reid")
            },
            "step_optimizers": self.runner.state_dict(),
            "rng": rng_state(self.generator),
            "ratio_rng": self.ratio_generator.get_state(),
            "warmup_rng": self.warmup_generator.get_state(),
            "warmup_ratio_rng": self.warmup_ratio_generator.get_state(),
            "critic_rng": self.critic_generator.get_state(),
            "critic_ratio_rng": self.critic_ratio_generator.get_state(),
            "warmup_optimizer": self.warmup_optimizer.state_dict()
            if self.warmup_optimizer
            else None,
            "warmup_scheduler": self.warmup_scheduler.state_dict()
            if self.warmup_scheduler
            else None,
            "config": self.config.to_dict(),
        }
        if not frozen:  # stage 0's optimiser matters only until stage 0 ends
            state["reid_optimizer"] = self.reid_optimizer.state_dict()
            state["reid_scheduler"] = self.reid_scheduler.state_dict()
        return state

    def load_state(self, ckpt: dict[str, Any]) -> None:
        for name, module in self.models.items():
            module.load_state_dict(ckpt["models"][name])
        if "reid_optimizer" in ckpt:
            self.reid_optimizer.load_state_dict(ckpt["reid_optimizer"])
            self.reid_scheduler.load_state_dict(ckpt["reid_scheduler"])
        self.runner.load_state_dict(ckpt["step_optimizers"])
        restore_rng(ckpt["rng"], self.generator)
        self.ratio_generator.set_state(ckpt["ratio_rng"])
        self.warmup_generator.set_state(ckpt["warmup_rng"])
        self.warmup_ratio_generator.set_state(ckpt["warmup_ratio_rng"])
        if "critic_rng" in ckpt:
            self.critic_generator.set_state(ckpt["critic_rng"])
            self.critic_ratio_generator.set_state(ckpt["critic_ratio_rng"])
        if self.warmup_optimizer is not None and ckpt.get("warmup_optimizer") is not None:
            self.warmup_optimizer.load_state_dict(ckpt["warmup_optimizer"])
            self.warmup_scheduler.load_state_dict(ckpt["warmup_scheduler"])
        self.stage = ckpt["stage"]
        self.iteration = int(ckpt["iteration"])
        if self.rank > 0:  # the checkpoint holds rank 0's sampler; the others re-derive theirs
            self.generator.manual_seed(
                self.config.seed + 7919 * self.rank + 104729 * self.iteration
            )

    def checkpoint(self) -> Path | None:
        if not is_main():  # rank 0 writes; the others hold identical weights
            return None
        self.check_weights_finite()
        directory = self.run_dir / "checkpoints"
        if self._reid_frozen() and not (directory / FROZEN_REID).is_file():
            save_frozen_reid(directory, self.models["reid"].state_dict())
        return save_checkpoint(
            self.run_dir / "checkpoints",
            self.stage,
            self.iteration,
            self.state(),
            self.config.keep_checkpoints,
        )

    # -- batches -----------------------------------------------------------------
    def _to_float(self, images: Tensor) -> Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _sample(self, n: int) -> Tensor:
        return torch.randint(len(self.data.train_pids), (n,), generator=self.generator)

    def reid_batch(self) -> tuple[Tensor, Tensor]:
        cfg = self.config
        if cfg.triplet:
            idx = pk_indices(
                self.data.train_pids, cfg.batch_size, TRIPLET_INSTANCES, self.generator
            )
        else:
            idx = self._sample(cfg.batch_size)
        if self.iteration == 0 and self.stage == "reid":
            # Which data each rank saw first: proof that ranks do not duplicate work.
            fingerprint = int(idx.sum()) * 1_000_003 + int(idx[0])
            seen = all_gather_int(fingerprint)
            if len(seen) > 1:
                self.log({"stage": "reid", "iteration": 0, "rank_first_batch": seen})
        x = self.data.train_images[idx].float().div_(255.0)
        x = augment.random_flip(x, self.generator)
        x = augment.random_crop(x, self.generator, pad=max(1, cfg.height // 16))
        x = augment.color_jitter(x, self.generator, cfg.color_jitter)
        x = augment.resolution_augment(x, self.generator, cfg.res_aug, cfg.protocol.ratios)
        x = augment.random_erasing(x, self.generator, cfg.random_erasing)
        return self._to_float((x * 255).round().to(torch.uint8)), self.data.train_pids[idx].to(
            self.device
        )

    def sr_batch(
        self,
        generator: torch.Generator | None = None,
        ratio_sampler: TrainRatioSampler | None = None,
        pool: Tensor | None = None,
    ) -> TrainBatch:
        """HR training images and their LR versions, made as the protocol makes LR queries.

        ``pool``: the training images to draw from (all of them when ``None``).
        """
        generator = generator or self.generator
        if pool is None:
            idx = torch.randint(
                len(self.data.train_pids), (self.config.batch_size,), generator=generator
            )
        else:
            idx = pool[torch.randint(len(pool), (self.config.batch_size,), generator=generator)]
        ratio = (ratio_sampler or self.ratio_sampler)()
        x_hr = self.data.train_images[idx].float().div_(255.0)
        x_hr = augment.random_flip(x_hr, generator)
        x_hr = self._to_float((x_hr * 255).round().to(torch.uint8))
        x_lr = downsample(x_hr, ratio, self.config.protocol)
        return TrainBatch(
            x_lr=x_lr,
            x_hr=x_hr,
            pids=self.data.train_pids[idx].to(self.device),
            ratio=ratio,
            camids=self._camids(idx),
        )

    def _camids(self, idx: Tensor) -> Tensor | None:
        cams = self.data.train_camids
        return None if cams is None else cams[idx].to(self.device)

    # -- stages ------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def reid_loss(self, x: Tensor, pids: Tensor) -> dict[str, Tensor]:
        logits, feats = self.models["reid"](x)
        terms = {
            "ce": F.cross_entropy(logits.float(), pids, label_smoothing=self.config.label_smooth)
        }
        if self.config.triplet:
            if self._triplet is None:
                with (
                    warnings.catch_warnings()
                ):  # torchreid's Cython-evaluator notice: not ours to use
                    warnings.filterwarnings("ignore", message="Cython evaluation")
                    from torchreid.reid.losses import TripletLoss

                self._triplet = TripletLoss(margin=0.3)
            terms["triplet"] = self._triplet(feats.float(), pids)
        return terms

    def _load_stage0(self) -> bool:
        """Reuse a finished stage 0 of an identical re-id recipe (same result, no work)."""
        path = self.stage0_cache
        if path is None or self.iteration != 0 or not path.is_file():
            return False
        cached = safe_load(path)
        self.models["reid"].load_state_dict(cached["reid"])
        restore_rng(cached["rng"], self.generator)
        self.timing.cached()
        self.log({"stage": "reid", "iteration": self.config.reid_iters, "stage0_cache": str(path)})
        self.stage, self.iteration = "warmup", 0
        self.checkpoint()
        return True

    def _save_stage0(self) -> None:
        if is_main() and self.stage0_cache is not None and not self.stage0_cache.is_file():
            atomic_torch_save(
                {"reid": self.models["reid"].state_dict(), "rng": rng_state(self.generator)},
                self.stage0_cache,
            )

    def train_reid(self) -> None:
        if self._load_stage0():
            return
        cfg = self.config
        reid = self.models["reid"]
        if self.iteration == 0:
            torch.manual_seed(cfg.seed * 1000 + 4)  # stage 0 depends on its own recipe only
        reid.train()
        for p in reid.parameters():
            p.requires_grad_(True)
        bar = self._progress(cfg.reid_iters, "stage 0: re-id on HR", "reid")
        while self.iteration < cfg.reid_iters:
            x, pids = self.timing.wait(self.reid_batch)
            with self._autocast():
                terms = self.reid_loss(x, pids)
            loss = sum(terms.values())
            self.reid_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(reid.parameters())
            self.reid_optimizer.step()
            self.reid_scheduler.step()
            self.iteration += 1
            bar.update(1)
            self._after_iteration({f"reid/{k}": v.detach() for k, v in terms.items()}, bar)
        bar.close()
        self.check_weights_finite()  # before the stage-0 cache, which other runs would reuse
        self._save_stage0()
        self.stage, self.iteration = "warmup", 0
        self.checkpoint()

    def _load_warmup(self) -> bool:
        """Reuse a finished warm start of an identical G recipe (same result, no work)."""
        path = self.warmup_cache
        if path is None or self.iteration != 0 or not path.is_file():
            return False
        self.models["G"].load_state_dict(safe_load(path)["G"])
        self.timing.cached()
        self.log(
            {"stage": "warmup", "iteration": self.config.sr_warmup_iters, "warmup_cache": str(path)}
        )
        self.stage, self.iteration = "critic", 0
        self.checkpoint()
        return True

    def train_warmup(self) -> None:
        """G alone on the pixel loss; every other module is untouched (not even run)."""
        cfg = self.config
        generator = self.models["G"]
        if self.warmup_optimizer is None or cfg.sr_warmup_iters == 0 or self._load_warmup():
            if self.stage == "warmup":
                self.stage, self.iteration = "critic", 0
            return
        generator.train()
        for p in generator.parameters():
            p.requires_grad_(True)
        bar = self._progress(cfg.sr_warmup_iters, "warm start: G on pixel loss", "warmup")
        while self.iteration < cfg.sr_warmup_iters:
            batch = self.timing.wait(
                functools.partial(self.sr_batch, self.warmup_generator, self.warmup_ratio_sampler)
            )
            with self._autocast():
                x_sr = generator(batch.x_lr, batch.out_size)
            loss = pixel_mse(x_sr, batch.x_hr)
            self.warmup_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(generator.parameters())
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(generator.parameters(), cfg.grad_clip)
            self.warmup_optimizer.step()
            self.warmup_scheduler.step()
            self.iteration += 1
            bar.update(1)
            self._after_iteration({"warmup/mse": loss.detach()}, bar)
        bar.close()
        self.check_weights_finite()
        if is_main() and self.warmup_cache is not None and not self.warmup_cache.is_file():
            atomic_torch_save({"G": generator.state_dict()}, self.warmup_cache)
        self.stage, self.iteration = "critic", 0
        self.checkpoint()

    # -- the critic warm-up ------------------------------------------------------------
    def _critic_names(self) -> list[str]:
        return [name for step in self.critic_steps for name in step.trainable]

    def _load_critic(self) -> bool:
        """Reuse a finished critic warm-up of an identical recipe (same result, no work)."""
        path = self.critic_cache
        if path is None or self.iteration != 0 or not path.is_file():
            return False
        cached = safe_load(path)
        for name in self._critic_names():
            self.models[name].load_state_dict(cached["models"][name])
        self.runner.load_state_dict(cached["optimizers"])
        self.timing.cached()
        self.log({"stage": "critic", "iteration": self.critic_iters, "critic_cache": str(path)})
        self.stage, self.iteration = "sr", 0
        self.checkpoint()
        return True

    def _save_critic(self) -> None:
        if is_main() and self.critic_cache is not None and not self.critic_cache.is_file():
            optimizers = self.runner.state_dict()
            atomic_torch_save(
                {
                    "models": {
                        name: self.models[name].state_dict() for name in self._critic_names()
                    },
                    "optimizers": {step.name: optimizers[step.name] for step in self.critic_steps},
                },
                self.critic_cache,
            )

    def train_critic(self) -> None:
        """The schedule's steps that do not train G, with G frozen, before G sees their terms."""
        cfg = self.config
        if (
            self.critic_iters == 0
            or not self.critic_steps
            or cfg.sr_iters == 0
            or self._load_critic()
        ):
            self.stage, self.iteration = "sr", 0
            return
        for module in self.models.values():
            module.train()
        bar = self._progress(self.critic_iters, "critic warm-up: G frozen", "critic")
        while self.iteration < self.critic_iters:
            batch = self.timing.wait(
                functools.partial(
                    self.sr_batch, self.critic_generator, self.critic_ratio_sampler, self.sr_pool
                )
            )
            ctx = StepContext(batch, self.models, cfg)
            with torch.no_grad():  # G is frozen: its output is an input here, no graph needed
                ctx.sr()
            terms: dict[str, Tensor] = {}
            for step in self.critic_steps:
                terms.update(self.runner.run(step, ctx, self.iteration))
            self.iteration += 1
            bar.update(1)
            self._after_iteration(terms, bar, self._probe_now())
        bar.close()
        self.check_weights_finite()
        self._save_critic()
        self.stage, self.iteration = "sr", 0
        self.checkpoint()

    # -- diagnostics -------------------------------------------------------------------
    def _probe_now(self) -> dict[str, float] | None:
        """The regulariser's probes when this iteration is logged, else ``None``."""
        cfg = self.config
        if self.iteration % cfg.log_every == 0 or self.iteration == 1:
            return self.probe()
        return None

    def probe(self) -> dict[str, float]:
        """The regulariser's held-out diagnostics, averaged over the protocol's ratios.

        Every module frozen and read in inference mode, under ``no_grad``, buffers
        restored: a probe changes nothing, so a run's numbers do not depend on it.
        """
        if len(self.probe_idx) == 0:
            return {}
        x_hr = self._to_float(self.data.train_images[self.probe_idx])
        pids = self.data.train_pids[self.probe_idx].to(self.device)
        totals: dict[str, float] = {}
        ratios = sorted(set(self.config.protocol.ratios))
        models = self.models.values()
        # set_trainable changes every module's mode and flags: the probe leaves them as found
        with training_modes_restored(models), requires_grad_restored(models):
            set_trainable(self.models, ())
            with torch.no_grad(), buffers_restored(models), self._autocast():
                for ratio in ratios:
                    batch = TrainBatch(
                        x_lr=downsample(x_hr, ratio, self.config.protocol),
                        x_hr=x_hr,
                        pids=pids,
                        ratio=ratio,
                        camids=self._camids(self.probe_idx),
                    )
                    ctx = StepContext(batch, self.models, self.config)
                    generator = self.models[GENERATOR]
                    with inference_mode_layers(generator):
                        ctx.set_sr(generator(batch.x_lr, batch.out_size))
                    for key, value in self.regulariser.probe(ctx).items():
                        totals[key] = totals.get(key, 0.0) + float(value) / len(ratios)
        return {f"probe/{k}": round(v, 5) for k, v in totals.items()}

    def train_sr(self) -> None:
        cfg = self.config
        for module in self.models.values():
            module.train()
        if self.iteration == 0 and is_main():
            start = self.probe()  # the critic as it is when its terms first act on G
            if start:
                self.log({"stage": "sr", "iteration": 0, **start})
        bar = self._progress(cfg.sr_iters, f"stage 1: SR with {cfg.reg}", "sr")
        while self.iteration < cfg.sr_iters:
            batch = self.timing.wait(functools.partial(self.sr_batch, pool=self.sr_pool))
            ctx = StepContext(batch, self.models, cfg)
            logged = (self.iteration + 1) % cfg.log_every == 0 or self.iteration == 0
            terms = self.runner.run_iteration(
                ctx, self.iteration, diagnose=logged and is_main(), steps=self.stage1_steps
            )
            self.iteration += 1
            bar.update(1)
            diagnostics = None
            if logged and is_main():
                diagnostics = {
                    f"diag/{k}": round(float(v), 5) for k, v in self.runner.diagnostics.items()
                }
                diagnostics.update(self.probe())
            self._after_iteration(terms, bar, diagnostics)
            self._validation_point()
        bar.close()
        self.check_weights_finite()
        self.stage, self.iteration = "done", 0
        self.checkpoint()

    def _validation_point(self) -> None:
        every = self.config.val_every
        if self.validate is None or not every or self.iteration % every or not is_main():
            return
        with self.timing.aside("validation"):
            point = self.validate()
        self.log({"stage": "sr", "iteration": self.iteration, "time": time.time(), **point})

    # -- finiteness: tracked on the device every iteration, read at log and checkpoint time
    def _track_finite(self, terms: dict[str, Tensor]) -> None:
        """Remember, without a host sync, the first iteration whose loss terms were not finite."""
        keys = tuple(terms)
        if keys != self._finite_keys:
            self.flush_finite()
            self._finite_keys = keys
            self._first_bad = None
        bad = ~torch.isfinite(torch.stack([v.detach().float().reshape(()) for v in terms.values()]))
        here = torch.full((), self.iteration, dtype=torch.int64, device=bad.device)
        if self._first_bad is None:
            self._first_bad = (torch.where(bad.any(), here, -1), bad)
            return
        first_iter, first_terms = self._first_bad
        new = bad.any() & (first_iter < 0)
        self._first_bad = (torch.where(new, here, first_iter), torch.where(new, bad, first_terms))

    def flush_finite(self) -> None:
        """One host sync: raise naming the first non-finite iteration and term since the last
        check."""
        if self._first_bad is None:
            return
        first_iter, first_terms = self._first_bad
        iteration = int(first_iter)
        if iteration < 0:
            return
        names = [k for k, flag in zip(self._finite_keys, first_terms.tolist(), strict=True) if flag]
        self.log(
            {
                "stage": self.stage,
                "iteration": iteration,
                "error": "non-finite loss",
                "terms": names,
            }
        )
        step, _, term = names[0].partition("/")
        raise NumericalError(
            f"loss term {term!r} of step {step!r} first became non-finite at iteration {iteration} "
            f"of stage {self.stage!r} ({', '.join(names)}); no checkpoint after it was written, "
            "the last good one is kept in the run folder "
            "(lower the learning rate or set --grad-clip)"
        )

    def check_weights_finite(self) -> None:
        """One host sync per checkpoint: a non-finite weight is never written."""
        self.flush_finite()
        for name, module in self.models.items():
            tensors = [t for t in module.state_dict().values() if t.is_floating_point()]
            if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
                self.log(
                    {
                        "stage": self.stage,
                        "iteration": self.iteration,
                        "error": f"non-finite weights in {name}",
                    }
                )
                raise NumericalError(
                    f"the weights of {name!r} are not finite at iteration {self.iteration} "
                    f"of stage {self.stage!r}; no checkpoint was written, "
                    f"the last good one is kept in the run folder"
                )

    def _after_iteration(
        self, terms: dict[str, Tensor], bar: Any, diagnostics: dict[str, float] | None = None
    ) -> None:
        cfg = self.config
        ckpt_now = bool(cfg.ckpt_every) and self.iteration % cfg.ckpt_every == 0
        log_now = self.iteration % cfg.log_every == 0 or self.iteration == 1
        self._track_finite(terms)
        if log_now or ckpt_now:  # the only host syncs in the loop; never checkpoint a NaN
            self.flush_finite()
            values = {k: round(float(v), 5) for k, v in terms.items()}
            bar.set_postfix(
                {k.split("/")[-1]: f"{v:.3f}" for k, v in values.items()}, refresh=False
            )
            self.log(
                {
                    "stage": self.stage,
                    "iteration": self.iteration,
                    "time": time.time(),
                    **values,
                    **(diagnostics or {}),
                }
            )
        if ckpt_now:
            self.checkpoint()

    def _progress(self, total: int, desc: str, stage: str) -> Progress:
        """A stage's progress (harness.progress), knowing how many iterations the run has left
        after it (for the run's ETA)."""
        later = {
            "reid": self.config.sr_warmup_iters if self.warmup_optimizer is not None else 0,
            "warmup": self.critic_iters if self.config.sr_iters else 0,
            "critic": self.config.sr_iters,
            "sr": 0,
        }
        order = ["reid", "warmup", "critic", "sr"]
        remaining = sum(later[s] for s in order[order.index(stage) :])
        return Progress(
            total,
            desc,
            self.iteration,
            later=remaining,
            batch=self.config.batch_size,
            enabled=is_main(),
        )

    def fit(self) -> None:
        """Each stage still to run, in order, each timed (``self.timing``)."""
        for stage, train in (
            ("reid", self.train_reid),
            ("warmup", self.train_warmup),
            ("critic", self.train_critic),
            ("sr", self.train_sr),
        ):
            if self.stage == stage:
                with self.timing.stage(stage):
                    train()
        barrier()
