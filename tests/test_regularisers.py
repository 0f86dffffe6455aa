"""The built-in regularisers (plugins/reg/): who moves in each step, where L_dis's gradient
goes, that the critics learn. The losses they are made of: test_losses.

Tiny inline G / re-id / D (16x8 images, batch 4) with BatchNorm in the re-id
model and D, so side effects on running statistics are visible too. Every
regulariser is looked up through the registry, which proves its registration.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import BuildContext, RunConfig, Step, StepContext, TrainBatch
from harness.registry import get_registry
from harness.schedule import StepRunner
from harness.steps import generator_trainable

REID_DIM, FD_DIM, BRIDGE, CLASSES = 6, 7, 5, 5
SIZE = (16, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


NAMES = ["none", "gan", "intact", "intact-nobridge", "common-space", "d-to-r"]

EXPECTED_TERMS = {
    "none": {"G": {"mse", "id"}},
    "gan": {"D": {"gan"}, "G": {"mse", "id", "gan"}},
    "intact": {"D": {"gan"}, "assoc": {"intact", "e"}, "G": {"mse", "id", "gan", "dis"}},
    "intact-nobridge": {"D": {"gan"}, "assoc": {"intact"}, "G": {"mse", "id", "gan", "dis"}},
    "common-space": {
        "D": {"gan"},
        "assoc": {"assoc", "var", "cov"},
        "G": {"mse", "id", "gan", "dis"},
    },
    "d-to-r": {"D": {"gan"}, "assoc": {"assoc"}, "G": {"mse", "id", "gan", "dis"}},
}


class TinyG(nn.Module):
    """Upsample, refine with one conv, add a learned detail image (room to move the critic)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.detail = nn.Parameter(torch.zeros(1, 3, *SIZE))

    def forward(self, x_lr, out_size):
        up = F.interpolate(x_lr, size=out_size, mode="bilinear", align_corners=False)
        return up + self.conv(up) + self.detail


class TinyReid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.embed = nn.Linear(8, REID_DIM)
        self.classifier = nn.Linear(REID_DIM, CLASSES)

    def forward(self, x):
        f = self.embed(self.body(x).mean(dim=(2, 3)))
        return (self.classifier(f), f) if self.training else f


class TinyD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2)
        )
        self.dense = nn.Sequential(nn.Linear(8, FD_DIM), nn.LeakyReLU(0.2))
        self.logit = nn.Linear(FD_DIM, 1)

    def forward(self, x):
        f_d = self.dense(self.body(x).mean(dim=(2, 3)))
        return self.logit(f_d).squeeze(1), f_d


def make(name: str, finetune_reid: bool = True, **options):
    """Regulariser from the registry, its modules built around the tiny G and re-id."""
    torch.manual_seed(0)
    config = RunConfig(
        reg=name,
        height=SIZE[0],
        width=SIZE[1],
        batch_size=4,
        finetune_reid=finetune_reid,
        options={"phi_hidden": 16, "bridge_dim": BRIDGE, **options},
    )
    reg = get_registry().lookup("regulariser", name).factory(config)
    models: dict[str, nn.Module] = {"G": TinyG(), "reid": TinyReid()}
    models.update(reg.build(BuildContext(config, REID_DIM, TinyD, SIZE)))
    for module in models.values():
        module.train()
    with torch.no_grad():  # running statistics of the data, as stage 0 and D steps leave them
        for seed in range(30):
            for name in ("reid", "D"):
                if name in models:
                    models[name](batch(100 + seed).x_hr)
    return reg, models, config


def batch(seed: int = 1) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    x_hr = torch.rand(4, 3, *SIZE, generator=g)
    x_lr = F.interpolate(x_hr, size=(8, 4), mode="bilinear", align_corners=False)
    return TrainBatch(x_lr=x_lr, x_hr=x_hr, pids=torch.tensor([0, 1, 2, 3]), ratio=2.0)


def runner(models, steps, lr: float = 1e-3) -> StepRunner:
    return StepRunner(models, steps, {"G": lr, "reid": lr, "default": lr})


def snapshot(models) -> dict[str, dict[str, torch.Tensor]]:
    return {
        k: {n: t.detach().clone() for n, t in m.state_dict().items()} for k, m in models.items()
    }


def params_changed(before, models) -> set[str]:
    changed = set()
    for name, module in models.items():
        for pname, p in module.named_parameters():
            if not torch.equal(before[name][pname], p.detach()):
                changed.add(name)
    return changed


def step_named(reg, config, name: str) -> Step:
    return next(s for s in reg.schedule(config) if s.name == name)


# --------------------------------------------------------------------------
# Registration and options
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_one_line_summary_and_declared_options(name):
    entry = get_registry().lookup("regulariser", name)
    assert entry.plugin in {"reg-none", "reg-gan", "reg-intact", "reg-associations"}
    assert entry.summary and "\n" not in entry.summary
    assert entry.options["lambda_c"].default == 3e-4  # below the pixel term (harness.losses)
    if name != "none":
        assert entry.options["lambda_g"].default == 3e-4 and entry.options["lr_D"].default == 1e-4
    if name not in ("none", "gan"):
        for key, default in [
            ("lambda_a", 3e-5),
            ("phi_hidden", 256),
            ("phi_depth", 2),
            ("bridge_dim", 64),
            ("lr_phi", 1e-3),
        ]:
            assert entry.options[key].default == default
    assert ("lambda_e" in entry.options) == (name == "intact")


def test_options_fall_back_to_defaults_and_coerce_cli_strings():
    reg, _, _ = make("intact", lambda_a="0.5", phi_depth="3")
    assert reg.opts["lambda_a"] == 0.5 and reg.opts["phi_depth"] == 3
    assert reg.opts["lambda_e"] == 1.0  # not given: the declared default


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("finetune", [True, False])
def test_schedule_order_trainables_and_learning_rates(name, finetune):
    reg, models, config = make(name, finetune_reid=finetune, lr_D=3e-4, lr_phi=2e-4)
    steps = reg.schedule(config)
    g_trainable = ("G", "reid") if finetune else ("G",)
    assert steps[-1].name == "G" and steps[-1].trainable == g_trainable
    assert [s.name for s in steps] == list(EXPECTED_TERMS[name])
    if name != "none":
        assert steps[0].trainable == ("D",) and steps[0].lr == {"D": 3e-4}
    if len(steps) == 3:
        assoc = steps[1]
        assert set(assoc.trainable) == set(models) - {"G", "reid", "D"}
        assert assoc.lr == {m: 2e-4 for m in assoc.trainable}


# --------------------------------------------------------------------------
# Who moves in each step
# --------------------------------------------------------------------------


def _cases():
    for name in NAMES:
        for step in EXPECTED_TERMS[name]:
            for finetune in (True, False):
                if step == "G" or finetune:  # only the G step depends on finetune_reid
                    yield name, step, finetune


@pytest.mark.parametrize("name,step_name,finetune", list(_cases()))
def test_each_step_moves_exactly_its_modules_and_names_its_terms(name, step_name, finetune):
    reg, models, config = make(name, finetune_reid=finetune)
    steps = reg.schedule(config)
    step = step_named(reg, config, step_name)
    before = snapshot(models)
    terms = runner(models, steps).run(step, StepContext(batch(), models, config))

    assert params_changed(before, models) == set(step.trainable)
    for module_name, module in models.items():
        if module_name not in step.trainable:
            assert all(p.grad is None for p in module.parameters()), module_name
    # a fine-tuned re-id model also sees the HR batch, with its own ID term
    hr_term = {"reid_sr", "reid_hr"} if (step_name == "G" and finetune) else set()
    assert {k.split("/", 1)[1] for k in terms} == EXPECTED_TERMS[name][step_name] | hr_term
    assert all(k.startswith(f"{step_name}/") for k in terms)
    assert math.isfinite(sum(float(v) for v in terms.values()))
    if step_name == "assoc":  # reading re-id and D features leaves them untouched, buffers too
        after = snapshot(models)
        for module_name in models:
            if module_name not in step.trainable:
                for key, value in before[module_name].items():
                    assert torch.equal(value, after[module_name][key]), (module_name, key)


@pytest.mark.parametrize("name", NAMES)
def test_whole_iterations_run_in_order_and_share_one_generator_forward(name):
    """The D step must leave the generator's graph for the G step (it reads sr() detached)."""
    reg, models, config = make(name)
    run = runner(models, reg.schedule(config))
    before = snapshot(models)
    for seed in (1, 2):
        terms = run.run_iteration(StepContext(batch(seed), models, config))
        assert {k.split("/")[0] for k in terms} == set(EXPECTED_TERMS[name])
        assert all(torch.isfinite(v) for v in terms.values())
    assert params_changed(before, models) == set(models)


# --------------------------------------------------------------------------
# Where L_dis's gradient goes
# --------------------------------------------------------------------------


def _dis_only(name: str, finetune: bool):
    reg, models, config = make(name, finetune_reid=finetune)
    step = Step("dis-only", generator_trainable(config), reg.critic.term(reg.opts["lambda_a"]))
    ctx = StepContext(batch(), models, config)
    terms = runner(models, [step]).run(step, ctx)
    return models, terms, ctx


@pytest.mark.parametrize("name", ["intact", "intact-nobridge", "common-space", "d-to-r"])
@pytest.mark.parametrize("finetune", [True, False])
def test_dis_term_alone_reaches_g_and_nothing_else(name, finetune):
    models, terms, _ = _dis_only(name, finetune)
    assert set(terms) == {"dis-only/dis"} and float(terms["dis-only/dis"]) > 0
    assert all(p.grad is not None for p in models["G"].parameters())
    assert any(p.grad.abs().sum() > 0 for p in models["G"].parameters())
    for other in set(models) - {"G"}:  # re-id included, even when it is trainable
        assert all(p.grad is None for p in models[other].parameters()), other


def test_dis_gradient_on_g_is_the_same_whether_or_not_reid_is_finetuned():
    on, on_terms, _ = _dis_only("intact", True)
    off, off_terms, _ = _dis_only("intact", False)
    assert torch.equal(on_terms["dis-only/dis"], off_terms["dis-only/dis"])
    for p_on, p_off in zip(on["G"].parameters(), off["G"].parameters(), strict=True):
        torch.testing.assert_close(p_on.grad, p_off.grad, rtol=1e-6, atol=1e-9)


def test_finetuning_g_step_updates_reid_batchnorm_statistics_once_on_hr_and_sr():
    reg, models, config = make("intact", finetune_reid=True)
    reference = copy.deepcopy(models["reid"])
    ctx = StepContext(batch(), models, config)
    step = step_named(reg, config, "G")
    runner(models, [step]).run(step, ctx)
    # one ordinary forward on the SR and HR batch together (the critic's read changes nothing)
    reference(torch.cat([ctx.sr().detach(), ctx.batch.x_hr]))
    for (name, buf), (_, ref) in zip(
        models["reid"].named_buffers(), reference.named_buffers(), strict=True
    ):
        assert torch.equal(buf, ref), name


def test_gan_g_step_without_lambda_g_has_no_gan_term():
    reg, models, config = make("gan", finetune_reid=False, lambda_g=0.0)
    terms = runner(models, reg.schedule(config)).run(
        step_named(reg, config, "G"), StepContext(batch(), models, config)
    )
    assert set(terms) == {"G/mse", "G/id"}


# --------------------------------------------------------------------------
# The critics learn, and G can satisfy a fixed critic
# --------------------------------------------------------------------------


def test_intact_association_loss_falls_over_100_steps():
    reg, models, config = make("intact", lr_phi=1e-2)
    step = step_named(reg, config, "assoc")
    run = runner(models, [step])
    b = batch()
    totals = [
        sum(float(v) for v in run.run(step, StepContext(b, models, config)).values())
        for _ in range(100)
    ]
    assert totals[-1] < 0.3 * totals[0], totals[::20]


def test_g_lowers_dis_against_a_fixed_critic():
    reg, models, config = make("intact", finetune_reid=True)
    step = Step("dis-only", ("G", "reid"), reg.critic.term(reg.opts["lambda_a"]))
    run = runner(models, [step], lr=1e-3)  # Adam: steps of ~lr, whatever lambda_a
    b = batch()
    reid_before = snapshot({"reid": models["reid"]})
    values = [
        float(run.run(step, StepContext(b, models, config))["dis-only/dis"]) for _ in range(40)
    ]
    # A fixed random critic has a floor above zero; what matters is a steady descent.
    assert values[-1] < 0.8 * values[0], values[::8]
    assert sum(b < a for a, b in zip(values[:-1], values[1:], strict=True)) >= 0.9 * (
        len(values) - 1
    )
    assert params_changed(reid_before, {"reid": models["reid"]}) == set()  # L_dis never moves re-id


# --------------------------------------------------------------------------
# The rivals differ from INTACT exactly in the maps they learn
# --------------------------------------------------------------------------


def _maps(module: nn.Module, in_dim: int) -> int:
    with torch.no_grad():
        return module(torch.randn(3, in_dim)).shape[-1]


def test_intact_maps_fc_to_fd_through_a_bridge_sigma_shares():
    _, models, _ = make("intact")
    assert set(models) == {"G", "reid", "D", "phi", "sigma"}
    assert _maps(models["phi"], REID_DIM) == FD_DIM
    assert models["phi"].encode(torch.randn(3, REID_DIM)).shape == (3, BRIDGE)
    assert _maps(models["sigma"], FD_DIM) == BRIDGE


def test_nobridge_keeps_phi_and_drops_sigma():
    _, with_bridge, _ = make("intact")
    _, models, _ = make("intact-nobridge")
    assert set(models) == {"G", "reid", "D", "phi"}
    assert _maps(models["phi"], REID_DIM) == FD_DIM
    shapes = [p.shape for p in models["phi"].parameters()]
    assert shapes == [p.shape for p in with_bridge["phi"].parameters()]


def test_d_to_r_maps_fd_to_fc():
    _, models, _ = make("d-to-r")
    assert set(models) == {"G", "reid", "D", "phi"}
    assert _maps(models["phi"], FD_DIM) == REID_DIM


def test_common_space_maps_both_into_z():
    _, models, _ = make("common-space")
    assert set(models) == {"G", "reid", "D", "enc_c", "enc_d"}
    assert _maps(models["enc_c"], REID_DIM) == BRIDGE
    assert _maps(models["enc_d"], FD_DIM) == BRIDGE


def test_common_space_guard_keeps_z_from_collapsing():
    def spread(**options) -> float:
        reg, models, config = make("common-space", lr_phi=1e-2, **options)
        step = step_named(reg, config, "assoc")
        run = runner(models, [step])
        b = batch()
        for _ in range(120):
            run.run(step, StepContext(b, models, config))
        with torch.no_grad():  # read as the step read it: running statistics, standardised inputs
            ctx = StepContext(b, models, config)
            z_c, _ = reg.critic.fit(ctx, models["reid"](b.x_hr)[1], models["D"](b.x_hr)[1])
            return float(z_c.std(dim=0).mean())

    guarded, unguarded = spread(), spread(cs_var=0.0, cs_cov=0.0)
    assert guarded > 0.8 and unguarded < 0.2 * guarded, (guarded, unguarded)
