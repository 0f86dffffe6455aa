"""Folder readers: every layout on synthetic files written by write_layout, the
errors a user meets (missing, empty, incomplete folders, bad names), and the
real data in ../shared/data when it is there."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from crossres_plugins.data.caviar import read_caviar
from crossres_plugins.data.cuhk03 import VAL_PID_OFFSET, read_cuhk03_np, read_cuhk03_partial
from crossres_plugins.data.dukemtmc import read_dukemtmc
from crossres_plugins.data.market1501 import read_market1501
from crossres_plugins.data.synthetic import write_layout
from crossres_plugins.data.viper import read_viper

from harness import DatasetError, RunConfig
from harness.data.loading import load_images
from harness.registry import Registry

SHARED = Path(__file__).parents[1].parent / "shared" / "data"
TINY = dict(train_ids=4, test_ids=3, cameras=3, images_per_camera=2, height=32, width=16)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """Each layout written once into its own folder; tests copy one before changing it."""
    base = tmp_path_factory.mktemp("layouts")
    names = ("market1501", "dukemtmc", "cuhk03", "cuhk03-partial", "viper", "caviar")
    for name in names:
        write_layout(base / name, name, **TINY)
    return {name: base / name for name in names}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# -- Market-style layouts ----------------------------------------------------


@pytest.mark.parametrize("rel", ["", "Market-1501-v15.09.15"])
def test_market_reads_from_data_folder_or_its_parent(layouts, rel):
    ds = read_market1501(layouts["market1501"] / rel)
    assert len(ds.train) == 4 * 3 * 2 and len(ds.query) == 3 * 3 and len(ds.gallery) == 3 * 3
    assert sorted({r.pid for r in ds.train}) == [0, 1, 2, 3]  # relabelled
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery} == {5, 6, 7}  # original ids
    assert {r.camid for r in ds.query} == {0, 1, 2}  # c1..c3 -> 0-based
    assert ds.default_lr_cameras == (0, 1, 2)
    assert all(Path(r.image).is_file() for r in ds.train)


def test_market_nested_in_market1501_folder(layouts, tmp_path):
    target = tmp_path / "market1501"
    shutil.copytree(layouts["market1501"], target)
    assert read_market1501(tmp_path).info["source"].endswith("market1501/Market-1501-v15.09.15")


def test_market_drops_junk_and_keeps_distractors_in_the_gallery(layouts, tmp_path):
    root = _copy(layouts["market1501"], tmp_path) / "Market-1501-v15.09.15"
    some = next((root / "bounding_box_test").iterdir())
    shutil.copy(some, root / "bounding_box_test" / "-1_c1s1_000001_00.jpg")
    shutil.copy(some, root / "bounding_box_test" / "0000_c2s1_000002_00.jpg")
    (root / "query" / "Thumbs.db").write_bytes(b"not an image")  # ignored like the release's
    ds = read_market1501(root)
    assert len(ds.gallery) == 3 * 3 + 1
    assert [r.camid for r in ds.gallery if r.pid == 0] == [1]
    assert ds.info["dropped"] == {"junk (-1)": 1, "distractors (0)": 0}
    no_distractors = read_market1501(root, keep_distractors=False)
    assert len(no_distractors.gallery) == 3 * 3
    assert no_distractors.info["dropped"]["distractors (0)"] == 1


def test_duke_layout(layouts):
    ds = read_dukemtmc(layouts["dukemtmc"])
    assert ds.name == "dukemtmc"
    assert len(ds.train) == 24 and len(ds.query) == 9 and len(ds.gallery) == 9
    assert Path(ds.query[0].image).name.startswith("0005_c1_f")


def test_cuhk03_np_subsets(layouts):
    ds = read_cuhk03_np(layouts["cuhk03"], subset="labeled")
    assert ds.info["subset"] == "labeled" and len(ds.train) == 24
    assert Path(ds.train[0].image).suffix == ".png"
    with pytest.raises(DatasetError, match="no cuhk03 layout found under .*cuhk03-np/detected"):
        read_cuhk03_np(layouts["cuhk03"], subset="detected")
    with pytest.raises(DatasetError, match="'labeled' or 'detected'"):
        read_cuhk03_np(layouts["cuhk03"], subset="both")


@pytest.mark.parametrize("rel", ["", "cuhk03-labeled"])
def test_cuhk03_on_the_partial_layout_names_cuhk03_partial(layouts, rel):
    """train/ and val/ are the layout --data cuhk03-partial reads (fake tiny images here)."""
    root = layouts["cuhk03-partial"] / rel
    with pytest.raises(DatasetError, match=r"holds train/ and val/.*--data cuhk03-partial$"):
        read_cuhk03_np(root)
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(
        main, ["data", "info", "--data", "cuhk03", "--data-root", str(root)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "no cuhk03 layout found" in error and error.endswith("--data cuhk03-partial")
    # another layout gets no such hint
    with pytest.raises(DatasetError) as other:
        read_cuhk03_np(layouts["viper"])
    assert "cuhk03-partial" not in str(other.value)


# -- CUHK03 partial, VIPeR, CAVIAR -------------------------------------------


def test_cuhk03_partial_layout(layouts):
    ds = read_cuhk03_partial(layouts["cuhk03-partial"])
    assert ds.single_gallery_shot and ds.default_lr_cameras == (0,)
    assert len(ds.train) == 4 * 2 * 2 and ds.num_train_pids == 4
    offset = VAL_PID_OFFSET
    assert (
        {r.pid for r in ds.query} == {r.pid for r in ds.gallery} == {offset, offset + 1, offset + 2}
    )
    assert {r.camid for r in ds.query} == {0} and {r.camid for r in ds.gallery} == {1}
    assert all(Path(r.image).name[5:7] in ("00", "01") for r in ds.query)


def test_viper_split_is_seeded_recorded_and_never_written(layouts):
    root = layouts["viper"]
    before = _tree(root)
    a = read_viper(root, split=0, seed=0)
    assert _tree(root) == before  # no splits.json or anything else
    assert a.single_gallery_shot and a.default_lr_cameras == (0,)
    ids = 4 + 3
    assert len(a.info["test_ids"]) == ids // 2
    assert sorted(r.pid for r in a.query) == a.info["test_ids"] == sorted(r.pid for r in a.gallery)
    assert len(a.train) == 2 * (ids - ids // 2)
    assert read_viper(root, split=0, seed=0).info["test_ids"] == a.info["test_ids"]
    others = {tuple(read_viper(root, split=s, seed=0).info["test_ids"]) for s in range(1, 6)}
    assert others - {tuple(a.info["test_ids"])}


def test_caviar_uses_ids_seen_by_both_cameras_and_native_lr_queries(layouts):
    ds = read_caviar(layouts["caviar"], split=0)
    assert ds.native_lr and ds.single_gallery_shot and ds.default_lr_cameras == (1,)
    # write_layout leaves camera 2 out for every fourth training id (id 4 here).
    assert ds.info["ids_in_both_cameras"] == 6 and ds.info["ids_in_one_camera_only"] == 1
    assert {r.camid for r in ds.query} == {1} and {r.camid for r in ds.gallery} == {0}
    assert {r.pid for r in ds.query} == set(ds.info["test_ids"]) and len(ds.info["test_ids"]) == 3
    assert 4 not in {r.pid for r in ds.query}
    assert all(int(Path(r.image).stem[4:]) > 10 for r in ds.query)


# -- errors -------------------------------------------------------------------


def test_no_root_and_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="pass --data-root DIR"):
        read_market1501(None)
    missing = tmp_path / "nope"
    with pytest.raises(
        DatasetError,
        match=f"folder {missing} does not exist; expected folders "
        "bounding_box_train/, query/, bounding_box_test/ with files named like "
        "0002_c1s1_000451_01.jpg",
    ):
        read_market1501(missing)


def test_folder_without_the_layout_lists_what_it_found(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError) as err:
        read_viper(tmp_path)
    msg = str(err.value)
    assert f"no viper layout found under {tmp_path}" in msg
    assert "cam_a/ and cam_b/" in msg and "found there: stuff/" in msg


def test_incomplete_layout_names_the_missing_folder(layouts, tmp_path):
    root = _copy(layouts["market1501"], tmp_path) / "Market-1501-v15.09.15"
    shutil.rmtree(root / "query")
    with pytest.raises(
        DatasetError, match=f"market1501 folder {root} is incomplete: missing query/"
    ):
        read_market1501(tmp_path)


def test_empty_folder(layouts, tmp_path):
    root = _copy(layouts["cuhk03-partial"], tmp_path) / "cuhk03-labeled"
    for f in (root / "val").iterdir():
        f.unlink()
    with pytest.raises(
        DatasetError, match=r"no images \(.jpg.*\) in .*val; expected folders train/"
    ):
        read_cuhk03_partial(root)


def test_bad_file_names_are_listed(layouts, tmp_path):
    root = _copy(layouts["market1501"], tmp_path) / "Market-1501-v15.09.15"
    some = next((root / "query").iterdir())
    shutil.copy(some, root / "query" / "person_one.jpg")
    with pytest.raises(
        DatasetError,
        match=r"1 file name\(s\) in .*query do not match the layout: "
        r"person_one.jpg; expected .*0002_c1s1_000451_01.jpg",
    ):
        read_market1501(root)
    viper = _copy(layouts["viper"], tmp_path) / "VIPeR"
    shutil.copy(next((viper / "cam_a").iterdir()), viper / "cam_a" / "a_b.bmp")
    with pytest.raises(DatasetError, match="a_b.bmp; expected folders cam_a/ and cam_b/"):
        read_viper(viper)


def test_caviar_without_images(tmp_path):
    (tmp_path / "CAVIAR4REID" / "caviarReID").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no CAVIAR4REID images under .*0001013.jpg"):
        read_caviar(tmp_path)


# -- registration -------------------------------------------------------------


def test_plugin_registers_every_reader_and_passes_options(layouts):
    import importlib

    registry = Registry()
    for name in ("market1501", "dukemtmc", "cuhk03", "viper", "caviar"):  # one module each
        registry.register_plugin(
            importlib.import_module(f"crossres_plugins.data.{name}"), f"data-{name}"
        )
    assert registry.failed == {}
    assert set(registry.names("dataset")) == {
        "market1501",
        "dukemtmc",
        "cuhk03",
        "cuhk03-partial",
        "viper",
        "caviar",
    }
    assert registry.lookup("dataset", "cuhk03").options["cuhk03_subset"].default == "labeled"
    viper = registry.lookup("dataset", "viper")
    assert viper.options["split"].default == 0
    config = RunConfig(options={"split": 2})
    ds = viper.factory(str(layouts["viper"]), config)
    assert ds.info["split"] == 2 and ds.info["split_seed"] == config.protocol.seed


# -- real data ------------------------------------------------------------------


def _real(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent (it sits beside the project)")
    return path


def test_real_viper_parses_into_316_316():
    ds = read_viper(_real("viper"))
    assert len(ds.train) == 632 and ds.num_train_pids == 316
    assert len(ds.query) == len(ds.gallery) == 316
    assert len(ds.info["test_ids"]) == 316 and ds.info["ids_in_one_camera_only"] == 0
    assert {r.camid for r in ds.query} == {0} and {r.camid for r in ds.gallery} == {1}
    assert os.path.basename(os.path.dirname(ds.query[0].image)) == "cam_a"
    loaded = load_images(ds.query[:3], (64, 32))
    assert loaded.images.shape == (3, 3, 64, 32) and loaded.sizes == [(128, 48)] * 3


def test_real_cuhk03_partial_parses():
    ds = read_cuhk03_partial(_real("cuhk03-labeled"))
    assert len(ds.train) == 7239 and ds.num_train_pids == 743
    assert len(ds.query) + len(ds.gallery) == 938
    assert len({r.pid for r in ds.query}) == 100 == len({r.pid for r in ds.gallery})
    assert min(r.pid for r in ds.query) >= VAL_PID_OFFSET


@pytest.mark.usefixtures("one_thread")
def test_folder_readers_declare_their_hr_size(registry, tmp_path):
    from crossres_plugins.data.synthetic import write_layout

    expected = {"market1501": (128, 64), "viper": (128, 48), "cuhk03-partial": (128, 64)}
    for layout, size in expected.items():
        root = write_layout(
            tmp_path / layout,
            layout,
            train_ids=4,
            test_ids=4,
            cameras=2,
            images_per_camera=2,
            height=32,
            width=16,
        )
        dataset = registry.lookup("dataset", layout).factory(str(root), RunConfig(data=layout))
        assert dataset.hr_size == size
