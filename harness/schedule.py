"""Running one Step of a regulariser's schedule: freeze, forward, backward, step.

Kept apart from the training loop so tests (and plugin authors) can run a
single step on a tiny problem and inspect which parameters moved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from harness.config import RunConfig
from harness.context import StepContext
from harness.distributed import average_gradients
from harness.freezing import buffers_restored, set_trainable
from harness.steps import Step


def default_learning_rates(config: RunConfig) -> dict[str, float]:
    """The learning rate of a module a step names without giving one.

    G at ``--lr``; the re-id model, when a step fine-tunes it, at a tenth of its
    stage-0 rate (it must stay close to the model the HR gallery is embedded
    with); anything else (a regulariser's own networks) at ``--lr``.
    """
    return {"G": config.lr, "reid": config.lr_reid * 0.1, "default": config.lr}


def make_optimizer(
    step: Step, models: Mapping[str, nn.Module], default_lr: Mapping[str, float]
) -> torch.optim.Optimizer | None:
    """One Adam per step, over its trainable modules, with the step's own settings."""
    groups = []
    for name in step.trainable:
        params = [p for p in models[name].parameters()]
        if not params:
            continue
        lr = step.lr.get(name, default_lr.get(name, default_lr.get("default", 1e-4)))
        groups.append(
            {
                "params": params,
                "lr": lr,
                "weight_decay": step.weight_decay.get(name, 0.0),
                "name": name,
            }
        )
    if not groups:
        return None
    return torch.optim.Adam(groups, betas=step.betas)


#: the module whose gradient the diagnostics decompose: every SR stage trains it
GENERATOR = "G"


def flat_norm(grads: Iterable[Tensor | None]) -> Tensor:
    """The L2 norm of a list of gradients taken as one vector (``None``: no gradient)."""
    squares = [g.float().pow(2).sum() for g in grads if g is not None]
    return torch.stack(squares).sum().sqrt() if squares else torch.zeros(())


def gradient_shares(terms: Mapping[str, Tensor], params: list[Tensor]) -> dict[str, Tensor]:
    """``||d term / d params|| / ||d total / d params||`` for every term (no host sync).

    Why: weights alone say nothing about which term drives G (a small weight on a
    steep term can dominate); this says how much of G's update each term is. The
    shares need not sum to 1: terms that pull against each other each count their
    own magnitude. One extra backward per term, on the graph the update will use
    (kept with ``retain_graph``), so the update itself is untouched.
    """
    if not params:
        return {}
    per_term: dict[str, list[Tensor | None]] = {}
    for name, term in terms.items():
        if term.requires_grad:
            per_term[name] = list(
                torch.autograd.grad(term.float(), params, retain_graph=True, allow_unused=True)
            )
        else:
            per_term[name] = [None] * len(params)
    total = [
        sum((grads[i] for grads in per_term.values() if grads[i] is not None), torch.zeros_like(p))
        for i, p in enumerate(params)
    ]
    total_norm = flat_norm(total).clamp_min(1e-30)
    return {name: flat_norm(grads) / total_norm for name, grads in per_term.items()}


class StepRunner:
    """Executes steps with freezing, optional autocast, clipping and NaN checks."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        steps: list[Step],
        default_lr: Mapping[str, float],
        amp_dtype: torch.dtype | None = None,
        grad_clip: float | None = None,
    ):
        self.models = models
        self.steps = steps
        self.optimizers = {s.name: make_optimizer(s, models, default_lr) for s in steps}
        self.amp_dtype = amp_dtype
        self.grad_clip = grad_clip
        #: what the last diagnosed iteration measured (``grad_share/<term>`` and the steps' own)
        self.diagnostics: dict[str, Tensor] = {}

    def run(
        self, step: Step, ctx: StepContext, iteration: int = 0, diagnose: bool = False
    ) -> dict[str, float]:
        """One update; returns the loss terms as tensors' values (no host sync if unused).

        ``diagnose`` (log iterations only): before the backward, measure what each
        term contributes to the generator's gradient (:func:`gradient_shares`) and
        run the step's own ``diagnose``; the results land in ``self.diagnostics``.
        The update itself is the same with or without it, bit for bit.
        """
        set_trainable(self.models, step.trainable)
        ctx.begin_step()
        optimizer = self.optimizers[step.name]
        for module in self.models.values():  # no gradient outlives the step that made it
            for p in module.parameters():
                p.grad = None
        device_type = ctx.batch.x_hr.device.type
        autocast = (
            torch.autocast(device_type=device_type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        frozen = [m for name, m in self.models.items() if name not in step.trainable]
        with buffers_restored(frozen, only_changed=True):
            with autocast:
                terms = dict(step.loss(ctx))
            if not terms:
                raise ValueError(f"step {step.name!r} returned no loss terms")
            total: Tensor = sum(t.float() for t in terms.values())  # type: ignore[assignment]
            if diagnose and total.requires_grad:
                self._diagnose(step, ctx, terms)
            if total.requires_grad:
                total.backward()
        if optimizer is not None:
            average_gradients(p for g in optimizer.param_groups for p in g["params"])
            if self.grad_clip:
                params = [p for g in optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            optimizer.step()
        return {f"{step.name}/{k}": v.detach() for k, v in terms.items()}  # type: ignore[return-value]

    def _diagnose(self, step: Step, ctx: StepContext, terms: Mapping[str, Tensor]) -> None:
        if GENERATOR in step.trainable:
            params = [p for p in self.models[GENERATOR].parameters() if p.requires_grad]
            for name, share in gradient_shares(terms, params).items():
                self.diagnostics[f"grad_share/{name}"] = share
        if step.diagnose is not None:
            self.diagnostics.update(step.diagnose(ctx, terms))

    def run_iteration(
        self,
        ctx: StepContext,
        iteration: int = 0,
        diagnose: bool = False,
        steps: list[Step] | None = None,
    ) -> dict[str, Tensor]:
        """Every step (of ``steps``, default all) once, in order, on one batch.

        The SR batch is computed first, with G in training mode and outside any
        step, so G's own state (if it has any) moves once per iteration whatever
        step first reads ``ctx.sr()``.
        """
        ctx.sr()
        self.diagnostics = {}
        out: dict[str, Tensor] = {}
        for step in self.steps if steps is None else steps:
            out.update(self.run(step, ctx, iteration, diagnose))
        return out

    def state_dict(self) -> dict:
        return {k: (o.state_dict() if o is not None else None) for k, o in self.optimizers.items()}

    def load_state_dict(self, state: Mapping) -> None:
        for name, opt in self.optimizers.items():
            if opt is not None and state.get(name) is not None:
                opt.load_state_dict(state[name])
