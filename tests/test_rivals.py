"""Table 1's rivals (crossres_plugins.reg.sing, .resolution_invariant) and the contract they add.

A method may fix its SR component (``sr_model``): RAIN and CAD have none, so a
run of them uses bicubic upsampling and the re-id model embeds the upsampled
query. Their stage 1 trains the re-id model (its feature discriminator's loss
reaches it), while a row of the INTACT family leaves it bit for bit as stage 0
left it. SING trains G and the re-id model in one step.
"""

from __future__ import annotations

import json

import pytest
import torch

from harness import ConfigError, StepContext
from harness.losses import scale_gradient
from harness.registry import get_registry
from harness.resolve import resolve_config
from harness.run import run_experiment
from harness.testing import check_regulariser
from tests.test_regularisers import batch, make, runner, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["rain", "cad"])
def test_a_method_without_an_sr_model_gets_bicubic_and_refuses_another(name):
    registry = get_registry()
    assert resolve_config({"preset": "smoke", "reg": name}, registry).sr == "bicubic"
    with pytest.raises(
        ConfigError, match=rf"--reg {name} is defined with no SR model .*got --sr srgan"
    ):
        resolve_config({"preset": "smoke", "reg": name, "sr": "srgan"}, registry)


def test_methods_that_fix_no_sr_model_keep_the_runs_sr():
    registry = get_registry()
    for name in ("intact", "sing"):
        assert (
            resolve_config({"preset": "smoke", "reg": name, "sr": "srgan"}, registry).sr == "srgan"
        )


@pytest.mark.parametrize(
    ("name", "sr"), [("sing", None), ("rain", "bicubic"), ("cad", "bicubic"), ("csr-gan", "csr")]
)
def test_the_contract_kit_passes_each_rival(name, sr, tiny_config):
    passed = check_regulariser(get_registry(), name, tiny_config)
    if sr is not None:
        assert passed[0].endswith(f"defined with --sr {sr} (a run gets it by default)")


def _iteration(name: str):
    reg, models, config = make(name, finetune_reid=False)
    before = snapshot(models)
    steps = reg.schedule(config)
    run = runner(models, steps)
    terms = run.run_iteration(StepContext(batch(), models, config))
    return models, before, terms, reg, config


@pytest.mark.parametrize("name", ["rain", "cad"])
def test_resolution_invariant_methods_train_the_reid_model_in_stage_1(name):
    models, before, terms, _, _ = _iteration(name)
    after = snapshot(models)
    assert any(not torch.equal(before["reid"][k], after["reid"][k]) for k in before["reid"])
    assert {"reid/adv", "reid/rec", "reid/id_lr"} <= set(terms)


@pytest.mark.parametrize("name", ["rain", "cad"])
def test_the_feature_discriminators_loss_reaches_the_reid_model(name):
    reg, models, config = make(name, finetune_reid=False)
    step = next(s for s in reg.schedule(config) if s.name == "reid")
    for module in models.values():
        module.requires_grad_(False)
    models["reid"].requires_grad_(True)
    terms = step.loss(StepContext(batch(), models, config))
    grads = torch.autograd.grad(terms["adv"], list(models["reid"].parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["intact", "intact-nobridge", "common-space", "d-to-r", "gan"])
def test_the_intact_family_leaves_the_reid_model_bit_identical(name):
    models, before, _, _, _ = _iteration(name)
    after = snapshot(models)
    for key, value in before["reid"].items():
        assert torch.equal(value, after["reid"][key]), key


def test_sing_trains_g_and_the_reid_model_in_one_step():
    models, before, terms, reg, config = _iteration("sing")
    (step,) = reg.schedule(config)
    assert step.trainable == ("G", "reid")
    assert set(terms) == {"G/mse", "G/id_sr", "G/id_hr"}
    after = snapshot(models)
    for name in ("G", "reid"):
        assert any(not torch.equal(before[name][k], after[name][k]) for k in before[name]), name


def test_scale_gradient_scales_only_the_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x.detach())
    (y * 3).sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.75, 0.75]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rain", "cad"])
def test_a_resolution_invariant_run_has_no_sr_model(name, tmp_path):
    config = resolve_config({"preset": "smoke", "reg": name}, get_registry())
    metrics = run_experiment(config, tmp_path / name, get_registry(), echo=lambda *_: None)
    saved = json.loads((tmp_path / name / "config.json").read_text())
    assert saved["config"]["sr"] == "bicubic" and metrics["parameters"].get("G", 0) == 0
    sr, bicubic = metrics["queries"]["sr"], metrics["queries"]["bicubic"]
    assert sr["cmc"] == bicubic["cmc"] and sr["psnr"] == bicubic["psnr"]  # the same query path


def test_the_cascade_doubles_per_stage_and_keeps_its_intermediate_image():
    from crossres_plugins.sr.cascade import CascadeSR, stage_sizes

    assert stage_sizes((16, 8), (32, 16)) == [(32, 16)]
    assert stage_sizes((8, 4), (32, 16)) == [(16, 8), (32, 16)]
    assert stage_sizes((11, 5), (32, 16)) == [(22, 10), (32, 16)]  # x3: x2, then the rest
    g = CascadeSR(stages=2, blocks=1, channels=4).eval()
    x = torch.rand(2, 3, 8, 4)
    y = g(x, (32, 16))
    assert y.shape == (2, 3, 32, 16) and g.last_intermediate.shape == (2, 3, 16, 8)
    g(torch.rand(2, 3, 16, 8), (32, 16))
    assert g.last_intermediate is None
    assert "last_intermediate" not in g.state_dict()


def test_csr_gan_supervises_both_scales_and_trains_the_reid_model_with_g():
    reg, models, config = make("csr-gan", finetune_reid=False)
    from crossres_plugins.sr.cascade import CascadeSR

    models["G"] = CascadeSR(stages=2, blocks=1, channels=4)
    before = snapshot(models)
    b = batch()
    b.x_lr = torch.nn.functional.interpolate(
        b.x_hr, size=(4, 2), mode="bilinear", align_corners=False
    )
    terms = runner(models, reg.schedule(config)).run_iteration(StepContext(b, models, config))
    assert {"D/gan", "D/gan_mid", "G/mse", "G/mse_mid", "G/gan_mid", "G/id_sr"} <= set(terms)
    after = snapshot(models)
    for name in ("G", "reid", "D", "D_mid"):
        assert any(not torch.equal(before[name][k], after[name][k]) for k in before[name]), name
