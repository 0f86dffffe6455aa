"""Helpers shared by several test files (not tests themselves).

* a smoke-preset trainer on the synthetic data, and state snapshots to compare
  (test_freezing, test_schedule, test_steps, test_train, test_contracts);
* ``Faulty``: a plugin whose components break their contracts or go NaN
  (test_contracts, test_train).

The tiny inline G / re-id / D and ``make``/``batch`` live in test_regularisers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness import Regulariser, RunConfig, Step, hookimpl
from harness.data.prepare import prepare_data
from harness.models import build_models
from harness.registry import Registry
from harness.run import resolve_config
from harness.train import Trainer

# --------------------------------------------------------------------------
# A smoke-preset trainer on the synthetic data
# --------------------------------------------------------------------------


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
# A plugin that breaks its contract or goes NaN
# --------------------------------------------------------------------------


def registry_with(plugin: object) -> Registry:
    """The built-ins and ``plugin``, registered as 'faulty'."""
    reg = Registry()
    reg.load_entry_points(autoload=False)
    reg.register_plugin(plugin, "faulty")
    return reg


class WrongSizeSR(nn.Module):
    def forward(self, x, out_size):
        return x  # forgets to upscale


class LogitsOnlyReid(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))  # no (logits, f_c) tuple


class NaNAfter(Regulariser):
    """A G step whose loss turns NaN from its third call on."""

    def __init__(self):
        self.calls = 0

    def schedule(self, config):
        def loss(ctx):
            self.calls += 1
            mse = F.mse_loss(ctx.sr(), ctx.batch.x_hr)
            return {"mse": mse * float("nan") if self.calls >= 3 else mse}

        return [Step("G", ("G",), loss)]


class Faulty:
    @hookimpl
    def harness_register_sr(self, registry):
        registry.add("wrong-size", lambda config: WrongSizeSR(), "returns LR images")
        registry.add("raises", lambda config: 1 / 0, "its factory raises")

    @hookimpl
    def harness_register_reid(self, registry):
        registry.add("logits-only", lambda config, n: LogitsOnlyReid(n), "breaks the contract")

    @hookimpl
    def harness_register_regularisers(self, registry):
        registry.add("nan-after", lambda config: NaNAfter(), "goes NaN")
