"""Bad plugins and numerical faults fail early, clearly, and lose nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from harness import ProtocolConfig, Regulariser, Step, hookimpl
from harness.data.mlr import draw_query_ratios
from harness.errors import NumericalError, PluginError
from harness.registry import Registry
from harness.run import resolve_config, run_experiment


def _registry_with(plugin: object) -> Registry:
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


@pytest.fixture(scope="module")
def faulty():
    return _registry_with(Faulty())


def _run(registry, tmp_path, **values):
    config = resolve_config({"preset": "smoke", "reid_iters": 1, "sr_iters": 4, **values}, registry)
    return run_experiment(config, tmp_path / "run", registry, echo=lambda s: None)


def test_sr_of_wrong_size_is_caught_before_training(faulty, tmp_path):
    with pytest.raises(PluginError, match=r"sr 'wrong-size' \(plugin 'faulty'\) broke its contract: expected .*\(2, 3, 32, 16\)"):
        _run(faulty, tmp_path, sr="wrong-size")
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_factory_that_raises_names_the_plugin(faulty, tmp_path):
    with pytest.raises(PluginError, match=r"sr 'raises' \(plugin 'faulty'\) failed to build: ZeroDivisionError"):
        _run(faulty, tmp_path, sr="raises")


def test_reid_without_feature_output_is_caught(faulty, tmp_path):
    with pytest.raises(PluginError, match=r"reid 'logits-only'.*expected \(logits, f_c\) in train mode"):
        _run(faulty, tmp_path, reid="logits-only")


def test_nan_loss_stops_with_step_term_and_iteration(faulty, tmp_path):
    with pytest.raises(NumericalError, match=r"loss term 'mse' of step 'G' first became non-finite at iteration 3"):
        _run(faulty, tmp_path, reg="nan-after", sr="srgan", log_every=1, ckpt_every=1)
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-sr-*.pt"))
    assert ckpts and ckpts[-1] == "ckpt-sr-0000002.pt"  # the last one is from before the NaN
    import json

    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "running"


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    ratios=st.lists(st.sampled_from([1.5, 2.0, 2.5, 3.0, 4.0, 6.0]), min_size=1, max_size=4, unique=True),
    n=st.integers(1, 300),
)
def test_protocol_ratios_are_seeded_and_in_the_configured_set(seed, ratios, n):
    protocol = ProtocolConfig(ratios=tuple(ratios), seed=seed)
    drawn = draw_query_ratios(n, protocol)
    assert drawn == draw_query_ratios(n, ProtocolConfig(ratios=tuple(ratios), seed=seed))
    assert set(drawn) <= {float(r) for r in ratios}


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
    batch = TrainBatch(torch.rand(2, 3, 4, 2), torch.rand(2, 3, 8, 4), torch.zeros(2, dtype=torch.long), 2.0)
    runner.run(step, StepContext(batch, models, RunConfig()))
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in g.parameters()))
    assert float(norm) <= 1e-3 * 1.001
