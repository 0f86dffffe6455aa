"""harness.data.mlr, the MLR protocol: LR sizes, seeded query ratios drawn from the
configured set, LR cameras for queries, bit-identical downsampling, and LR queries made
from the dataset's HR size (not the re-id model's input size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import ProtocolConfig, Record, ReidDataset
from harness.config import ConfigError
from harness.data.mlr import (
    TrainRatioSampler,
    build_mlr,
    downsample,
    draw_query_ratios,
    hold_out_validation,
    lr_size,
    ratio_buckets,
)
from harness.data.prepare import prepare_data
from harness.errors import DatasetError
from harness.metrics import single_gallery_shot_cmc
from tests.helpers import smoke_config


def _dataset(n_ids: int = 6, cams: int = 3) -> ReidDataset:
    img = np.zeros((8, 4, 3), np.uint8)
    query = [Record(img, pid, cam) for pid in range(n_ids) for cam in range(cams)]
    gallery = [Record(img, pid, cam) for pid in range(n_ids) for cam in range(cams)]
    return ReidDataset("toy", [Record(img, 0, 0)], query, gallery, default_lr_cameras=(0,))


def test_lr_size_rounds_and_never_vanishes():
    assert lr_size((64, 32), 2) == (32, 16)
    assert lr_size((64, 32), 3) == (21, 11)
    assert lr_size((8, 4), 10) == (1, 1)


def test_same_seed_same_ratios_and_all_in_set():
    p = ProtocolConfig(ratios=(2, 3, 4), seed=7)
    a, b = draw_query_ratios(500, p), draw_query_ratios(500, p)
    assert a == b
    assert set(a) == {2.0, 3.0, 4.0}
    assert draw_query_ratios(500, ProtocolConfig(seed=8)) != a


def test_query_from_lr_cameras_gallery_whole():
    split = build_mlr(_dataset(), ProtocolConfig())
    assert {r.camid for r in split.query} == {0}
    assert len(split.query) == 6 and len(split.gallery) == 18
    assert split.lr_cameras == (0,)
    split2 = build_mlr(_dataset(), ProtocolConfig(lr_cameras=(1, 2)))
    assert {r.camid for r in split2.query} == {1, 2}


def test_no_query_from_lr_camera_is_a_clear_error():
    with pytest.raises(DatasetError, match=r"LR camera\(s\) \[5\].*query cameras are \[0, 1, 2\]"):
        build_mlr(_dataset(), ProtocolConfig(lr_cameras=(5,)))


def test_downsample_is_bit_identical_and_sized():
    x = torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    p = ProtocolConfig()
    a, b = downsample(x, 3.0, p), downsample(x.clone(), 3.0, p)
    assert a.shape == (3, 3, 21, 11)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    # antialiasing changes the result, i.e. the flag is honoured
    assert not torch.equal(a, downsample(x, 3.0, ProtocolConfig(antialias=False)))


def test_buckets_group_by_ratio():
    assert ratio_buckets([2.0, 4.0, 2.0, 3.0]) == {2.0: [0, 2], 3.0: [3], 4.0: [1]}


def test_train_ratio_sampler_is_seeded():
    a = TrainRatioSampler((2, 3, 4), torch.Generator().manual_seed(1))
    b = TrainRatioSampler((2, 3, 4), torch.Generator().manual_seed(1))
    assert [a() for _ in range(20)] == [b() for _ in range(20)]


@pytest.mark.parametrize(
    "kwargs", [{"ratios": (0.5,)}, {"ratios": ()}, {"kernel": "lanczos"}, {"trials": 0}]
)
def test_bad_protocols_are_refused(kwargs):
    with pytest.raises(ConfigError):
        ProtocolConfig(**kwargs)


@pytest.mark.usefixtures("one_thread")
def test_lr_queries_come_from_the_hr_size_not_the_reid_size(registry):
    config = smoke_config(
        registry,
        hr_size="native",
        height=32,
        width=16,
        options={"synth_train_ids": 4, "synth_test_ids": 4},
    )
    data = prepare_data(config, registry)
    assert data.hr_size == (128, 64)  # the synthetic data's native size
    assert tuple(data.query_images.shape[-2:]) == (128, 64)
    assert [lr_size(data.hr_size, r) for r in (2, 3, 4)] == [(64, 32), (43, 21), (32, 16)]
    lr = downsample(data.query_images[:2].float() / 255, 4.0, config.protocol)
    assert tuple(lr.shape[-2:]) == (32, 16)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    ratios=st.lists(
        st.sampled_from([1.5, 2.0, 2.5, 3.0, 4.0, 6.0]), min_size=1, max_size=4, unique=True
    ),
    n=st.integers(1, 300),
)
def test_protocol_ratios_are_seeded_and_in_the_configured_set(seed, ratios, n):
    protocol = ProtocolConfig(ratios=tuple(ratios), seed=seed)
    drawn = draw_query_ratios(n, protocol)
    assert drawn == draw_query_ratios(n, ProtocolConfig(ratios=tuple(ratios), seed=seed))
    assert set(drawn) <= {float(r) for r in ratios}


def _train_records(n_ids: int = 40, cams: int = 3, per_cam: int = 2) -> list[Record]:
    img = np.zeros((8, 4, 3), np.uint8)
    return [
        Record(img, pid, cam) for pid in range(n_ids) for cam in range(cams) for _ in range(per_cam)
    ]


def test_validation_split_holds_out_whole_identities_with_lr_queries():
    train = _train_records()
    val = hold_out_validation(train, ProtocolConfig(val_ids=0.25, seed=3), lr_cameras=(0,))
    held = {r.pid for r in val.query}
    assert len(held) == 10  # round(0.25 * 40)
    # whole identities leave training: no image of a held-out person is trained on
    assert held.isdisjoint({r.pid for r in val.train})
    assert len(val.train) + len(val.query) + len(val.gallery) == len(train)
    # one LR query per identity and LR camera, the rest of the person is the gallery
    assert {r.camid for r in val.query} == {0} and len(val.query) == 10
    assert {r.pid for r in val.gallery} == held and len(val.gallery) == 10 * 5
    assert set(val.query_ratios) <= {2.0, 3.0, 4.0} and len(val.query_ratios) == 10
    # seeded: the same protocol gives the same split, another seed another one
    again = hold_out_validation(train, ProtocolConfig(val_ids=0.25, seed=3), lr_cameras=(0,))
    assert again == val
    other = hold_out_validation(train, ProtocolConfig(val_ids=0.25, seed=4), lr_cameras=(0,))
    assert {r.pid for r in other.query} != held


def test_validation_split_off_keeps_the_training_set_and_takes_only_matchable_people():
    train = _train_records()
    off = hold_out_validation(train, ProtocolConfig(val_ids=0.0), lr_cameras=(0,))
    assert off.train == train and not off.query and not off.gallery
    # people never seen by the LR camera (or seen only by it) cannot have a true match
    lonely = [r for r in train if r.camid == 0 or r.pid >= 5]
    val = hold_out_validation(lonely, ProtocolConfig(val_ids=0.5), lr_cameras=(0,))
    assert {r.pid for r in val.query} <= set(range(5, 40))
    with pytest.raises(DatasetError, match="would leave 1 training identities of 2"):
        hold_out_validation(_train_records(n_ids=2), ProtocolConfig(val_ids=0.5), (0,))


def test_validation_split_reaches_the_split_listing(registry):
    data = prepare_data(smoke_config(registry, protocol={"val_ids": 0.25}), registry)
    listing = data.split.listing()
    assert listing["val_ids"] and set(listing["val_ids"]).isdisjoint(listing["train_ids"])
    assert len(listing["val_query"]) == len(data.val.query_images)
    assert data.split.describe()["num_val_ids"] == len(listing["val_ids"])
    assert data.num_classes == len(listing["train_ids"])  # labels stay contiguous
    off = prepare_data(smoke_config(registry, protocol={"val_ids": 0.0}), registry)
    assert off.val is None and len(off.train_images) > len(data.train_images)
    with pytest.raises(ValueError, match="no validation split"):
        off.eval_set("val")


def _two_view_records(n_ids: int = 20, per_cam: int = 3) -> list[Record]:
    """A VIPeR/CUHK03-style training set: every person on camera 0 (the LR camera) and on
    camera 1, ``per_cam`` images each, named so that records compare by name."""
    return [
        Record(f"{pid:04d}_c{cam}_{k}.jpg", pid, cam)
        for pid in range(n_ids)
        for cam in (0, 1)
        for k in range(per_cam)
    ]


def _draws(val, trials: int = 20):
    """The validation split ranked single-gallery-shot style on random distances."""
    d = np.random.default_rng(0).random((len(val.query), len(val.gallery)))
    return single_gallery_shot_cmc(
        d,
        [r.pid for r in val.query],
        [r.pid for r in val.gallery],
        [r.camid for r in val.query],
        [r.camid for r in val.gallery],
        trials=trials,
        seed=1,
    )


def test_single_shot_validation_gallery_is_off_the_lr_cameras_so_every_draw_matches():
    train = _two_view_records()
    protocol = ProtocolConfig(val_ids=0.25, seed=1)
    single = hold_out_validation(train, protocol, (0,), single_gallery_shot=True)
    market = hold_out_validation(train, protocol, (0,))
    # the same people, training set, queries and ratios as Market-style: only the gallery differs
    assert (single.train, single.query, single.query_ratios) == (
        market.train,
        market.query,
        market.query_ratios,
    )
    held = {r.pid for r in single.query}
    assert len(held) == 5 and {r.pid for r in single.gallery} == held
    assert single.gallery == [r for r in market.gallery if r.camid == 1]
    assert len(single.gallery) == 5 * 3  # every camera-1 image of the held-out people
    # every draw of one gallery image per person can match every query
    res = _draws(single)
    assert res.trials_skipped == 0 and res.num_skipped == 0
    assert all(t.num_valid == len(single.query) for t in res.per_trial)


def test_market_style_validation_gallery_is_every_other_image_of_the_held_out_people():
    train = _two_view_records()
    val = hold_out_validation(train, ProtocolConfig(val_ids=0.25, seed=1), (0,))
    held = {r.pid for r in val.query}
    assert val.gallery == [r for r in train if r.pid in held and r not in val.query]
    assert {r.camid for r in val.gallery} == {0, 1}  # the LR camera's other images stay
    # build_mlr passes the dataset's style: the same rule through it, per style
    query = [Record(f"q{pid}", pid, 0) for pid in range(100, 103)]
    gallery = [Record(f"g{pid}", pid, 1) for pid in range(100, 103)]
    for style in (False, True):
        dataset = ReidDataset("toy", train, query, gallery, single_gallery_shot=style)
        split = build_mlr(dataset, ProtocolConfig(val_ids=0.25, seed=1))
        assert split.val_query == val.query
        expected = [r for r in val.gallery if r.camid == 1] if style else val.gallery
        assert split.val_gallery == expected


def test_an_mlr_2_1_protocol_rebuilds_its_single_shot_validation_split():
    """A run folder of mlr-2.1 kept the LR cameras' other images in the gallery: some draws
    skip a query there. It must still get exactly that split back."""
    train = _two_view_records()
    old = ProtocolConfig(val_ids=0.25, seed=1, version="mlr-2.1")
    then = hold_out_validation(train, old, (0,), single_gallery_shot=True)
    assert then == hold_out_validation(train, old, (0,))
    assert {r.camid for r in then.gallery} == {0, 1}
    assert _draws(then).num_skipped > 0  # what mlr-2.2 removes
    dataset = ReidDataset("toy", train, train[:1], train[1:2], single_gallery_shot=True)
    assert build_mlr(dataset, old).val_gallery == then.gallery
