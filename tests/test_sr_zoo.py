"""The SR zoo (plugins/sr/zoo.py): spandrel architectures as SR backbones, and --sr-weights."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner
from crossres_plugins.sr.bicubic import bicubic_resize
from crossres_plugins.sr.zoo import EXCLUDED, ZOO, ZooSR, auto_scale, pad_to

from harness import ConfigError, PluginError, RunConfig
from harness.cli import main
from harness.contracts import check_sr_model

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = RunConfig(preset="smoke", height=32, width=16, hr_height=32, hr_width=16)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_name_keeps_the_sr_contract_at_the_smoke_size(registry, name):
    passed = check_sr_model(registry, name, SMOKE)
    assert any("ratios 2, 2.5, 3, 4" in line for line in passed), passed


def test_every_spandrel_architecture_is_offered_or_excluded_with_a_reason():
    from spandrel import MAIN_REGISTRY

    ids = {support.architecture.id for support in MAIN_REGISTRY.architectures()}
    offered = {entry.arch for entry in ZOO.values()}
    assert not offered & set(EXCLUDED), offered & set(EXCLUDED)
    assert ids - offered - set(EXCLUDED) == set(), "a spandrel architecture nobody decided on"
    assert set(EXCLUDED) <= ids and all(len(why) > 10 for why in EXCLUDED.values())


def test_sizes_follow_the_preset(registry):
    def params(preset: str) -> int:
        from harness.run import resolve_config

        config = resolve_config({"preset": preset, "sr": "rcan", "device": "cpu"}, registry)
        model = registry.lookup("sr", "rcan").factory(config)
        return sum(p.numel() for p in model.parameters())

    assert params("smoke") < params("cpu") < params("paper")


def test_a_model_built_for_scale_4_serves_x2_through_its_own_scale():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 48, 3, padding=1), torch.nn.PixelShuffle(4))
    x = torch.rand(2, 3, 16, 8)
    g = ZooSR(net, 4, gate=1.0).eval()
    with torch.no_grad():
        native = net(x)
        assert torch.allclose(
            g(x, (64, 32)), native.clamp(0, 1), atol=1e-6
        )  # its own ratio: the net itself
        y2 = g(x, (32, 16))  # ratio 2: the x4 detail over bicubic, resized onto the HR size
        want = bicubic_resize(x, (32, 16)) + bicubic_resize(
            native - bicubic_resize(x, (64, 32)), (32, 16)
        )
        assert torch.allclose(y2, want.clamp(0, 1), atol=1e-6)
        g.gate.zero_()
        assert torch.equal(
            g(x, (40, 20)), bicubic_resize(x, (40, 20)).clamp(0, 1)
        )  # gate 0: bicubic


def test_padding_meets_window_multiples_and_minimum():
    x = torch.rand(1, 3, 11, 6)
    assert tuple(pad_to(x, 16, 8, False).shape[-2:]) == (16, 16)
    assert tuple(pad_to(x, 0, 4, True).shape[-2:]) == (12, 12)
    assert pad_to(x, 0, 1, False) is x


def test_batchnorm_generators_are_refused():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 48, 3, padding=1), torch.nn.BatchNorm2d(48), torch.nn.PixelShuffle(4)
    )
    with pytest.raises(PluginError, match="BatchNorm"):
        ZooSR(net, 4)


def test_auto_scale_is_the_largest_ratio_rounded_up():
    assert auto_scale(SMOKE) == 4
    assert auto_scale(SMOKE.replace(protocol=SMOKE.protocol.__class__(ratios=(2.0, 2.5)))) == 3


def test_list_shows_the_zoo_as_one_resolver_line_and_its_options():
    out = CliRunner().invoke(main, ["list"]).output
    lines = [line for line in out.splitlines() if "spandrel SR zoo" in line]
    assert len(lines) == 1 and lines[0].strip().startswith("<name>") and "[sr-zoo]" in lines[0]
    verbose = CliRunner().invoke(main, ["list", "--verbose"]).output
    assert "n_resgroups" in verbose and "sr_scale" in verbose


@pytest.mark.parametrize(
    "name, message",
    [
        ("rcam", "Did you mean 'rcan'"),
        ("DnCNN", "not offered as an SR model: a denoiser"),
        ("dat", "BatchNorm"),
    ],
)
def test_unknown_or_excluded_names_are_one_line_errors(name, message):
    result = CliRunner().invoke(main, ["run", "--preset", "smoke", "--sr", name])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_spandrel_ids_resolve_in_any_case(registry):
    entry = registry.lookup("sr", "SwinIR")
    assert entry.plugin == "sr-zoo"
    model = entry.factory(SMOKE.replace(sr="SwinIR"))
    assert isinstance(model, ZooSR) and model.scale == 4


# --------------------------------------------------------------------------- --sr-weights


def tiny_rcan(scale: int = 2):
    from spandrel.architectures.RCAN import RCAN

    torch.manual_seed(5)
    return RCAN(scale=scale, n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4)


@pytest.fixture
def rcan_file(tmp_path):
    path = tmp_path / "rcan_x2.pth"
    net = tiny_rcan()
    torch.save(
        {"params_ema": net.state_dict()}, path
    )  # BasicSR's container, as published files are
    return path, net


def test_sr_weights_load_any_recognised_checkpoint_and_say_what_it_was(registry, rcan_file):
    path, net = rcan_file
    model = registry.lookup("sr", "rcan").factory(SMOKE.replace(sr="rcan", sr_weights=str(path)))
    record = model.loaded_weights
    assert record["architecture"] == "RCAN" and record["scale"] == 2
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.scale == 2 and model.gate.item() == 1.0
    for key, value in net.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value), key
    x = torch.rand(2, 3, 16, 8)
    with torch.no_grad():  # at its own ratio the loaded model is the published one
        assert torch.allclose(
            model.eval()(x, (32, 16)), net.eval()(x.clone()).clamp(0, 1), atol=1e-5
        )


def test_sr_weights_read_safetensors(registry, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "rcan.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_rcan(4).state_dict().items()}, str(path))
    model = registry.lookup("sr", "rcan").factory(SMOKE.replace(sr="rcan", sr_weights=str(path)))
    assert model.loaded_weights["scale"] == 4


def test_sr_weights_of_another_architecture_are_refused_in_one_line(registry, rcan_file):
    path, _ = rcan_file
    with pytest.raises(ConfigError, match=r"holds a RCAN model, but --sr swinir is SwinIR") as info:
        registry.lookup("sr", "swinir").factory(SMOKE.replace(sr="swinir", sr_weights=str(path)))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="x2 model, but -o sr_scale=4"):
        registry.lookup("sr", "rcan").factory(
            SMOKE.replace(sr="rcan", sr_weights=str(path), options={"sr_scale": 4})
        )


def test_sr_weights_never_unpickle_code(registry, tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "hook": ZooSR}, path)  # a class: needs full unpickling
    with pytest.raises(ConfigError, match="weights_only=True"):
        registry.lookup("sr", "rcan").factory(SMOKE.replace(sr="rcan", sr_weights=str(path)))
    junk = tmp_path / "notes.pth"
    torch.save({"weight": torch.zeros(3)}, junk)
    with pytest.raises(ConfigError, match="recognises no architecture"):
        registry.lookup("sr", "rcan").factory(SMOKE.replace(sr="rcan", sr_weights=str(junk)))


def test_sr_weights_on_a_model_that_loads_none_is_an_error(rcan_file, tmp_path):
    path, _ = rcan_file
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--preset",
            "smoke",
            "--sr",
            "srgan",
            "--sr-weights",
            str(path),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2 and "loads no pretrained weights" in result.output, result.output


def test_warm_start_cache_is_keyed_on_the_checkpoint_content(registry, rcan_file, tmp_path):
    from harness.cache import warmup_key

    path, _ = rcan_file
    copy = tmp_path / "copy.pth"
    copy.write_bytes(path.read_bytes())
    cpu = torch.device("cpu")
    config = SMOKE.replace(sr="rcan", sr_weights=str(path))
    same = warmup_key(config, registry, cpu) == warmup_key(
        config.replace(sr_weights=str(copy)), registry, cpu
    )
    other = tmp_path / "other.pth"
    torch.save(tiny_rcan(4).state_dict(), other)
    assert same
    assert warmup_key(config, registry, cpu) != warmup_key(
        config.replace(sr_weights=str(other)), registry, cpu
    )
    assert warmup_key(config, registry, cpu) != warmup_key(
        config.replace(sr_weights=None), registry, cpu
    )


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_rcan_with_intact_runs_end_to_end(tmp_path):
    out = tmp_path / "rcan"
    result = CliRunner().invoke(
        main, ["run", "--preset", "smoke", "--sr", "rcan", "--reg", "intact", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and "psnr" in metrics["queries"]["sr"]
    config = json.loads((out / "config.json").read_text())
    assert (
        config["config"]["sr"] == "rcan" and config["config"]["options"]["n_resgroups"] == 1
    )  # the smoke size


@pytest.mark.slow
def test_swinir_trains_under_a_gan_schedule(tmp_path):
    """SwinIR's relative-position index (an integer buffer) is saved by G's graph, which is
    built before the D step; restoring G's untouched buffers after the D step must not write
    it (that moved its version and broke the G step's backward)."""
    out = tmp_path / "swinir"
    result = CliRunner().invoke(
        main, ["run", "--preset", "smoke", "--sr", "swinir", "--reg", "gan", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_sr_weights_are_recorded_in_config_json(rcan_file, tmp_path):
    path, _ = rcan_file
    out = tmp_path / "pretrained"
    result = CliRunner().invoke(
        main,
        ["run", "--preset", "smoke", "--sr", "rcan", "--sr-weights", str(path), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())["sr_weights"]
    assert record["architecture"] == "RCAN" and record["scale"] == 2
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
