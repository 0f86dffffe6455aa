"""What makes the numbers mean something (issue "Trustworthy numbers").

* frozen means frozen: a module a step does not train changes no state, BatchNorm
  statistics included; with ``--no-finetune-reid`` the re-id model leaves stage 1
  bit-identical to stage 0;
* MLR from native resolution: LR queries are made from the HR size, the re-id model
  resizes to its own input size, and ``split.json`` says which LR size each query had;
* an SR stage that super-resolves: the pixel warm start beats bicubic and is cached;
* one meaning of ``f_c`` for timm and torchreid backbones.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import RunConfig
from harness.cache import warmup_key
from harness.data.mlr import downsample, lr_size, upsample_bicubic
from harness.data.prepare import prepare_data
from harness.freezing import buffers_restored, set_trainable
from harness.models import build_models
from harness.run import resolve_config, run_experiment
from harness.schedule import StepRunner
from harness.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def smoke_config(registry, **values) -> RunConfig:
    return resolve_config({"preset": "smoke", **values}, registry)


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def make_trainer(registry, tmp_path, **values) -> Trainer:
    config = smoke_config(registry, **values)
    data = prepare_data(config, registry)
    config = config.replace(hr_height=data.hr_size[0], hr_width=data.hr_size[1])
    models, reg = build_models(config, registry, data.num_classes)
    return Trainer(config, data, models, reg, tmp_path, torch.device("cpu"), lambda rec: None)


# --------------------------------------------------------------------------
# Frozen means frozen
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reg", ["none", "gan", "intact"])
def test_no_finetune_reid_leaves_stage0_model_bit_identical(registry, tmp_path, reg):
    trainer = make_trainer(registry, tmp_path, reg=reg, sr_iters=4, sr_warmup_iters=2)
    assert trainer.config.finetune_reid is False  # Algorithm 1's default: G is what stage 1 trains
    trainer.train_reid()
    after_stage0 = state(trainer.models["reid"])
    generator_before = state(trainer.models["G"])
    trainer.train_warmup()
    trainer.train_sr()
    assert same_state(after_stage0, state(trainer.models["reid"]))  # buffers included
    assert not same_state(generator_before, state(trainer.models["G"]))


def test_discriminator_statistics_move_only_in_the_d_step(registry, tmp_path):
    trainer = make_trainer(registry, tmp_path, reg="intact")
    models = trainer.models
    ctx_batch = trainer.sr_batch()
    from harness.context import StepContext

    ctx = StepContext(ctx_batch, models, trainer.config)
    ctx.sr()
    buffers = lambda: {k: v.clone() for k, v in models["D"].named_buffers()}  # noqa: E731
    for step in trainer.steps:
        before = buffers()
        trainer.runner.run(step, ctx)
        moved = not all(torch.equal(before[k], v) for k, v in models["D"].named_buffers())
        assert moved == (step.name == "D"), step.name


def test_frozen_modules_read_with_running_statistics_and_their_training_outputs(registry, tmp_path):
    trainer = make_trainer(registry, tmp_path, reg="intact")
    set_trainable(trainer.models, ("phi", "sigma"))
    reid, disc = trainer.models["reid"], trainer.models["D"]
    norms = [m for m in reid.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert reid.training  # still returns (logits, f_c)
    out = reid(torch.rand(2, 3, *trainer.config.hr_size))
    assert isinstance(out, tuple) and len(out) == 2
    assert not any(m.training for m in disc.modules() if isinstance(m, nn.BatchNorm2d))
    set_trainable(trainer.models, ("D",))
    assert all(m.training for m in disc.modules())


def test_state_no_flag_guards_is_restored_after_a_step_that_does_not_train_it():
    class Counter(nn.Module):
        """Keeps a feature queue in a buffer, whatever its mode: a step must not keep it."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1))
            self.register_buffer("seen", torch.zeros(1))

        def forward(self, x):
            self.seen += 1
            return x * self.weight

    counter = Counter()
    with buffers_restored([counter]):
        counter(torch.ones(1))
        assert counter.seen.item() == 1
    assert counter.seen.item() == 0


def test_contract_checks_leave_loaded_statistics_alone(registry):
    config = smoke_config(registry)
    torch.manual_seed(0)
    reid = registry.lookup("reid", "resnet18").factory(config, 5)
    before = state(reid)
    from harness.contracts import dry_run_reid as check_reid

    check_reid(registry.lookup("reid", "resnet18"), reid, 5, config.reid_size)
    assert same_state(before, state(reid))


def test_finetune_reid_trains_on_hr_and_sr_together(registry, tmp_path):
    trainer = make_trainer(registry, tmp_path, reg="none", finetune_reid=True)
    from harness.context import StepContext

    step = trainer.steps[-1]
    assert step.trainable == ("G", "reid")
    ctx = StepContext(trainer.sr_batch(), trainer.models, trainer.config)
    before = state(trainer.models["reid"])
    terms = trainer.runner.run(step, ctx)
    assert {"G/mse", "G/id", "G/reid_sr", "G/reid_hr"} <= set(terms)
    assert not same_state(before, state(trainer.models["reid"]))


# --------------------------------------------------------------------------
# MLR from native resolution
# --------------------------------------------------------------------------


def test_lr_queries_come_from_the_hr_size_not_the_reid_size(registry):
    config = smoke_config(registry, hr_size="native", height=32, width=16,
                          options={"synth_train_ids": 4, "synth_test_ids": 4})
    data = prepare_data(config, registry)
    assert data.hr_size == (128, 64)  # the synthetic data's native size
    assert tuple(data.query_images.shape[-2:]) == (128, 64)
    assert [lr_size(data.hr_size, r) for r in (2, 3, 4)] == [(64, 32), (43, 21), (32, 16)]
    lr = downsample(data.query_images[:2].float() / 255, 4.0, config.protocol)
    assert tuple(lr.shape[-2:]) == (32, 16)


def test_reid_model_resizes_to_its_input_size(registry):
    config = smoke_config(registry, hr_size="64x32", height=32, width=16)
    models, _ = build_models(config, registry, num_classes=3)
    reid = models["reid"].eval()
    x = torch.rand(2, 3, 64, 32)
    small = F.interpolate(x, size=(32, 16), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(reid(x), reid(small))
    assert models["G"](downsample(x, 2.0, config.protocol), (64, 32)).shape[-2:] == (64, 32)


def test_hr_size_is_recorded_and_split_names_each_query_lr_size(registry, tmp_path):
    config = smoke_config(registry, hr_size="native", sr="bicubic", sr_iters=0,
                          options={"synth_train_ids": 4, "synth_test_ids": 4})
    run_experiment(config, tmp_path / "run", registry, echo=lambda m: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["config"]["hr_height"], saved["config"]["hr_width"]) == (128, 64)
    assert saved["protocol_version"] == "mlr-2.0"
    # what decides speed and the last bits on a CPU: the thread counts, the CPU, the precision
    compute = saved["compute"]
    assert compute["torch_threads"] == torch.get_num_threads() and compute["torch_interop_threads"] >= 1
    assert compute["device"] == "cpu" and compute["precision"] == "float32" and compute["cpu"]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["hr_size"] == [128, 64]
    sizes = {tuple(q[4]) for q in split["query"]}
    assert sizes <= {(64, 32), (43, 21), (32, 16)} and sizes
    for _, _, _, ratio, size in split["query"]:
        assert tuple(size) == lr_size((128, 64), ratio)


def test_paper_preset_keeps_the_dataset_native_size(registry):
    config = resolve_config({"preset": "paper"}, registry)
    assert config.hr_height is None and config.reid_size == (256, 128)
    assert resolve_config({"preset": "cpu"}, registry).hr_size == (64, 32)
    assert resolve_config({"preset": "cpu", "hr_size": "native"}, registry).hr_height is None


def test_folder_readers_declare_their_hr_size(registry, tmp_path):
    from crossres_plugins.data.synthetic import write_layout

    expected = {"market1501": (128, 64), "viper": (128, 48), "cuhk03-partial": (128, 64)}
    for layout, size in expected.items():
        root = write_layout(tmp_path / layout, layout, train_ids=4, test_ids=4, cameras=2,
                            images_per_camera=2, height=32, width=16)
        dataset = registry.lookup("dataset", layout).factory(str(root), RunConfig(data=layout))
        assert dataset.hr_size == size


# --------------------------------------------------------------------------
# An SR stage that super-resolves
# --------------------------------------------------------------------------


def test_generator_has_no_batchnorm(registry):
    generator = registry.lookup("sr", "srgan").factory(smoke_config(registry))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules())


def test_pixel_warm_start_beats_bicubic_on_training_pairs(registry, tmp_path):
    trainer = make_trainer(registry, tmp_path, sr_warmup_iters=60, lr=1e-3,
                           options={"sr_blocks": 1, "sr_channels": 8})
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


def test_warm_start_is_cached_and_reused_bit_identically(registry, tmp_path):
    cache = tmp_path / "cache"
    config = smoke_config(registry, reg="gan", sr_iters=1, sr_warmup_iters=3)
    first = run_experiment(config, tmp_path / "a", registry, echo=lambda m: None, stage0_cache_dir=cache)
    def shared() -> list[str]:  # each regulariser adds its own critic warm-up, never a G or re-id model
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


def test_step_runner_computes_the_sr_batch_once_per_iteration_in_training_mode(registry, tmp_path):
    trainer = make_trainer(registry, tmp_path, reg="gan")
    from harness.context import StepContext

    calls = []
    generator = trainer.models["G"]
    hook = generator.register_forward_hook(lambda m, a, o: calls.append(m.training))
    ctx = StepContext(trainer.sr_batch(), trainer.models, trainer.config)
    StepRunner.run_iteration(trainer.runner, ctx)
    hook.remove()
    assert calls == [True]


# --------------------------------------------------------------------------
# One meaning of f_c
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "osnet_x0_25"])
def test_f_c_is_the_pooled_feature_before_the_bnneck(registry, name):
    config = smoke_config(registry)
    torch.manual_seed(0)
    model = registry.lookup("reid", name).factory(config, 4).train()
    x = torch.rand(4, 3, *config.reid_size)
    _, f_c = model(x)
    pooled = model.backbone(model.normalize(x)).mean(dim=(2, 3))
    torch.testing.assert_close(f_c, pooled)
    assert model.bnneck.num_features == f_c.shape[1]


def test_an_mlr_1_run_folder_keeps_its_hr_size_on_re_evaluation(tmp_path):
    from harness.run import load_run_config

    doc = {"config": {"height": 48, "width": 24}, "protocol_version": "mlr-1.0"}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert load_run_config(tmp_path).hr_size == (48, 24)


def test_a_malformed_hr_size_is_a_usage_error():
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["run", "--preset", "smoke", "--hr-size", "128by64"])
    assert result.exit_code == 2
    assert "128x64" in result.output and "native" in result.output


def test_warm_start_ramps_up_then_decays_to_zero():
    from harness.train import warmup_schedule

    factor = warmup_schedule(100)
    values = [factor(i) for i in range(100)]
    assert values[0] == pytest.approx(0.2) and values[4] == pytest.approx(1.0)  # 5-step ramp
    assert all(b <= a for a, b in zip(values[4:], values[5:], strict=False))  # then only down
    assert values[-1] < 0.01


def test_the_reid_models_own_terms_never_reach_the_generator(registry, tmp_path):
    """With --finetune-reid the HR batch shares BatchNorm statistics with the SR batch: its
    loss must still not leak into G (it once pulled SR 6 dB below bicubic)."""
    from harness.context import StepContext
    from harness.steps import finetune_reid_terms

    trainer = make_trainer(registry, tmp_path, reg="none", finetune_reid=True)
    set_trainable(trainer.models, ("G", "reid"))
    ctx = StepContext(trainer.sr_batch(), trainer.models, trainer.config)
    terms = finetune_reid_terms(ctx)
    assert set(terms) == {"reid_sr", "reid_hr"}
    sum(terms.values()).backward()
    assert all(p.grad is None or not p.grad.any() for p in trainer.models["G"].parameters())
    assert any(p.grad is not None and p.grad.any() for p in trainer.models["reid"].parameters())
