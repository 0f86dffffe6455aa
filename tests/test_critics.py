"""harness.critics and harness.diagnostics: a critic that criticises, and what a run reports of it.

Unit tests on the tiny modules of test_regularisers (the path split of L_dis between
f_c and f_d, the probes on held-out images, a frozen spectral-normalised D whose
features carry the image), smoke runs through the trainer (the critic warm-up trains
the critics and leaves G alone, its cache, metrics.json's diagnostics, lambda_a = 0
giving the gan row bit for bit) and the summary of a log. Gradient shares and a
diagnosed update: test_schedule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from crossres_plugins.sr.discriminator import SRGANDiscriminator
from torch import nn

from harness import StepContext
from harness.cache import cache_files
from harness.checkpoint import latest_checkpoint
from harness.diagnostics import summarise
from harness.freezing import set_trainable
from harness.resolve import resolve_config
from harness.run import run_experiment
from harness.schedule import StepRunner
from tests.test_regularisers import batch, make, snapshot, step_named

pytestmark = pytest.mark.usefixtures("one_thread")

ASSOCIATIONS = ["intact", "intact-nobridge", "common-space", "d-to-r"]


# --------------------------------------------------------------------------
# The path split of L_dis
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ASSOCIATIONS)
def test_dis_paths_split_its_gradient_between_fc_and_fd(name):
    reg, models, config = make(name, finetune_reid=False, lambda_a=1.0)
    step = step_named(reg, config, "G")
    run = StepRunner(models, [step], {"default": 1e-3})
    run.run_iteration(StepContext(batch(), models, config), 0, diagnose=True)
    fc, fd = (
        float(run.diagnostics["dis_path_share/fc"]),
        float(run.diagnostics["dis_path_share/fd"]),
    )
    assert 0.0 < fc < 1.0 and fc + fd == pytest.approx(1.0)
    assert float(run.diagnostics["grad_share/dis"]) > 0


def test_dis_path_share_is_all_fd_when_the_critic_ignores_fc():
    reg, models, config = make("intact", finetune_reid=False, lambda_a=1.0)
    for p in models["phi"].encoder.parameters():  # phi(f_c) no longer depends on f_c
        nn.init.zeros_(p)
    run = StepRunner(models, [step_named(reg, config, "G")], {"default": 1e-3})
    run.run_iteration(StepContext(batch(), models, config), 0, diagnose=True)
    assert float(run.diagnostics["dis_path_share/fc"]) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------
# Probes on held-out images
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ASSOCIATIONS)
def test_probe_reports_r2_gap_and_d_accuracy_and_changes_nothing(name):
    reg, models, config = make(name)
    set_trainable(models, ())
    before = snapshot(models)
    ctx = StepContext(batch(7), models, config)
    with torch.no_grad():
        ctx.sr()
        out = reg.probe(ctx)
    assert {"critic_r2", "critic_gap", "d_accuracy"} <= set(out)
    assert 0.0 <= out["d_accuracy"] <= 1.0
    after = snapshot(models)
    for module in before:
        for key in before[module]:
            assert torch.equal(before[module][key], after[module][key]), (module, key)


def test_critic_r2_rises_as_the_association_step_trains():
    reg, models, config = make("intact", lr_phi=1e-2)
    step = step_named(reg, config, "assoc")
    run = StepRunner(models, [step], {"default": 1e-2})

    def r2() -> float:
        set_trainable(models, ())
        ctx = StepContext(batch(1), models, config)
        with torch.no_grad():
            ctx.sr()
            return reg.probe(ctx)["critic_r2"]

    start = r2()
    for _ in range(200):
        run.run(step, StepContext(batch(1), models, config))
    assert r2() > max(0.5, start + 0.3)


# --------------------------------------------------------------------------
# D's features carry the image; a frozen spectral-normalised D stays frozen
# --------------------------------------------------------------------------


def test_spectral_d_features_vary_with_the_image_where_batchnorm_reads_were_flat():
    """A frozen read of a fresh D: spectral normalisation keeps an order of magnitude more
    of the image in f_d than BatchNorm in inference mode (which the critics saw before)."""
    torch.manual_seed(0)
    colours = torch.rand(16, 3, 1, 1).expand(16, 3, 32, 16)
    x = 0.8 * colours + 0.2 * torch.rand(16, 3, 32, 16)

    def relative_spread(norm: str, seed: int) -> float:
        torch.manual_seed(seed)
        disc = SRGANDiscriminator(8, 32, norm)
        set_trainable({"D": disc}, ())  # a frozen read, as the critics read f_d
        with torch.no_grad():
            _, f_d = disc(x)
        return float(f_d.std(0).mean() / f_d.abs().mean().clamp_min(1e-12))

    for seed in range(3):
        assert relative_spread("spectral", seed) > 5 * relative_spread("batch", seed)


def test_frozen_spectral_d_changes_nothing_and_its_own_step_updates_its_vectors():
    reg, models, config = make("gan")
    models["D"] = SRGANDiscriminator(4, 8, "spectral")
    steps = reg.schedule(config)
    run = StepRunner(models, steps, {"default": 1e-3})

    def vectors():
        return {k: v.clone() for k, v in models["D"].state_dict().items() if k.endswith("_u")}

    start = vectors()
    run.run(step_named(reg, config, "G"), StepContext(batch(), models, config))
    assert all(torch.equal(start[k], v) for k, v in vectors().items())  # G step: D frozen
    run.run(step_named(reg, config, "D"), StepContext(batch(), models, config))
    assert any(not torch.equal(start[k], v) for k, v in vectors().items())


# --------------------------------------------------------------------------
# Through the trainer: the critic warm-up, its cache, metrics.json
# --------------------------------------------------------------------------


def _run(registry, tmp_path, name, cache=None, **values):
    config = resolve_config({"preset": "smoke", "sr_iters": 2, "log_every": 1, **values}, registry)
    metrics = run_experiment(
        config, tmp_path / name, registry, echo=lambda s: None, stage0_cache_dir=cache
    )
    log = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    return config, metrics, log


@pytest.mark.slow
def test_critic_warmup_trains_critics_only_then_diagnostics_reach_metrics(registry, tmp_path):
    cache = tmp_path / "cache"
    config, metrics, log = _run(
        registry, tmp_path, "intact", cache, reg="intact", options={"critic_iters": 3}
    )
    critic = [r for r in log if r.get("stage") == "critic" and "D/gan" in r]
    assert [r["iteration"] for r in critic] == [1, 2, 3]
    assert all("G/mse" not in r and "assoc/intact" in r and "probe/critic_r2" in r for r in critic)
    start = [r for r in log if r.get("stage") == "sr" and r["iteration"] == 0]
    assert start and "probe/critic_r2" in start[0]
    diag = metrics["diagnostics"]
    assert set(diag["grad_share"]) == {"mse", "id", "gan", "dis"}
    assert {"critic_r2", "critic_r2_at_start", "critic_gap", "d_accuracy"} <= set(diag)
    assert 0 <= diag["dis_path_share"]["fc"] <= 1 and diag["critic_warmup_iters"] == 3
    assert json.loads((tmp_path / "intact" / "metrics.json").read_text())["diagnostics"] == diag
    recorded = json.loads((tmp_path / "intact" / "config.json").read_text())["critic_warmup"]
    assert recorded == {"iters": 3, "generator_terms_from": {"stage": "sr", "iteration": 0}}

    # the warm-up trains the critics only: its cache holds them, not G
    files = cache_files(config, registry, torch.device("cpu"), cache)
    critic_cache = torch.load(files[2], weights_only=True)
    assert set(critic_cache["models"]) == {"D", "phi", "sigma"}
    assert set(critic_cache["optimizers"]) == {"D", "assoc"}

    # a row with another lambda_a shares the warm-up, and gives a fresh warm-up's numbers
    _, cached, log2 = _run(
        registry,
        tmp_path,
        "cached",
        cache,
        reg="intact",
        options={"critic_iters": 3, "lambda_a": 0.5},
    )
    assert any("critic_cache" in r for r in log2)
    assert len(list(cache.glob("critic-*.pt"))) == 1
    _, fresh, _ = _run(
        registry,
        tmp_path,
        "fresh",
        None,
        reg="intact",
        options={"critic_iters": 3, "lambda_a": 0.5},
    )
    for kind in ("sr", "hr"):
        assert cached["queries"][kind]["cmc"] == fresh["queries"][kind]["cmc"]
    assert cached["queries"]["sr"]["psnr"] == fresh["queries"]["sr"]["psnr"]


def test_critic_cache_key_ignores_g_weights_only(registry):
    def key(**options):
        config = resolve_config({"preset": "smoke", "reg": "intact", "options": options}, registry)
        return cache_files(config, registry, torch.device("cpu"), Path("c"))

    base = key()
    assert key(lambda_a=0.5)[2] == base[2] and key(lambda_g=0.1, lambda_c=0.0)[2] == base[2]
    for other in (
        key(lr_phi=1e-2),
        key(critic_iters=7),
        key(lr_D=1e-3),
        key(disc_norm="batch"),
        key(critic_standardise=False),
    ):
        assert other[2] != base[2]
    assert (
        key(lambda_a=0.5)[:2] == base[:2]
    )  # stage 0 and the warm start never depend on the critic


@pytest.mark.slow
def test_intact_without_its_critic_term_is_the_gan_row_bit_for_bit(registry, tmp_path):
    """L_dis is the critic's only path into G: with lambda_a = 0 nothing else differs."""
    cache = tmp_path / "cache"
    _, gan, _ = _run(registry, tmp_path, "gan", cache, reg="gan", options={"critic_iters": 3})
    _, intact, _ = _run(
        registry,
        tmp_path,
        "intact0",
        cache,
        reg="intact",
        options={"critic_iters": 3, "lambda_a": 0.0},
    )
    for kind in ("sr", "bicubic", "hr"):
        assert gan["queries"][kind]["cmc"] == intact["queries"][kind]["cmc"]
    assert gan["queries"]["sr"]["psnr"] == intact["queries"]["sr"]["psnr"]
    final = {
        name: latest_checkpoint(tmp_path / name / "checkpoints")["models"]["G"]
        for name in ("gan", "intact0")
    }
    for key, value in final["gan"].items():
        assert torch.equal(value, final["intact0"][key]), key


def test_summary_of_a_log_on_a_hand_case():
    records = [
        {"stage": "critic", "iteration": 1, "probe/critic_r2": -1.0},
        {"stage": "sr", "iteration": 0, "probe/critic_r2": 0.4},
        {
            "stage": "sr",
            "iteration": 1,
            "diag/grad_share/mse": 0.9,
            "diag/grad_share/dis": 0.2,
            "diag/dis_path_share/fc": 0.3,
            "probe/critic_r2": 0.5,
            "probe/d_accuracy": 0.6,
        },
        {
            "stage": "sr",
            "iteration": 2,
            "diag/grad_share/mse": 0.7,
            "diag/grad_share/dis": 0.4,
            "diag/dis_path_share/fc": 0.5,
            "probe/critic_r2": 0.7,
            "probe/d_accuracy": 0.8,
        },
    ]
    out = summarise(records, critic_warmup_iters=5)
    assert out["grad_share"] == {"dis": 0.3, "mse": 0.8}
    assert out["dis_path_share"] == {"fc": 0.4}
    assert (
        out["critic_r2"] == 0.6 and out["critic_r2_at_start"] == 0.4 and out["critic_r2_end"] == 0.7
    )
    assert out["d_accuracy"] == 0.7 and out["critic_warmup_iters"] == 5
    assert summarise([{"stage": "reid", "iteration": 1, "reid/ce": 4.0}]) == {}


def test_every_probe_a_regulariser_reports_is_summarised_and_printed():
    from harness.diagnostics import summarise, summary_lines

    records = [
        {"stage": "sr", "iteration": 0, "probe/f_disc_accuracy": 0.9},
        {"stage": "sr", "iteration": 25, "probe/f_disc_accuracy": 0.6, "probe/feature_gap": 0.2},
        {"stage": "sr", "iteration": 50, "probe/f_disc_accuracy": 0.5, "probe/feature_gap": 0.1},
    ]
    out = summarise(records)
    assert out["f_disc_accuracy"] == 0.55 and out["feature_gap"] == 0.15  # after the first update
    assert (
        summary_lines(out)[-1]
        == "held-out probes over stage 1: f_disc_accuracy 0.55, feature_gap 0.15"
    )
