"""harness.train: the stages of a run and what each must deliver.

Stage 0 learns on a tiny problem and its cache gives identical results; the pixel
warm start beats bicubic, ramps up then decays, and is cached and reused bit-identically;
a loss that turns NaN stops the run naming its step, term and iteration, with the last
checkpoint from before it.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from harness.cache import warmup_key
from harness.data.mlr import upsample_bicubic
from harness.errors import NumericalError
from harness.run import resolve_config, run_experiment
from tests.helpers import Faulty, make_trainer, registry_with, smoke_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def faulty():
    return registry_with(Faulty())


def _run_short(registry, tmp_path, **values):
    config = resolve_config({"preset": "smoke", "reid_iters": 1, "sr_iters": 4, **values}, registry)
    return run_experiment(config, tmp_path / "run", registry, echo=lambda s: None)


def _run(registry, tmp_path, name, cache=None, **values):
    config = resolve_config({"preset": "smoke", "sr_iters": 2, **values}, registry)
    return run_experiment(
        config, tmp_path / name, registry, echo=lambda s: None, stage0_cache_dir=cache
    )


@pytest.mark.slow
def test_stage0_cache_gives_identical_results(registry, tmp_path):
    cache = tmp_path / "cache"
    _run(registry, tmp_path, "none", cache, reg="none")
    assert len(list(cache.glob("stage0-*.pt"))) == 1
    cached = _run(registry, tmp_path, "gan-cached", cache, reg="gan")
    log = (tmp_path / "gan-cached" / "log.jsonl").read_text()
    assert "stage0_cache" in log  # stage 0 was reused, not retrained
    fresh = _run(registry, tmp_path, "gan-fresh", None, reg="gan")
    for kind in ("sr", "hr"):
        assert cached["queries"][kind]["cmc"] == fresh["queries"][kind]["cmc"]
    # a different re-id recipe does not hit the cache
    _run(registry, tmp_path, "other", cache, reg="none", lr_reid=0.01)
    assert len(list(cache.glob("stage0-*.pt"))) == 2


@pytest.mark.slow
def test_stage0_learns_on_a_tiny_problem(registry, tmp_path):
    config = resolve_config(
        {
            "preset": "smoke",
            "sr": "bicubic",
            "reid_iters": 40,
            "sr_iters": 0,
            "random_erasing": 0.0,
            "log_every": 1,
            "lr_reid": 3e-3,
            "batch_size": 16,
            "protocol": {"val_ids": 0.0},  # all 8 smoke identities: the problem as calibrated
        },
        registry,
    )
    run_experiment(config, tmp_path / "r", registry, echo=lambda s: None)
    lines = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    ce = [x["reid/ce"] for x in lines if "reid/ce" in x]
    assert sum(ce[-5:]) / 5 < sum(ce[:5]) / 5 * 0.8, ce


def test_pixel_warm_start_beats_bicubic_on_training_pairs(registry, tmp_path):
    trainer = make_trainer(
        registry, tmp_path, sr_warmup_iters=60, lr=1e-3, options={"sr_blocks": 1, "sr_channels": 8}
    )
    generator = trainer.models["G"]
    torch.manual_seed(0)
    from harness.data.mlr import TrainRatioSampler

    sampler = TrainRatioSampler(trainer.config.protocol.ratios, torch.Generator().manual_seed(5))
    batch = trainer.sr_batch(torch.Generator().manual_seed(5), sampler)
    bicubic = F.mse_loss(upsample_bicubic(batch.x_lr, batch.out_size), batch.x_hr)
    generator.eval()
    with torch.no_grad():
        untrained = F.mse_loss(generator(batch.x_lr, batch.out_size), batch.x_hr)
    torch.testing.assert_close(untrained, bicubic, rtol=1e-4, atol=1e-6)  # starts at bicubic
    trainer.stage = "warmup"
    trainer.train_warmup()
    with torch.no_grad():
        trained = F.mse_loss(generator(batch.x_lr, batch.out_size), batch.x_hr)
    assert trained < bicubic
    assert trainer.stage == "critic"  # next: the critic warm-up, then stage 1


@pytest.mark.slow
def test_warm_start_is_cached_and_reused_bit_identically(registry, tmp_path):
    cache = tmp_path / "cache"
    config = smoke_config(registry, reg="gan", sr_iters=1, sr_warmup_iters=3)
    first = run_experiment(
        config, tmp_path / "a", registry, echo=lambda m: None, stage0_cache_dir=cache
    )

    def shared() -> list[
        str
    ]:  # each regulariser adds its own critic warm-up, never a G or re-id model
        return sorted(p.name for p in cache.iterdir() if not p.name.startswith("critic-"))

    files = shared()
    assert any(n.startswith("warmup-srgan-") for n in files)
    other = config.replace(reg="intact")  # another regulariser, same G recipe: same warm start
    run_experiment(other, tmp_path / "b", registry, echo=lambda m: None, stage0_cache_dir=cache)
    log = (tmp_path / "b" / "log.jsonl").read_text()
    assert "warmup_cache" in log
    assert shared() == files
    assert first["status"] == "complete"
    device = torch.device("cpu")
    changed = config.replace(options={**config.options, "sr_blocks": 3})
    assert warmup_key(config, registry, device) == warmup_key(other, registry, device)
    assert warmup_key(config, registry, device) != warmup_key(changed, registry, device)


def test_warm_start_ramps_up_then_decays_to_zero():
    from harness.train import warmup_schedule

    factor = warmup_schedule(100)
    values = [factor(i) for i in range(100)]
    assert values[0] == pytest.approx(0.2) and values[4] == pytest.approx(1.0)  # 5-step ramp
    assert all(b <= a for a, b in zip(values[4:], values[5:], strict=False))  # then only down
    assert values[-1] < 0.01


@pytest.mark.slow
def test_nan_loss_stops_with_step_term_and_iteration(faulty, tmp_path):
    with pytest.raises(
        NumericalError, match=r"loss term 'mse' of step 'G' first became non-finite at iteration 3"
    ):
        _run_short(faulty, tmp_path, reg="nan-after", sr="srgan", log_every=1, ckpt_every=1)
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-sr-*.pt"))
    assert ckpts and ckpts[-1] == "ckpt-sr-0000002.pt"  # the last one is from before the NaN
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["reason"].startswith("NumericalError: ")
