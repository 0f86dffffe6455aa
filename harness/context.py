"""What a step's loss sees: the batch, the models, the config, and the forwards steps share.

Why memoised here rather than by each term: Algorithm 1's G step adds several
terms on the same forwards (the ID term and the critic both read the re-id
model on SR; the GAN term and the critic both read D on SR), and the critic
must see *exactly* the tensors the other terms saw, graph included. Each
shared forward is a typed method that computes once and returns the same
tensor after: no string keys, no term that has to know which other term ran
first.

Lifetimes differ on purpose:

- ``sr()``: once per iteration, with its graph, so a D step reads it detached
  and the later G step backpropagates through the very same forward.
- ``reid_on_sr()`` and ``disc_on_sr()``: once per step (:meth:`begin_step`
  clears them), because their graph belongs to the step that built them.
- ``real_reid_features()``: once per iteration (the re-id model changes only
  in the G step, the last one that reads it).
- ``real_disc_features()``: until D changes, tracked by the version counters
  of its parameters and buffers (host-side, no device sync): the association
  step and the standardisation of its target share one forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from harness.components import TrainBatch
from harness.config import RunConfig
from harness.freezing import (
    inference_mode_layers,
    requires_grad_restored,
    training_modes_restored,
)
from harness.losses import forward_without_param_grad, observe


class StepContext:
    """The batch, the models by name and the config, plus the iteration's shared forwards."""

    def __init__(self, batch: TrainBatch, models: Mapping[str, nn.Module], config: RunConfig):
        self.batch = batch
        self.models = models
        self.config = config
        #: free for a third-party step's own memos; the harness keeps nothing here
        self.cache: dict[str, Any] = {}
        self._sr: Tensor | None = None
        self._reid_on_sr: tuple[Tensor, Tensor] | None = None
        self._disc_on_sr: dict[str, tuple[Tensor, Tensor]] = {}
        self._real_reid: Tensor | None = None
        self._real_disc: dict[str, tuple[tuple[int, ...], Tensor]] = {}

    def __getitem__(self, name: str) -> nn.Module:
        return self.models[name]

    def begin_step(self) -> None:
        """Forget the forwards whose graph belongs to the previous step."""
        self._reid_on_sr = None
        self._disc_on_sr = {}

    def sr(self) -> Tensor:
        """G's output for the batch, computed once per iteration in training mode, graph kept.

        G runs in training mode whichever step asks first, so the cached output
        is the one the G step would have computed itself.
        """
        if self._sr is None:
            generator = self.models["G"]
            with training_modes_restored([generator]), requires_grad_restored([generator]):
                generator.requires_grad_(True)
                generator.train()
                self._sr = generator(self.batch.x_lr, self.batch.out_size)
        return self._sr

    def set_sr(self, x_sr: Tensor) -> None:
        """Hand in an SR batch computed elsewhere (the probes run G under ``no_grad``)."""
        self._sr = x_sr

    def reid_is_trained(self) -> bool:
        """Whether the current step trains the re-id model (``--finetune-reid``)."""
        return any(p.requires_grad for p in self.models["reid"].parameters())

    def reid_on_sr(self) -> tuple[Tensor, Tensor]:
        """``(logits, f_c')`` of the re-id model on the SR batch, for G's terms; once per step.

        The graph reaches G only. A frozen re-id model runs as the step left it
        (normalisation in inference mode); one the step also trains runs the same
        way, through a forward with detached parameters, so G's ID and critic terms
        see the same model either way and never train the re-id model (its own
        training is :func:`harness.steps.finetune_reid_terms`).
        """
        if self._reid_on_sr is None:
            reid, x_sr = self.models["reid"], self.sr()
            if self.reid_is_trained():
                with inference_mode_layers(reid):
                    self._reid_on_sr = forward_without_param_grad(reid, x_sr)
            else:
                self._reid_on_sr = reid(x_sr)
        return self._reid_on_sr

    def disc_on_sr(self, disc: str = "D") -> tuple[Tensor, Tensor]:
        """``(logit, f_d')`` of a discriminator on the SR batch, graph kept; once per step.

        D is frozen in the G step, so the gradient flows through it to the SR
        image without accumulating on D's parameters.
        """
        if disc not in self._disc_on_sr:
            self._disc_on_sr[disc] = self.models[disc](self.sr())
        return self._disc_on_sr[disc]

    def real_reid_features(self) -> Tensor:
        """``f_c`` of the real HR batch: no gradient, re-id untouched, once per iteration."""
        if self._real_reid is None:
            self._real_reid = observe(self.models["reid"], self.batch.x_hr)[1]
        return self._real_reid

    def real_disc_features(self, disc: str = "D") -> Tensor:
        """``f_d`` of the real HR batch under the *current* D: recomputed only when D changes."""
        module = self.models[disc]
        version = tuple(t._version for t in (*module.parameters(), *module.buffers()))
        cached = self._real_disc.get(disc)
        if cached is None or cached[0] != version:
            cached = self._real_disc[disc] = (version, observe(module, self.batch.x_hr)[1])
        return cached[1]
