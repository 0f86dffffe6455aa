"""harness.steps, harness.critics and harness.context: Algorithm 1 composed from steps and terms.

What must hold for a regulariser built from the pieces: each step carries its
own optimiser settings, terms at weight 0 vanish, the shared forwards run once
and are the same tensors for every term, and the built-ins stay shallow (a rival
composes steps, it does not subclass four levels). The docs' example
regulariser runs through the same contract checks as the built-ins. With
``--finetune-reid`` the re-id model trains on HR and SR together, and its own terms
never reach the generator.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from harness import Regulariser, StepContext, Term, hookimpl
from harness.freezing import set_trainable
from harness.registry import get_registry
from harness.schedule import StepRunner, default_learning_rates, make_optimizer
from harness.steps import (
    DISCRIMINATOR_BETAS,
    adversarial,
    discriminator_step,
    generator_step,
    sr_terms,
)
from harness.testing import check_regulariser
from tests.helpers import make_trainer, same_state, state
from tests.test_regularisers import batch, make

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_step_carries_its_own_betas_and_weight_decay():
    reg, models, config = make("gan", finetune_reid=True)
    config = dataclasses.replace(config, weight_decay=5e-4)
    d_step, g_step = reg.schedule(config)
    lrs = default_learning_rates(config)
    d_opt = make_optimizer(d_step, models, lrs)
    g_opt = make_optimizer(g_step, models, lrs)
    assert d_opt.defaults["betas"] == DISCRIMINATOR_BETAS
    assert g_opt.defaults["betas"] == (0.9, 0.999)
    decay = {g["name"]: g["weight_decay"] for g in g_opt.param_groups}
    assert decay == {"G": 0.0, "reid": 5e-4}  # only the fine-tuned re-id model decays
    rates = {g["name"]: g["lr"] for g in g_opt.param_groups}
    assert rates == {"G": config.lr, "reid": config.lr_reid * 0.1}


def test_a_term_at_weight_zero_is_left_out_and_weight_one_is_the_loss_itself():
    _, models, config = make("gan", finetune_reid=False)
    set_trainable(models, ("G",))
    ctx = StepContext(batch(), models, config)
    loss = generator_step(config, *sr_terms(0.0), adversarial(0.0)).loss(ctx)
    assert set(loss) == {"mse"}
    assert torch.equal(loss["mse"], torch.nn.functional.mse_loss(ctx.sr(), ctx.batch.x_hr))
    weighted = Term("x", 0.5, lambda c: torch.tensor(2.0))(ctx)
    assert float(weighted["x"]) == 1.0


def test_shared_forwards_run_once_per_step_and_are_forgotten_by_the_next():
    _, models, config = make("intact")
    calls = {"reid": 0, "D": 0}
    for name in calls:
        models[name].register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    ctx = StepContext(batch(), models, config)
    first = ctx.reid_on_sr(), ctx.disc_on_sr()
    again = ctx.reid_on_sr(), ctx.disc_on_sr()
    assert first[0] is again[0] and first[1] is again[1]
    assert calls == {"reid": 1, "D": 1}
    ctx.begin_step()
    ctx.reid_on_sr()
    assert calls["reid"] == 2


def test_real_disc_features_are_recomputed_only_when_d_changes():
    _, models, config = make("intact")
    ctx = StepContext(batch(), models, config)
    a = ctx.real_disc_features()
    assert ctx.real_disc_features() is a
    with torch.no_grad():
        next(models["D"].parameters()).add_(0.1)
    assert ctx.real_disc_features() is not a


def test_the_g_step_of_intact_sums_l_sr_and_l_dis_through_one_forward_of_each_model():
    reg, models, config = make("intact", finetune_reid=False)
    calls = {"reid": 0, "D": 0}
    for name in calls:
        models[name].register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    ctx = StepContext(batch(), models, config)
    g_step = next(s for s in reg.schedule(config) if s.name == "G")
    terms = StepRunner(models, [g_step], default_learning_rates(config)).run(g_step, ctx)
    assert list(terms) == ["G/mse", "G/id", "G/gan", "G/dis"]
    # re-id once on SR (ID and critic share it); D once on SR (GAN and critic share it) and
    # once on real HR (the standardisation of the critic's target)
    assert calls == {"reid": 1, "D": 2}


def _depth_below(base: type, cls: type) -> int:
    return cls.__mro__.index(base)


@pytest.mark.parametrize(
    "name", ["none", "gan", "intact", "intact-nobridge", "common-space", "d-to-r"]
)
def test_builtin_regularisers_are_at_most_two_levels_below_the_base(name):
    factory = get_registry().lookup("regulariser", name).factory
    assert _depth_below(Regulariser, factory) <= 2


def test_intact_reads_as_algorithm_1_without_a_chain_of_super_calls():
    source = (ROOT / "plugins" / "reg" / "intact.py").read_text()
    assert "super().generator_loss" not in source
    tree = ast.parse(source)
    intact = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "IntactRegulariser"
    )
    schedule = next(
        n for n in intact.body if isinstance(n, ast.FunctionDef) and n.name == "schedule"
    )
    body = ast.get_source_segment(source, schedule)
    # the three updates of Algorithm 1, in order, in one function
    order = [body.index(s) for s in ("discriminator_step", "self.critic.step", "generator_step")]
    assert order == sorted(order)


def _docs_example() -> str:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    return next(b for b in blocks if "class GanPlusFeatures" in b)


def test_the_docs_regulariser_example_passes_the_contract_checks(
    register_inline_plugin, tiny_config
):
    namespace: dict = {}
    exec(compile(_docs_example(), "docs/plugins.md", "exec"), namespace)

    class Plugin:
        harness_register_regularisers = staticmethod(
            hookimpl(namespace["harness_register_regularisers"])
        )

    registry = register_inline_plugin(Plugin(), name="docs-example")
    passed = check_regulariser(registry, "gan-feat", tiny_config)
    assert any("step 'G'" in line and "feat" in line for line in passed)


def test_discriminator_step_trains_only_d_with_the_gan_loss():
    _, models, config = make("gan")
    step = discriminator_step(1e-3)
    assert step.trainable == ("D",) and step.betas == DISCRIMINATOR_BETAS
    ctx = StepContext(batch(), models, config)
    assert set(step.loss(ctx)) == {"gan"}


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
