"""Built-in plugin: the procedural pedestrian dataset, the default of every run."""

from __future__ import annotations

from harness import Option, RunConfig, hookimpl
from harness.components import ReidDataset


def _synthetic(root: str | None, config: RunConfig) -> ReidDataset:
    from harness.data.synthetic import synthetic_dataset

    return synthetic_dataset(root, config)


@hookimpl
def harness_register_datasets(registry) -> None:
    registry.add(
        "synthetic",
        _synthetic,
        "procedural pedestrians (no download): id groups differing only in fine detail, "
        "cameras with own background, lighting and viewpoint",
        options={
            "synth_train_ids": Option(64, "training identities"),
            "synth_test_ids": Option(64, "test identities (query + gallery)"),
            "synth_cameras": Option(4, "cameras (>= 2); camera 0 gives the LR queries"),
            "synth_images_per_camera": Option(4, "images per identity per camera"),
            "synth_seed": Option(0, "generator seed, combined with the run's seed"),
        },
    )
