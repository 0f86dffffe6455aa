"""harness.models and harness.weights: contract tests for the built-in model plugins (SR,
D, re-id: sizes, one meaning of ``f_c``, resizing to the re-id input size) and weights files.

Models are looked up through the registry built from the installed entry
points, so these tests also prove that registration works.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from crossres_plugins.reid.common import IMAGENET_MEAN, Normalize
from crossres_plugins.sr.srresnet import integer_scale, tail_scale
from crossres_plugins.sr.zoo import ZOO
from torch import nn

from harness import HarnessError, RunConfig, UnknownNameError
from harness.data.mlr import downsample
from harness.models import build_models
from harness.registry import get_registry
from harness.weights import load_reid_weights, save_reid_weights
from tests.helpers import smoke_config

HR = (32, 16)
CONFIG = RunConfig(
    height=HR[0],
    width=HR[1],
    options={"sr_blocks": 2, "sr_channels": 16, "disc_channels": 8, "disc_feat_dim": 24},
)
REID_NAMES = ("resnet18", "osnet_x0_25", "mobilenetv3_small_050")


def lr_of(size: tuple[int, int], ratio: float) -> tuple[int, int]:
    return (max(1, round(size[0] / ratio)), max(1, round(size[1] / ratio)))


def build(registry, kind: str, name: str, *args):
    return registry.lookup(kind, name).factory(CONFIG, *args)


@pytest.fixture(scope="module")
def reid_models(registry):
    torch.manual_seed(0)
    return {name: build(registry, "reid", name, 5) for name in REID_NAMES}


# -- registration ----------------------------------------------------------------


def test_builtin_names_are_registered(registry):
    assert {"bicubic", "srgan"} <= set(registry.names("sr"))
    assert "srgan" in registry.names("discriminator")
    assert {"resnet18", "resnet34", "resnet50", "osnet_x0_25", "osnet_x1_0"} <= set(
        registry.names("reid")
    )
    assert registry.lookup("sr", "bicubic").summary == "bicubic upsampling, no learning"
    assert registry.lookup("sr", "srgan").options["sr_blocks"].default == 8
    assert registry.lookup("discriminator", "srgan").options["disc_feat_dim"].default == 256


def test_resolvers_find_zoo_names_and_refuse_others(registry):
    assert registry.lookup("reid", "mobilenetv3_small_050").plugin == "reid-timm"
    assert registry.lookup("reid", "torchreid.resnet50").plugin == "reid-torchreid"
    with pytest.raises(UnknownNameError, match="any timm model name"):
        registry.lookup("reid", "resnet_does_not_exist")


# -- super-resolution ------------------------------------------------------------


#: the SR zoo's architectures at every LR size take minutes: slow (test_sr_zoo checks each
#: at the smoke size in the fast lane)
SR_NAMES = [
    pytest.param(n, marks=pytest.mark.slow) if n in ZOO else n for n in get_registry().names("sr")
]


@pytest.mark.parametrize("name", SR_NAMES)
@pytest.mark.parametrize("lr", [lr_of(HR, 2), lr_of(HR, 3), lr_of(HR, 4), lr_of(HR, 2.5), (11, 5)])
def test_sr_contract(registry, name, lr):
    torch.manual_seed(0)
    model = build(registry, "sr", name)
    x = torch.rand(2, 3, *lr)
    for train in (True, False):
        model.train(train)
        y = model(x, HR)
        assert y.shape == (2, 3, *HR) and y.dtype == torch.float32
        assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0  # eval mode clamps


def test_bicubic_has_no_parameters_and_is_torch_bicubic(registry):
    model = build(registry, "sr", "bicubic").train()
    assert list(model.parameters()) == []
    x = torch.rand(3, 3, 8, 4)
    expected = F.interpolate(x, size=(32, 16), mode="bicubic", align_corners=False)
    assert torch.equal(model(x, (32, 16)), expected)
    assert torch.allclose(model(torch.full((1, 3, 5, 3), 0.25), (20, 11)), torch.tensor(0.25))


def test_untrained_srgan_is_exactly_bicubic(registry):
    torch.manual_seed(0)
    srgan, bicubic = build(registry, "sr", "srgan"), build(registry, "sr", "bicubic")
    for lr in (lr_of(HR, 2), lr_of(HR, 3), lr_of(HR, 4), lr_of(HR, 2.5), (11, 5)):
        x = torch.rand(2, 3, *lr)
        for train in (True, False):
            srgan.train(train), bicubic.train(train)
            assert torch.equal(srgan(x, HR), bicubic(x, HR))


def test_srgan_picks_native_tail_per_scale():
    assert integer_scale((16, 8), (32, 16)) == 2
    assert integer_scale((11, 5), (32, 16)) == 3  # round(32/3)=11, round(16/3)=5: native 33x15
    assert integer_scale((8, 4), (32, 16)) == 4
    assert integer_scale((13, 6), (32, 16)) is None  # ratio 2.5
    assert tail_scale((13, 6), (32, 16)) == 3
    assert tail_scale((20, 10), (32, 16)) == 2  # ratio 1.6: nearest tail from above is x2
    assert tail_scale((4, 2), (64, 32)) == 4  # ratio 16: largest tail, then resize


@pytest.mark.parametrize("lr,scale", [((16, 8), 2), ((11, 5), 3), ((8, 4), 4), ((13, 6), 3)])
def test_srgan_gradients_reach_head_body_and_the_used_tail(registry, lr, scale):
    torch.manual_seed(0)
    model = build(registry, "sr", "srgan").train()
    x, target = torch.rand(4, 3, *lr), torch.rand(4, 3, *HR)
    # at initialisation the zero last conv blocks all gradients but its own
    F.mse_loss(model(x, HR), target).backward()
    assert model.out.weight.grad.abs().sum() > 0
    assert model.head[0].weight.grad.abs().sum() == 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.zero_grad()
    F.mse_loss(model(x, HR), target).backward()
    for name, p in model.named_parameters():
        used = not name.startswith("tails.") or name.startswith(f"tails.{scale}.")
        grad = 0.0 if p.grad is None else float(p.grad.abs().sum())
        assert (grad > 0) == used, name


def test_srgan_options_size_the_network(registry):
    small = build(registry, "sr", "srgan")
    assert len(small.body) == 2 and small.head[0].out_channels == 16
    default = registry.lookup("sr", "srgan").factory(RunConfig(height=32, width=16))
    assert len(default.body) == 8 and default.head[0].out_channels == 64


# -- discriminators --------------------------------------------------------------


@pytest.mark.parametrize("name", get_registry().names("discriminator"))
@pytest.mark.parametrize("size", [HR, (64, 32), (17, 9)])
def test_discriminator_contract(registry, name, size):
    torch.manual_seed(0)
    model = build(registry, "discriminator", name)
    x = torch.rand(3, 3, *size, requires_grad=True)
    for train in (True, False):
        model.train(train)
        logit, f_d = model(x)
        assert logit.shape == (3,) and f_d.ndim == 2 and f_d.shape[0] == 3
        assert torch.isfinite(logit).all() and torch.isfinite(f_d).all()
    logit.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_srgan_discriminator_feature_dim_is_the_option(registry):
    _, f_d = build(registry, "discriminator", "srgan").eval()(torch.rand(2, 3, *HR))
    assert f_d.shape == (2, 24)


# -- re-id -----------------------------------------------------------------------


@pytest.mark.parametrize("name", REID_NAMES)
def test_reid_contract(reid_models, name):
    model = reid_models[name]
    x = torch.rand(4, 3, *HR)
    model.train()
    logits, f_c = model(x)
    assert logits.shape == (4, 5) and f_c.shape == (4, model.feature_dim)
    assert torch.isfinite(logits).all() and torch.isfinite(f_c).all()
    model.eval()
    with torch.no_grad():
        f = model(x)
        assert torch.equal(f, model(x))  # eval is deterministic
    assert isinstance(f, torch.Tensor) and f.shape == (4, model.feature_dim)
    assert torch.isfinite(f).all()


def test_bnneck_feature_choice_and_frozen_bias(reid_models):
    model = reid_models["resnet18"]
    x = torch.rand(4, 3, *HR)
    model.train()
    _, f_c = model(x)
    model.eval()
    with torch.no_grad():
        pooled = model.backbone(model.normalize(x)).mean(dim=(2, 3))
        assert torch.allclose(model(x), model.bnneck(pooled), atol=1e-6)  # eval: after the neck
    assert "bnneck.bias" in model.state_dict()
    assert "bnneck.bias" not in dict(model.named_parameters())  # set_trainable cannot unfreeze it
    assert model.classifier.bias is None
    assert (
        f_c.shape[1] == 512 and f_c.min() >= 0
    )  # train f_c: pooled ReLU features, before the neck


def test_normalisation_is_imagenet_mean_std():
    x = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(Normalize()(x), torch.zeros(1, 3, 2, 2), atol=1e-6)
    one = Normalize()(torch.ones(1, 3, 1, 1)).flatten()
    assert math.isclose(float(one[0]), (1 - 0.485) / 0.229, rel_tol=1e-6)


# -- weights ---------------------------------------------------------------------


class Opaque:
    """A class torch.save must pickle by reference: weights_only refuses it."""

    def __init__(self) -> None:
        self.weights = torch.zeros(2)


def tiny_reid(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(num_classes)
    return nn.ModuleDict(
        {
            "backbone": nn.Linear(4, 6),
            "bnneck": nn.BatchNorm1d(6),
            "classifier": nn.Linear(6, num_classes),
        }
    )


def test_weights_round_trip_gives_equal_outputs(reid_models, registry, tmp_path):
    source = reid_models["resnet18"].eval()
    path = save_reid_weights(source, tmp_path / "w" / "reid.pt")
    torch.manual_seed(123)
    target = build(registry, "reid", "resnet18", 5).eval()
    x = torch.rand(2, 3, *HR)
    with torch.no_grad():
        assert not torch.allclose(target(x), source(x))
        report = load_reid_weights(target, path)
        assert torch.equal(target(x), source(x))
    n = len(source.state_dict())
    assert report == {"loaded": n, "skipped": 0, "missing": 0, "unexpected": 0}


def test_classifier_of_another_id_count_is_skipped(reid_models, registry, tmp_path):
    source = reid_models["osnet_x0_25"].eval()
    path = save_reid_weights(source, tmp_path / "osnet.pt")
    target = build(registry, "reid", "osnet_x0_25", 9).eval()
    report = load_reid_weights(target, path)
    classifier = [k for k in target.state_dict() if ".classifier." in f".{k}"]
    assert classifier == ["classifier.weight"]  # the shared head's bias-free classifier
    assert report == {
        "loaded": len(target.state_dict()) - 1,
        "skipped": 1,
        "missing": 1,
        "unexpected": 0,
    }
    x = torch.rand(2, 3, *HR)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))  # eval features do not use the classifier
    assert target.classifier.weight.shape[0] == 9


@pytest.mark.slow
def test_raw_torchreid_state_dict_loads_into_the_wrapper(registry, tmp_path):
    from crossres_plugins.reid.torchreid_models import import_torchreid_models

    raw = import_torchreid_models().build_model("osnet_x0_25", 7, loss="triplet", pretrained=False)
    torch.save({"state_dict": raw.state_dict(), "epoch": 3}, tmp_path / "raw.pt")
    target = build(registry, "reid", "osnet_x0_25", 5)
    report = load_reid_weights(target, tmp_path / "raw.pt")
    trunk = [k for k in target.state_dict() if k.startswith("backbone.")]
    assert report["loaded"] == len(trunk)  # the whole trunk; the shared head starts fresh
    assert report["missing"] == len(target.state_dict()) - len(trunk)
    assert report["unexpected"] > 0  # torchreid's own FC and classifier, dropped by the wrapper
    for key in trunk:
        assert torch.equal(
            target.state_dict()[key], raw.state_dict()[key[len("backbone.model.") :]]
        )


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": sd},
        lambda sd: {"reid": sd, "step": torch.tensor(4)},
        lambda sd: {"models": {"reid": sd, "G": {}}, "iteration": 7},
        lambda sd: {"module." + k: v for k, v in sd.items()},
    ],
)
def test_common_containers_are_accepted(tmp_path, wrap):
    source, target = tiny_reid(), tiny_reid(num_classes=3)
    target.load_state_dict({k: v + 1 for k, v in source.state_dict().items()})
    torch.save(wrap(source.state_dict()), tmp_path / "w.pt")
    report = load_reid_weights(target, tmp_path / "w.pt")
    assert report["loaded"] == len(source.state_dict()) and report["skipped"] == 0
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Opaque()}, path)
    with pytest.raises(HarnessError) as err:
        load_reid_weights(tiny_reid(), path)
    text = str(err.value)
    assert f"refusing to unpickle code from {path}" in text
    assert f"torch.save(model.state_dict(), {path})" in text


def test_missing_file_and_nothing_matching_raise(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load_reid_weights(tiny_reid(), tmp_path / "absent.pt")
    torch.save({"other.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(HarnessError, match="nothing in .* matches"):
        load_reid_weights(tiny_reid(), tmp_path / "other.pt")
    torch.save({"epoch": 3, "name": "x"}, tmp_path / "meta.pt")
    with pytest.raises(HarnessError, match="holds no state_dict"):
        load_reid_weights(tiny_reid(), tmp_path / "meta.pt")


def test_backbone_shape_mismatch_is_an_error_not_a_skip(tmp_path):
    sd = tiny_reid().state_dict()
    sd["backbone.weight"] = torch.zeros(6, 5)
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(HarnessError, match=r"backbone.weight has shape \(6, 5\)"):
        load_reid_weights(tiny_reid(), tmp_path / "w.pt")


@pytest.mark.usefixtures("one_thread")
def test_reid_model_resizes_to_its_input_size(registry):
    config = smoke_config(registry, hr_size="64x32", height=32, width=16)
    models, _ = build_models(config, registry, num_classes=3)
    reid = models["reid"].eval()
    x = torch.rand(2, 3, 64, 32)
    small = F.interpolate(x, size=(32, 16), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(reid(x), reid(small))
    assert models["G"](downsample(x, 2.0, config.protocol), (64, 32)).shape[-2:] == (64, 32)


@pytest.mark.usefixtures("one_thread")
def test_generator_has_no_batchnorm(registry):
    generator = registry.lookup("sr", "srgan").factory(smoke_config(registry))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules())


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["resnet18", "osnet_x0_25"])
def test_f_c_is_the_pooled_feature_before_the_bnneck(registry, name):
    config = smoke_config(registry)
    torch.manual_seed(0)
    model = registry.lookup("reid", name).factory(config, 4).train()
    x = torch.rand(4, 3, *config.reid_size)
    _, f_c = model(x)
    pooled = model.backbone(model.normalize(x)).mean(dim=(2, 3))
    torch.testing.assert_close(f_c, pooled)
    assert model.bnneck.num_features == f_c.shape[1]
