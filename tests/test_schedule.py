"""harness.schedule: the StepRunner (one optimiser step per Step, the SR batch once per
iteration, gradient clipping) and the gradient shares it measures for the diagnostics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import Step, StepContext
from harness.schedule import StepRunner, gradient_shares
from tests.helpers import make_trainer
from tests.test_regularisers import batch, make, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradient_shares_on_a_hand_case():
    w = torch.zeros(4, requires_grad=True)
    terms = {"a": 3 * w.sum(), "b": -w.sum(), "const": torch.tensor(1.0)}
    shares = gradient_shares(terms, [w])
    # d a = 3 per element, d b = -1, the total 2: shares 3/2 and 1/2 (magnitudes, not a partition)
    assert shares["a"].item() == pytest.approx(1.5)
    assert shares["b"].item() == pytest.approx(0.5)
    assert shares["const"].item() == 0.0
    assert w.grad is None  # measuring leaves no gradient behind


def test_a_diagnosed_update_equals_a_plain_one_bit_for_bit():
    def one_iteration(diagnose: bool):
        reg, models, config = make("intact", finetune_reid=False, lambda_a=1.0)
        run = StepRunner(models, reg.schedule(config), {"G": 1e-3, "reid": 1e-3, "default": 1e-3})
        run.run_iteration(StepContext(batch(), models, config), 0, diagnose=diagnose)
        return snapshot(models), run.diagnostics

    plain, none = one_iteration(False)
    diagnosed, diagnostics = one_iteration(True)
    assert none == {}
    for name in plain:
        for key in plain[name]:
            assert torch.equal(plain[name][key], diagnosed[name][key]), (name, key)
    assert {"grad_share/mse", "grad_share/id", "grad_share/gan", "grad_share/dis"} <= set(
        diagnostics
    )
    assert all(float(v) >= 0 for v in diagnostics.values())


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


def test_grad_clip_bounds_the_update():
    from harness.components import TrainBatch
    from harness.config import RunConfig
    from harness.context import StepContext
    from harness.schedule import StepRunner

    g = nn.Conv2d(3, 3, 1)

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = g

        def forward(self, x, size):
            return F.interpolate(self.g(x), size=size)

    models = {"G": G()}
    step = Step("G", ("G",), lambda ctx: {"big": 1e6 * F.mse_loss(ctx.sr(), ctx.batch.x_hr)})
    runner = StepRunner(models, [step], {"G": 1.0}, grad_clip=1e-3)
    batch = TrainBatch(
        torch.rand(2, 3, 4, 2), torch.rand(2, 3, 8, 4), torch.zeros(2, dtype=torch.long), 2.0
    )
    runner.run(step, StepContext(batch, models, RunConfig()))
    norm = torch.sqrt(sum((p.grad**2).sum() for p in g.parameters()))
    assert float(norm) <= 1e-3 * 1.001
