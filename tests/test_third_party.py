"""Third-party plugins: the author's kit (harness.testing), check-plugin, and a real install.

The kit's fixtures reach these tests the way they reach a plugin author's:
through the ``pytest11`` entry point, with no import. The slow test installs
``examples/harness-rrdb`` into a fresh virtual environment and drives the
harness from there, entry points and all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from harness import PluginError, Record, Regulariser, ReidDataset, Step, UnknownNameError, hookimpl
from harness.cli import main
from harness.data.mlr import build_mlr
from harness.testing import (
    check_component,
    check_dataset,
    check_regulariser,
    check_reid_model,
    check_sr_model,
    find_components,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "harness-rrdb"


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------
# The fixtures
# --------------------------------------------------------------------------


def test_plugin_manager_holds_only_the_builtins(plugin_manager):
    assert set(plugin_manager.plugins.values()) == {"crossres-harness"}
    assert "srgan" in plugin_manager.names("sr") and "intact" in plugin_manager.names("regulariser")


def test_tiny_config_is_the_smoke_preset_on_cpu(tiny_config):
    assert (tiny_config.preset, tiny_config.device) == ("smoke", "cpu")
    assert (tiny_config.height, tiny_config.width) == (32, 16)
    assert tiny_config.option("sr_blocks") == 2  # the preset's value for a selected plugin


def test_tiny_dataset_splits_and_mlr(tiny_dataset):
    assert {r.pid for r in tiny_dataset.train} == {0, 1, 2, 3}
    assert {r.pid for r in tiny_dataset.query} == {r.pid for r in tiny_dataset.gallery} == {4, 5, 6}
    assert {r.camid for r in tiny_dataset.query} == {0}
    assert all(
        r.image.shape == (32, 16, 3) and r.image.dtype.name == "uint8" for r in tiny_dataset.train
    )
    assert len(build_mlr(tiny_dataset, _protocol()).query) == 3


def _protocol():
    from harness import ProtocolConfig

    return ProtocolConfig()


class _TinyData:
    def __init__(self, dataset: ReidDataset):
        self.dataset = dataset

    @hookimpl
    def harness_register_datasets(self, registry):
        registry.add("tiny", lambda root, config: self.dataset, "the kit's tiny dataset")


def test_register_inline_plugin_then_check_the_dataset(
    register_inline_plugin, tiny_config, tiny_dataset
):
    registry = register_inline_plugin(_TinyData(tiny_dataset), name="tiny-data")
    assert registry.lookup("dataset", "tiny").plugin == "tiny-data"
    passed = check_dataset(registry, "tiny", None, tiny_config)
    assert passed[0].startswith("dataset 'tiny' (plugin 'tiny-data'): ")
    assert any("(train 16, query 3, gallery 6)" in line for line in passed)


def test_register_inline_plugin_raises_when_a_hook_fails(register_inline_plugin):
    class Broken:
        @hookimpl
        def harness_register_sr(self, registry):
            raise RuntimeError("no weights here")

    with pytest.raises(
        PluginError, match=r"inline plugin 'broken' failed to register: .*no weights here"
    ):
        register_inline_plugin(Broken(), name="broken")


# --------------------------------------------------------------------------
# The checks pass on the built-ins ...
# --------------------------------------------------------------------------

BUILTINS = [
    ("sr", "bicubic", "has no parameters"),
    ("sr", "srgan", "for ratios 2, 2.5, 3, 4 in train and eval mode"),
    ("discriminator", "srgan", "f_d (4, 32)"),
    ("reid", "resnet18", "f_c (4, 512)"),
    (
        "regulariser",
        "none",
        "step 'G' gives finite scalar terms id, mse; it changes G and nothing else",
    ),
    (
        "regulariser",
        "intact",
        "step 'assoc' gives finite scalar terms e, intact; it changes phi, sigma",
    ),
    ("dataset", "synthetic", "two builds give the same records"),
]


@pytest.mark.parametrize("kind,name,expected", BUILTINS, ids=[f"{k}-{n}" for k, n, _ in BUILTINS])
def test_checks_pass_on_builtins(plugin_manager, tiny_config, kind, name, expected):
    passed = check_component(plugin_manager, kind, name, tiny_config)
    plugin = plugin_manager.lookup(kind, name).plugin
    assert all(line.startswith(f"{kind} {name!r} (plugin {plugin!r}): ") for line in passed)
    assert any(expected in line for line in passed), passed


def test_check_component_refuses_an_unknown_kind(plugin_manager, tiny_config):
    with pytest.raises(UnknownNameError, match="unknown component kind 'vocoder'"):
        check_component(plugin_manager, "vocoder", "x", tiny_config)


# --------------------------------------------------------------------------
# ... and fail, naming the plugin, on broken ones
# --------------------------------------------------------------------------


class HalfSize(nn.Module):
    def forward(self, x_lr, out_size):
        return F.interpolate(x_lr, size=(out_size[0] // 2, out_size[1]), mode="bilinear")


class NoisyEval(nn.Module):
    """Right shape, but random in eval mode: evaluation would not be reproducible."""

    def forward(self, x_lr, out_size):
        y = F.interpolate(x_lr, size=tuple(out_size), mode="bilinear")
        return (y + 0.01 * torch.rand_like(y)).clamp(0, 1)


class LogitsOnly(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        f = x.mean(dim=(2, 3))
        return self.fc(f) if self.training else f


class Sneaky(Regulariser):
    """Its G step quietly edits ``aux``, a module it does not name as trainable."""

    def __init__(self, config):
        pass

    def build(self, ctx):
        return {"aux": nn.Linear(2, 2)}

    def loss(self, ctx):
        with torch.no_grad():
            ctx["aux"].weight.add_(1.0)
        return {"mse": F.mse_loss(ctx.sr(), ctx.batch.x_hr)}

    def schedule(self, config):
        return [Step("G", ("G",), self.loss)]


class BrokenPlugin:
    @hookimpl
    def harness_register_sr(self, registry):
        registry.add("half-size", lambda config: HalfSize(), "returns the wrong height")
        registry.add("noisy", lambda config: NoisyEval(), "random in eval mode")

    @hookimpl
    def harness_register_reid(self, registry):
        registry.add("logits-only", lambda config, n: LogitsOnly(n), "forgets f_c in training")

    @hookimpl
    def harness_register_regularisers(self, registry):
        registry.add("sneaky", Sneaky, "updates a module it does not name")

    @hookimpl
    def harness_register_datasets(self, registry):
        registry.add("bad-pids", _bad_pids, "identities given as strings")


def _bad_pids(root, config):
    import numpy as np

    image = np.zeros((8, 4, 3), np.uint8)
    records = [Record(image, "alice", 0), Record(image, "bob", 1)]
    return ReidDataset("bad", train=records, query=records[:1], gallery=records[1:])


@pytest.fixture
def broken(register_inline_plugin):
    return register_inline_plugin(BrokenPlugin(), name="broken")


def test_sr_of_the_wrong_size_is_named(broken, tiny_config):
    with pytest.raises(PluginError) as err:
        check_sr_model(broken, "half-size", tiny_config)
    message = str(err.value)
    assert message.startswith("sr 'half-size' (plugin 'broken') broke its contract: expected ")
    assert "(4, 3, 32, 16)" in message and "got tensor (4, 3, 16, 16)" in message


def test_sr_that_is_random_in_eval_mode_is_named(broken, tiny_config):
    with pytest.raises(
        PluginError, match=r"sr 'noisy' \(plugin 'broken'\).*two eval-mode forwards"
    ):
        check_sr_model(broken, "noisy", tiny_config)


def test_reid_returning_only_logits_in_training_is_named(broken, tiny_config):
    with pytest.raises(
        PluginError,
        match=r"reid 'logits-only' \(plugin 'broken'\) broke its contract: "
        r"expected \(logits, f_c\) "
        r"in training mode, got tensor \(4, 5\)",
    ):
        check_reid_model(broken, "logits-only", tiny_config)


def test_regulariser_changing_an_unnamed_module_is_named(broken, tiny_config):
    with pytest.raises(
        PluginError,
        match=r"regulariser 'sneaky' \(plugin 'broken'\) broke its contract: expected step 'G' to "
        r"change only the modules it names as trainable \('G',\), got changes to \['aux'\]",
    ):
        check_regulariser(broken, "sneaky", tiny_config)


def test_dataset_with_non_integer_ids_is_named(broken, tiny_config):
    with pytest.raises(
        PluginError, match=r"dataset 'bad-pids' \(plugin 'broken'\).*train\[0\]\.pid"
    ):
        check_dataset(broken, "bad-pids", None, tiny_config)


def test_find_components_expands_a_plugin_name_and_suggests(plugin_manager):
    found = find_components(plugin_manager, "reg-intact")
    assert [(e.kind, e.name) for e in found] == [
        ("regulariser", "intact"),
        ("regulariser", "intact-nobridge"),
    ]
    assert [e.kind for e in find_components(plugin_manager, "srgan")] == ["sr", "discriminator"]
    with pytest.raises(UnknownNameError, match=r"unknown component or plugin 'intcat'.*'intact'"):
        find_components(plugin_manager, "intcat")


# --------------------------------------------------------------------------
# harness check-plugin
# --------------------------------------------------------------------------


def test_check_plugin_prints_what_passed():
    result = CliRunner().invoke(main, ["check-plugin", "srgan"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("ok  sr 'srgan' (plugin 'sr-srgan'): ") for line in lines)
    assert any(
        line.startswith("ok  discriminator 'srgan' (plugin 'disc-srgan'): ") for line in lines
    )
    assert all(line.startswith("ok  ") for line in lines)


class _BatchNormSR(nn.Module):
    """Keeps the SR contract, but with BatchNorm in G."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.out = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x, out_size):
        up = F.interpolate(x, size=out_size, mode="bicubic", align_corners=False)
        y = up + self.out(self.body(up))
        return y if self.training else y.clamp(0, 1)


class _BatchNormPlugin:
    @hookimpl
    def harness_register_sr(self, registry):
        registry.add("bn-sr", lambda config: _BatchNormSR(), "an SR model with BatchNorm")


def test_check_plugin_warns_about_batchnorm_in_an_sr_model(register_inline_plugin, monkeypatch):
    """The SR zoo refuses BatchNorm architectures; a third party's is checked, with a warning."""
    import harness.cli

    registry = register_inline_plugin(_BatchNormPlugin(), name="bn-plugin")
    monkeypatch.setattr(harness.cli, "_registry", lambda: registry)
    result = CliRunner().invoke(main, ["check-plugin", "bn-sr"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, result.output
    assert "sr 'bn-sr'" in warned[0] and "BatchNorm (body.1)" in warned[0]
    assert "colour" in warned[0] and "bit-exact" in warned[0]
    assert any(line.startswith("ok  sr 'bn-sr'") for line in result.output.splitlines())
    # the built-ins have none
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["check-plugin", "srgan", "--kind", "sr"])
    assert result.exit_code == 0 and "warning:" not in result.output


def test_check_plugin_kind_narrows_and_unknown_exits_2():
    result = CliRunner().invoke(main, ["check-plugin", "srgan", "--kind", "discriminator"])
    assert result.exit_code == 0 and "ok  sr " not in result.output
    result = CliRunner().invoke(main, ["check-plugin", "nosuch"])
    assert result.exit_code == 2
    assert "error: unknown component or plugin 'nosuch'" in result.output


# --------------------------------------------------------------------------
# A real install into a fresh environment
# --------------------------------------------------------------------------


def _fresh_env(tmp_path: Path) -> Path:
    """A venv that sees this environment's packages through a .pth file (no download).

    ``--system-site-packages`` would not do: torch and friends live in the
    harness's own venv. ``site.addsitedir`` (not a bare path) so the .pth
    files in there run too, among them the editable install of the harness.
    """
    venv = tmp_path / "venv"
    has_pip = (Path(sysconfig.get_paths()["purelib"]) / "pip").is_dir()
    cmd = [sys.executable, "-m", "venv", str(venv)] + (["--without-pip"] if has_pip else [])
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot create a virtual environment here: {exc}")
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in outer)
    (Path(site) / "_harness_outer.pth").write_text(lines)
    return venv


def _run(venv: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [str(venv / "bin" / "python"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.mark.slow
def test_example_plugin_installs_into_a_fresh_venv_and_runs(tmp_path):
    venv = _fresh_env(tmp_path)
    src = (
        tmp_path / "harness-rrdb"
    )  # a copy: building writes build/ and egg-info beside the sources
    shutil.copytree(
        EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HARNESS_") and k != "PYTHONPATH"
    }
    env.update(
        OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg"
    )

    _run(
        venv,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        str(src),
        cwd=tmp_path,
        env=env,
    )
    site = next((venv / "lib").glob("python*/site-packages"))
    assert list(site.glob("harness_rrdb_example-*.dist-info")), "installed somewhere else"

    listing = _run(venv, "-m", "harness", "list", cwd=tmp_path, env=env).stdout
    for name in ("rrdb", "tiny-cnn", "perceptual-id"):
        assert re.search(rf"^  {re.escape(name)}\s+.*\[rrdb\]$", listing, re.M), listing
    assert "failed to load" not in listing

    run_dir = tmp_path / "run"
    _run(
        venv,
        "-m",
        "harness",
        "run",
        "--preset",
        "smoke",
        "--sr",
        "rrdb",
        "--reid",
        "tiny-cnn",
        "--reg",
        "perceptual-id",
        "-o",
        "rrdb_blocks=1",
        "--out",
        str(run_dir),
        cwd=tmp_path,
        env=env,
    )
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "complete"
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["options"]["rrdb_blocks"] == 1 and config["options"]["lambda_f"] == 1.0

    checked = _run(venv, "-m", "harness", "check-plugin", "rrdb", cwd=tmp_path, env=env).stdout
    for label in ("sr 'rrdb'", "reid 'tiny-cnn'", "regulariser 'perceptual-id'"):
        assert f"ok  {label} (plugin 'rrdb'): " in checked, checked

    # The example's own tests get the kit's fixtures through pytest11 in that environment.
    tests = _run(venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=src, env=env).stdout
    assert re.search(r"\b\d+ passed\b", tests) and "failed" not in tests, tests
