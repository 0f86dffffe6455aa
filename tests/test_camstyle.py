"""CamStyle (crossres_plugins.reg.camstyle): style transfer trained in the warm-up, then frozen;
the re-id model on CE over real images and LSR over transferred ones; no SR model.

Also the two general pieces it needs from the core: a step's ``phases`` (the warm-up, stage 1)
and the training cameras in ``TrainBatch.camids``.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from harness import ConfigError, Step, StepContext
from harness.registry import get_registry
from harness.resolve import resolve_config
from harness.run import run_experiment
from harness.testing import check_regulariser
from tests.test_regularisers import batch, make, params_changed, runner, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = {"cameras": 2, "gen_width": 4, "gen_blocks": 1}


def camstyle(**options):
    return make("camstyle", finetune_reid=False, **{**OPTIONS, **options})


def camera_batch(seed: int = 1):
    b = batch(seed)
    b.camids = torch.tensor([0, 1, 0, 1])
    return b


def step(reg, config, name: str) -> Step:
    return next(s for s in reg.schedule(config) if s.name == name)


def test_harness_list_shows_camstyle_with_its_options():
    from click.testing import CliRunner

    from harness.cli import main

    out = CliRunner().invoke(main, ["list", "camstyle", "--verbose"], catch_exceptions=False)
    assert "CamStyle (Zhong et al. 2018)" in out.output
    assert all(key in out.output for key in ("lsr_epsilon", "transfer_share", "style_iters"))


def test_camstyle_has_no_sr_model_and_refuses_one():
    registry = get_registry()
    assert resolve_config({"preset": "smoke", "reg": "camstyle"}, registry).sr == "bicubic"
    with pytest.raises(ConfigError, match=r"--reg camstyle is defined with no SR model"):
        resolve_config({"preset": "smoke", "reg": "camstyle", "sr": "srgan"}, registry)


@pytest.mark.slow
def test_the_contract_kit_passes_camstyle(tiny_config):
    passed = check_regulariser(get_registry(), "camstyle", tiny_config)
    assert passed[0].endswith("defined with --sr bicubic (a run gets it by default)")


def test_the_style_transfer_trains_in_the_warm_up_only_and_the_reid_model_in_stage_1_only():
    reg, _, config = camstyle()
    phases = {s.name: (s.runs_in("critic"), s.runs_in("sr")) for s in reg.schedule(config)}
    assert phases == {
        "G_style": (True, False),
        "D_style": (True, False),
        "reid": (False, True),
    }
    assert reg.critic_warmup_iters(config) == reg.opts["style_iters"]


def test_a_steps_default_phases_and_an_unknown_phase():
    assert Step("D", ("D",), dict).runs_in("critic") and Step("D", ("D",), dict).runs_in("sr")
    g = Step("G", ("G", "reid"), dict)
    assert not g.runs_in("critic") and g.runs_in("sr")
    with pytest.raises(ValueError, match=r"step 'x': unknown phase\(s\) \['warm'\]"):
        Step("x", ("D",), dict, phases=("warm",))


@pytest.mark.parametrize(
    ("name", "terms"), [("G_style", {"gan", "cyc", "idt"}), ("D_style", {"gan"})]
)
def test_each_style_step_changes_its_own_module_and_nothing_else(name, terms):
    reg, models, config = camstyle()
    before = snapshot(models)
    out = runner(models, reg.schedule(config)).run(
        step(reg, config, name), StepContext(camera_batch(), models, config)
    )
    assert {k.split("/", 1)[1] for k in out} == terms
    assert params_changed(before, models) == {name}
    after = snapshot(models)
    for module in set(models) - {name}:  # frozen means frozen: buffers too
        for key, value in before[module].items():
            assert torch.equal(value, after[module][key]), (module, key)


def test_the_reid_step_trains_the_reid_model_on_ce_and_lsr_and_nothing_else():
    reg, models, config = camstyle()
    before = snapshot(models)
    out = runner(models, reg.schedule(config)).run(
        step(reg, config, "reid"), StepContext(camera_batch(), models, config)
    )
    assert set(out) == {"reid/id_hr", "reid/id_lr", "reid/lsr"}
    assert params_changed(before, models) == {"reid"}


def test_the_lsr_term_reaches_the_reid_model_and_not_the_frozen_transfer():
    reg, models, config = camstyle()
    for module in models.values():
        module.requires_grad_(False)
    models["reid"].requires_grad_(True)
    terms = step(reg, config, "reid").loss(StepContext(camera_batch(), models, config))
    grads = torch.autograd.grad(terms["lsr"], list(models["reid"].parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in models["G_style"].parameters())


def test_lsr_targets_and_loss_on_a_hand_case():
    from crossres_plugins.reg.camstyle import lsr_loss, lsr_targets

    q = lsr_targets(torch.tensor([0, 2]), classes=4, epsilon=0.2)
    assert torch.allclose(q, torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]]))
    assert torch.allclose(q.sum(1), torch.ones(2))
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 3.0, -2.0]])
    pids = torch.tensor([0, 2])
    expected = -(q * logits.log_softmax(-1)).sum(1).mean()
    assert torch.allclose(lsr_loss(logits, pids, 0.2), expected)
    assert torch.allclose(lsr_loss(logits, pids, 0.0), F.cross_entropy(logits, pids))
    assert torch.allclose(lsr_loss(torch.zeros(2, 4), pids, 0.2), torch.log(torch.tensor(4.0)))


def test_the_generator_sees_each_images_target_domain():
    from crossres_plugins.reg.camstyle import StyleGenerator

    torch.manual_seed(0)
    g = StyleGenerator(domains=4, width=4, blocks=1)
    with torch.no_grad():  # as training would move them: each domain its own scale and shift
        for norm in (m for m in g.modules() if hasattr(m, "scale")):
            norm.scale.weight.normal_(1.0, 0.3)
            norm.shift.weight.normal_(0.0, 0.3)
    x = torch.rand(2, 3, 16, 8)
    with torch.no_grad():
        a, b, mixed = (g(x, torch.tensor(t)) for t in ([0, 0], [1, 1], [0, 1]))
    assert (a - b).abs().max() > 1e-2  # the target is not normalised away
    assert a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.allclose(mixed[0], a[0]) and torch.allclose(mixed[1], b[1])  # per image


def test_targets_are_other_domains_of_the_batch_and_sources_follow_the_share():
    from crossres_plugins.reg.camstyle import target_domains, transfer_sources

    domains = torch.tensor([0, 1, 0, 1, 4, 5, 4, 5])
    targets = target_domains(domains)
    assert (targets != domains).all() and set(targets.tolist()) <= {0, 1, 4, 5}
    assert set(targets.tolist()) == {0, 1, 4, 5}
    assert torch.equal(target_domains(torch.tensor([3, 3])), torch.tensor([3, 3]))
    idx = transfer_sources(24, 0.25)  # 8 transferred beside 24 real: the paper's 1:3
    assert len(idx) == 8 and idx.unique().numel() == 8 and int(idx.max()) < 24
    assert len(transfer_sources(24, 0.0)) == 0


def test_prepared_data_carries_the_training_cameras():
    from harness.data.prepare import prepare_data

    registry = get_registry()
    data = prepare_data(resolve_config({"preset": "smoke", "reg": "camstyle"}, registry), registry)
    assert data.train_camids.tolist() == [r.camid for r in data.split.train]
    assert len(set(data.train_camids.tolist())) > 1


def test_a_camera_the_transfer_does_not_know_is_a_one_line_error():
    reg, models, config = camstyle()
    b = camera_batch()
    b.camids = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ConfigError, match=r"camera id 2 .* knows 2 cameras; set -o cameras=3"):
        step(reg, config, "reid").loss(StepContext(b, models, config))


@pytest.mark.slow
def test_the_cyclegan_losses_fall_on_a_tiny_problem():
    """Two cameras that differ by a colour cast: the transfer's cycle, identity-mapping and
    adversarial losses fall as G_style and D_style train."""
    reg, models, config = camstyle(gen_width=8, lambda_idt=2.0)
    steps = [s for s in reg.schedule(config) if s.runs_in("critic")]
    run = runner(models, steps, lr=2e-3)
    history = []
    for i in range(40):
        b = camera_batch(i % 4)
        b.x_hr[b.camids == 0, 0] = 0.2 + 0.6 * b.x_hr[b.camids == 0, 0]  # camera 0: red
        b.x_hr[b.camids == 1, 2] = 0.2 + 0.6 * b.x_hr[b.camids == 1, 2]  # camera 1: blue
        b.x_lr = F.interpolate(b.x_hr, size=(8, 4), mode="bilinear", align_corners=False)
        history.append(
            {k: float(v) for k, v in run.run_iteration(StepContext(b, models, config)).items()}
        )

    def mean(key, part):
        return sum(h[key] for h in part) / len(part)

    for key in ("G_style/cyc", "G_style/idt", "D_style/gan"):
        assert mean(key, history[-8:]) < mean(key, history[:8]), key


@pytest.mark.slow
def test_a_smoke_run_trains_the_transfer_first_then_the_reid_model_with_no_sr_model(tmp_path):
    registry = get_registry()
    config = resolve_config({"preset": "smoke", "reg": "camstyle"}, registry)
    metrics = run_experiment(config, tmp_path / "run", registry, echo=lambda *_: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["sr"] == "bicubic" and metrics["parameters"].get("G", 0) == 0
    sr, bicubic = metrics["queries"]["sr"], metrics["queries"]["bicubic"]
    assert sr["cmc"] == bicubic["cmc"] and sr["psnr"] == bicubic["psnr"]  # the same query path
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    terms = {
        stage: {k.split("/")[0] for r in log if r.get("stage") == stage for k in r if "/" in k}
        for stage in ("critic", "sr")
    }
    assert {"G_style", "D_style"} <= terms["critic"] and "reid" not in terms["critic"]
    assert "reid" in terms["sr"] and not {"G_style", "D_style"} & terms["sr"]
    # the transfer is frozen in stage 1: its held-out probe reads the same at every log
    change = {r["probe/style_change"] for r in log if r.get("stage") == "sr"}
    assert len(change) == 1
    # the training cameras reach the batches (TrainBatch.camids): more than one camera's domains
    assert all(r["probe/style_domains"] > 2 for r in log if "probe/style_domains" in r)
