"""harness.freezing: frozen means frozen (issue "Trustworthy numbers").

A module a step does not train changes no state, BatchNorm statistics included
(``set_trainable``, ``buffers_restored``, ``STATEFUL_LAYERS``); a frozen module reads with
running statistics yet keeps its training outputs; with ``--no-finetune-reid`` the re-id
model leaves stage 1 bit-identical to stage 0.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.freezing import (
    buffers_restored,
    requires_grad_restored,
    set_trainable,
    training_modes_restored,
)
from tests.helpers import make_trainer, same_state, state

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_modes_and_flags_come_back_per_layer_even_when_the_block_fails():
    """A probe or a shared forward may freeze or unfreeze modules for its own pass; the
    per-layer modes (a frozen BatchNorm in eval inside a training model) and the flags as
    they were come back, also after an exception."""
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"):
        with training_modes_restored([model]), requires_grad_restored([model]):
            set_trainable({"m": model}, ("m",))  # every layer training, every flag on
            assert model[1].training and model[0].weight.requires_grad
            raise RuntimeError("boom")
    assert model.training and model[0].training and not model[1].training
    assert not model[0].weight.requires_grad and model[0].bias.requires_grad
