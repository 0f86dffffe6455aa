"""The synthetic dataset: determinism, counts and labels, and the property it
exists for: ids of one group differ in fine detail that downsampling destroys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from crossres_plugins.data import synthetic as S

from harness import RunConfig
from harness.registry import Registry

SMALL = S.SynthSpec(train_ids=6, test_ids=5, cameras=3, images_per_camera=2, height=32, width=16)


def test_same_spec_same_pixels_and_seed_changes_them():
    a_train, a_test = S.generate(SMALL)
    b_train, b_test = S.generate(SMALL)
    assert np.array_equal(a_train.images, b_train.images)
    assert np.array_equal(a_test.images, b_test.images)
    other, _ = S.generate(S.SynthSpec(6, 5, 3, 2, 32, 16, seed=1))
    assert not np.array_equal(a_train.images, other.images)


def test_batch_size_does_not_change_pixels():
    cams = S._cameras(S._rng(0, 1), 3, (32, 16))
    whole = S._render_split(SMALL, 6, 2, cams, batch=256)
    pieces = S._render_split(SMALL, 6, 2, cams, batch=5)
    assert np.array_equal(whole.images, pieces.images)


@pytest.mark.parametrize("size", [(64, 32), (128, 64), (40, 24)])
def test_images_have_the_requested_size(size):
    train, _ = S.generate(S.SynthSpec(2, 2, 2, 1, *size))
    assert train.images.shape == (2 * 2 * 1, *size, 3)
    assert train.images.dtype == np.uint8
    # Not blank: a person is drawn over a background.
    assert train.images.std() > 10


def test_dataset_splits_counts_and_labels():
    ds = S.build_dataset(SMALL)
    assert ds.name == "synthetic" and ds.default_lr_cameras == (0,)
    assert not ds.single_gallery_shot and not ds.native_lr
    assert len(ds.train) == 6 * 3 * 2
    assert len(ds.query) == 5 * 3  # first image of each test id in each camera
    assert len(ds.gallery) == 5 * 3 * 1
    assert sorted({r.pid for r in ds.train}) == list(range(6))
    test_pids = {r.pid for r in ds.query}
    assert test_pids == {r.pid for r in ds.gallery} == set(range(6, 11))
    assert {r.camid for r in ds.train} == {0, 1, 2}
    record = ds.query[0]
    assert isinstance(record.image, np.ndarray) and record.image.shape == (32, 16, 3)


def test_factory_reads_size_seed_and_options_from_config():
    config = RunConfig(
        hr_height=48,
        hr_width=24,
        seed=3,
        options={
            "synth_train_ids": 3,
            "synth_test_ids": 2,
            "synth_cameras": 2,
            "synth_images_per_camera": 1,
            "synth_seed": 7,
        },
    )
    ds = S.synthetic_dataset(None, config)
    assert len(ds.train) == 3 * 2 and len(ds.query) == 2 * 2
    # One image per camera: the gallery is every test image (own-camera copies of
    # a query are removed at evaluation).
    assert [r.pid for r in ds.gallery] == [r.pid for r in ds.query]
    assert ds.train[0].image.shape == (48, 24, 3)  # drawn at the HR size
    assert ds.hr_size == (48, 24)
    assert ds.info["synth_seed"] == [7, 3]
    other = S.synthetic_dataset(None, config.replace(seed=4))
    assert not np.array_equal(ds.train[0].image, other.train[0].image)


def test_spec_rejects_impossible_recipes():
    with pytest.raises(ValueError, match="at least 2 cameras"):
        S.SynthSpec(cameras=1)
    with pytest.raises(ValueError, match="too small"):
        S.SynthSpec(height=4, width=2)


def test_group_members_differ_in_their_fine_pattern():
    ids = S._identities(np.random.default_rng(0), 60)
    for g in np.unique(ids["group"]):
        members = np.flatnonzero(ids["group"] == g)
        assert np.ptp(ids["top_a"][members], axis=0).max() == 0  # shared coarse colour
        variants = {
            (ids["top_kind"][m], ids["top_angle"][m], round(float(ids["top_freq"][m]) / 4))
            for m in members
        }
        assert len(variants) == len(members)
    assert (np.bincount(ids["group"]) > 1).any()


def _same_pose(pids: list[int], size=(64, 32)) -> np.ndarray:
    """Render several identities with exactly the same camera, pose and noise."""
    rng = np.random.default_rng(5)
    ids = S._identities(rng, 40)
    cams = S._cameras(rng, 2, size)
    params = S._image_params(rng, np.zeros(1, int), np.zeros(1, int), cams)
    params["front"][:] = True
    params["occ"][:] = 0
    batch = {k: np.repeat(v, len(pids), axis=0) for k, v in params.items()}
    batch["pid"] = np.array(pids)
    noise = np.zeros((S._NOISE_BANK, *size, 4), np.int8)
    return S.render(batch, ids, cams, noise, size), ids


def test_fine_detail_is_lost_at_low_resolution_but_coarse_cues_survive():
    ids = S._identities(np.random.default_rng(5), 40)
    group = ids["group"]
    pairs = [
        (int(a), int(b))
        for a in range(40)
        for b in range(a + 1, 40)
        if group[a] == group[b] and ids["top_kind"][a] != S.SOLID and ids["top_kind"][b] != S.SOLID
    ]
    strangers = [(a, b) for a in range(40) for b in range(a + 1, 40) if group[a] != group[b]]
    assert pairs and strangers

    def distances(pairs_):
        images, _ = _same_pose(list(range(40)))
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        lr = F.interpolate(x, size=(16, 8), mode="bicubic", antialias=True, align_corners=False)
        up = F.interpolate(lr, size=(64, 32), mode="bicubic", align_corners=False)
        hr_d = [float((x[a] - x[b]).abs().mean()) for a, b in pairs_]
        lr_d = [float((up[a] - up[b]).abs().mean()) for a, b in pairs_]
        return np.mean(hr_d), np.mean(lr_d)

    hr_same, lr_same = distances(pairs)
    hr_diff, lr_diff = distances(strangers[:200])
    # Within a group x4 downsampling removes most of the difference ...
    assert lr_same < 0.5 * hr_same
    # ... while different groups stay apart.
    assert lr_diff > 0.6 * hr_diff
    assert lr_diff > 3 * lr_same


def test_plugin_registers_synthetic_with_its_options():
    import crossres_plugins.data.synthetic as plugin

    registry = Registry()
    registry.register_plugin(plugin, "data-synthetic")
    entry = registry.lookup("dataset", "synthetic")
    assert entry.options["synth_train_ids"].default == 64
    assert entry.options["synth_cameras"].default == 4
    assert entry.options["synth_images_per_camera"].default == 4
    assert entry.options["synth_seed"].default == 0
    ds = entry.factory(
        None,
        RunConfig(
            options={"synth_train_ids": 2, "synth_test_ids": 2, "synth_images_per_camera": 1}
        ),
    )
    assert len(ds.train) == 2 * 4


def test_write_layout_rejects_unknown_layouts(tmp_path):
    with pytest.raises(ValueError, match="layouts: market1501"):
        S.write_layout(tmp_path, "msmt17")


def test_write_layout_names_files_like_the_release(tmp_path):
    root = S.write_layout(
        tmp_path,
        "market1501",
        train_ids=2,
        test_ids=2,
        cameras=2,
        images_per_camera=2,
        height=32,
        width=16,
    )
    assert root == tmp_path / "Market-1501-v15.09.15"
    names = sorted(p.name for p in (root / "query").iterdir())
    assert names[0] == "0003_c1s1_000009_01.jpg"  # test ids follow train ids, 1-based
    assert len(list((root / "bounding_box_train").iterdir())) == 2 * 2 * 2
    assert "synthetic" in (tmp_path / "README.txt").read_text().lower()
