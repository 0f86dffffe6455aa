"""What a practitioner uses on real data without ImageNet weights: pretraining, compact
dataset copies, split files in the run folder, colour jitter."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from crossres_plugins.data.synthetic import write_layout
from crossres_plugins.data.viper import read_viper
from PIL import Image

from harness import augment
from harness.checkpoint import latest_checkpoint
from harness.cli import main
from harness.data.pack import MARKER, pack_dataset
from harness.errors import DatasetError
from harness.weights import load_reid_weights


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# -- harness pretrain ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pretrain")
    weights, run_dir = root / "w.pt", root / "run"
    result = invoke(
        "pretrain", "--preset", "smoke", "--reid-iters", "3", "--weights", weights, "--out", run_dir
    )
    assert result.exit_code == 0, result.output
    assert f"wrote re-id weights to {weights}" in result.output
    return weights, run_dir


@pytest.mark.slow
def test_pretrain_saves_the_stage0_model_as_plain_weights(pretrained) -> None:
    weights, run_dir = pretrained
    state = torch.load(weights, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    assert ckpt["stage"] == "done"
    for key, value in ckpt["models"]["reid"].items():
        assert torch.equal(state[key], value), key
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["sr"], config["reg"], config["sr_iters"], config["reid_iters"]) == (
        "bicubic",
        "none",
        0,
        3,
    )
    card = json.loads(Path(f"{weights}.json").read_text())
    assert card["run_dir"] == str(run_dir) and set(card["test_rank1"]) == {"sr", "bicubic", "hr"}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["pretrain", "run"])
def test_an_interrupted_pretraining_resumes_and_writes_its_weights(
    pretrained, tmp_path, command
) -> None:
    """Stopped before it finished, then continued by `harness pretrain --resume` or `harness
    run --resume`: either way the weights reach the path the pretraining was given."""
    import shutil

    weights, run_dir = pretrained
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    target = tmp_path / "out" / "w.pt"
    doc = json.loads((run / "config.json").read_text())
    assert doc["pretrain_weights"] == str(weights)  # recorded, so a resume knows where
    doc["pretrain_weights"] = str(target)
    (run / "config.json").write_text(json.dumps(doc))
    for ckpt in (run / "checkpoints").glob("ckpt-done-*.pt"):
        ckpt.unlink()  # the run stopped before its end
    (run / "metrics.json").write_text(json.dumps({"status": "interrupted"}))
    result = invoke(command, "--resume", run)
    assert result.exit_code == 0, result.output
    assert f"wrote re-id weights to {target}" in result.output
    original, resumed = torch.load(weights), torch.load(target)
    assert original.keys() == resumed.keys()
    assert all(torch.equal(original[k], resumed[k]) for k in original)
    assert json.loads(Path(f"{target}.json").read_text())["run_dir"] == str(run)


def test_pretrain_needs_weights_unless_it_resumes(tmp_path) -> None:
    result = CliRunner().invoke(main, ["pretrain", "--preset", "smoke", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs --weights PATH" in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_pretrained_weights_start_a_run_on_other_data(pretrained, tmp_path) -> None:
    weights, _ = pretrained
    # another identity count: the classifier is skipped, the backbone loads
    result = invoke(
        "run",
        "--preset",
        "smoke",
        "--sr",
        "bicubic",
        "--reid-weights",
        weights,
        "-o",
        "synth_train_ids=5",
        "--out",
        tmp_path / "ft",
    )
    assert result.exit_code == 0, result.output
    from harness.models import build_models
    from harness.registry import get_registry
    from harness.run import resolve_config

    config = resolve_config({"preset": "smoke", "options": {"synth_train_ids": 5}}, get_registry())
    reid = build_models(config, get_registry(), 5)[0]["reid"]
    counts = load_reid_weights(reid, weights)
    assert counts["loaded"] > 0 and counts["skipped"] >= 1  # the classifier of 8 ids, not 5


def test_pretrain_refuses_sr_settings() -> None:
    result = CliRunner().invoke(
        main, ["pretrain", "--preset", "smoke", "--reg", "intact", "--weights", "x.pt"]
    )
    assert result.exit_code == 2 and "No such option '--reg'" in result.output


@pytest.mark.parametrize("where", ["under-a-file", "read-only-folder"])
def test_pretrain_refuses_an_unwritable_weights_path_before_training(tmp_path, where) -> None:
    """It trained first and failed at the end: the path is checked before anything trains."""
    import os

    if where == "under-a-file":  # fails for root too
        (tmp_path / "file.txt").write_text("a file, not a folder")
        weights = tmp_path / "file.txt" / "weights.pt"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        if os.access(locked, os.W_OK):  # root writes anyway: nothing to test
            locked.chmod(0o755)
            pytest.skip("running as root: chmod does not stop writes")
        weights = locked / "weights.pt"
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["pretrain", "--preset", "smoke", "--weights", str(weights), "--out", str(run_dir)],
    )
    try:
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"cannot write --weights {weights}" in errors[0]
        assert "Traceback" not in result.output
        assert not run_dir.exists()  # refused before the run folder, let alone training
    finally:
        if where == "read-only-folder":
            (tmp_path / "locked").chmod(0o755)


# -- split files -----------------------------------------------------------------------------


@pytest.mark.slow
def test_run_folder_records_the_split_it_used(pretrained) -> None:
    _, run_dir = pretrained
    listing = json.loads((run_dir / "split.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(listing["query"]) == metrics["num_queries"]
    assert len(listing["gallery"]) == metrics["num_gallery"]
    assert not set(listing["train_ids"]) & set(listing["test_ids"])
    assert {row[3] for row in listing["query"]} <= {2.0, 3.0, 4.0}
    assert listing["protocol"]["seed"] == 0


@pytest.mark.slow
def test_split_file_names_images_relative_to_the_data_root(tmp_path) -> None:
    root = write_layout(tmp_path / "viper", "viper", train_ids=6, test_ids=6, height=32, width=16)
    run_dir = tmp_path / "run"
    result = invoke(
        "run",
        "--preset",
        "smoke",
        "--data",
        "viper",
        "--data-root",
        root,
        "--sr",
        "bicubic",
        "--reid-iters",
        "1",
        "--sr-iters",
        "0",
        "-o",
        "split=1",
        "--out",
        run_dir,
    )
    assert result.exit_code == 0, result.output
    listing = json.loads((run_dir / "split.json").read_text())
    assert listing["options"]["split"] == 1
    assert all(row[0].startswith("cam_") for row in listing["train"] + listing["gallery"])
    assert not any(
        p.name == "split.json" for p in Path(root).rglob("*")
    )  # never in the data folder


# -- harness data pack -------------------------------------------------------------------------


@pytest.fixture
def viper_layout(tmp_path) -> Path:
    root = write_layout(tmp_path / "src", "viper", train_ids=5, test_ids=5, height=64, width=24)
    (root / "README.txt").write_text("release note")
    return root


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_pack_keeps_the_layout_and_resizes_every_image(viper_layout, tmp_path) -> None:
    out = tmp_path / "small"
    summary = pack_dataset(viper_layout, out, size=(32, 16))
    assert _tree(out) == sorted([MARKER, *_tree(viper_layout)])  # and the mark of an earlier pack
    assert summary.images == 20 and summary.other_files == 1
    assert (out / "README.txt").read_text() == "release note"
    for path in out.rglob("*.bmp"):
        with Image.open(path) as img:
            assert img.size == (16, 32) and img.format == "BMP"
    ds = read_viper(out)  # the same reader parses the copy
    assert ds.num_train_pids == len(read_viper(viper_layout).train) // 2


def test_pack_into_one_tar_is_byte_identical_when_repeated(viper_layout, tmp_path) -> None:
    first = pack_dataset(viper_layout, tmp_path / "a.tar", size=(32, 16)).out
    second = pack_dataset(viper_layout, tmp_path / "b.tar", size=(32, 16)).out
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        assert sorted(m.name for m in archive.getmembers()) == sorted(
            [MARKER, *_tree(viper_layout)]
        )
    assert not list(tmp_path.glob("*.partial"))


def test_pack_cli_reports_and_names_a_corrupt_image(viper_layout, tmp_path) -> None:
    result = invoke("data", "pack", viper_layout, tmp_path / "ok.tar", "--size", "32x16")
    assert result.exit_code == 0 and "wrote 20 images (32x16) and 1 other file(s)" in result.output
    bad = next(iter(sorted(viper_layout.rglob("*.bmp"))))
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(main, ["data", "pack", str(viper_layout), str(tmp_path / "x.tar")])
    assert result.exit_code == 2 and f"cannot read image {bad}" in result.output
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "x.tar.partial").exists()
    result = CliRunner().invoke(
        main, ["data", "pack", str(viper_layout), str(tmp_path / "y"), "--size", "32"]
    )
    assert result.exit_code == 2 and "expected HEIGHTxWIDTH" in result.output


@pytest.mark.parametrize("suffix", ["", ".tar"])
def test_pack_replaces_only_an_earlier_pack_of_the_same_source(
    viper_layout, tmp_path, suffix
) -> None:
    out = tmp_path / f"out{suffix}"
    pack_dataset(viper_layout, out, size=(32, 16))
    pack_dataset(viper_layout, out, size=(16, 8))  # our own earlier pack: replaced
    other = write_layout(tmp_path / "other", "viper", train_ids=2, test_ids=2, height=64, width=24)
    before = out.read_bytes() if suffix else _tree(out)
    with pytest.raises(DatasetError, match="not an earlier pack of"):
        pack_dataset(other, out)  # a pack of another source is not ours to replace
    assert (out.read_bytes() if suffix else _tree(out)) == before


def test_pack_never_deletes_a_folder_it_did_not_write(viper_layout, tmp_path) -> None:
    victim = tmp_path / "thesis"
    (victim / "important").mkdir(parents=True)
    (victim / "important" / "thesis.txt").write_text("years of work")
    result = CliRunner().invoke(main, ["data", "pack", str(viper_layout), str(victim)])
    assert result.exit_code == 2 and "is not an earlier pack" in result.output
    assert (victim / "important" / "thesis.txt").read_text() == "years of work"
    (tmp_path / "blocker.tar").write_bytes(b"not a tar")
    with pytest.raises(DatasetError, match="not an earlier pack"):
        pack_dataset(viper_layout, tmp_path / "blocker.tar")
    assert (tmp_path / "blocker.tar").read_bytes() == b"not a tar"


@pytest.mark.parametrize("where", ["itself", "dotdot", "inside", "parent"])
def test_pack_refuses_an_output_in_or_around_its_source(viper_layout, tmp_path, where) -> None:
    out = {
        "itself": viper_layout,
        "dotdot": viper_layout / ".." / viper_layout.name,
        "inside": viper_layout / "train" / "packed",
        "parent": viper_layout.parent,
    }[where]
    before = _tree(viper_layout)
    with pytest.raises(DatasetError, match="source"):
        pack_dataset(viper_layout, out)
    assert _tree(viper_layout) == before
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "0x0"], "each side must be 1 to 4096 pixels, got 0x0"),
        (["--size", "-5x3"], "each side must be 1 to 4096 pixels"),
        (["--size", "100000x100000"], "each side must be 1 to 4096 pixels"),
        (["--quality", "0"], "must be 1 to 100, got 0"),
    ],
)
def test_pack_range_errors_are_one_line(viper_layout, tmp_path, args, needle) -> None:
    out = tmp_path / "packed"
    result = CliRunner().invoke(main, ["data", "pack", str(viper_layout), str(out), *args])
    assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--train-ids", "0"], "at least one train and one test identity"),
        (["--cameras", "1"], "at least 2 cameras"),
        (["--images-per-camera", "0"], "at least 1 image per camera"),
        (["--height", "0"], "image size 0x"),
        (["--height", "5000"], "too large (at most 2048 a side)"),
        (["--test-ids", "100000000"], "images is too many for synthetic data"),
    ],
)
def test_synth_range_errors_are_one_line_and_write_nothing(tmp_path, args, needle) -> None:
    out = tmp_path / "synth"
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_pack_refuses_a_folder_without_images(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="holds no images"):
        pack_dataset(tmp_path / "empty", tmp_path / "out.tar")


def test_pack_real_viper_parses_as_viper(tmp_path, shared_data) -> None:
    src = Path(shared_data) / "viper"
    out = tmp_path / "viper-64x24"
    summary = pack_dataset(src, out, size=(64, 24))
    assert summary.images == 1264
    ds = read_viper(out)
    assert ds.num_train_pids == 316 and len(ds.query) == len(ds.gallery) == 316


# -- colour jitter -----------------------------------------------------------------------------


def test_color_jitter_is_seeded_bounded_and_optional() -> None:
    x = torch.rand(16, 3, 8, 4, generator=torch.Generator().manual_seed(0))
    assert augment.color_jitter(x, torch.Generator(), p=0.0) is x
    a = augment.color_jitter(x, torch.Generator().manual_seed(1), p=1.0)
    b = augment.color_jitter(x, torch.Generator().manual_seed(1), p=1.0)
    assert torch.equal(a, b) and a.shape == x.shape
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    changed = (a - x).abs().flatten(1).amax(1) > 1e-4
    assert bool(changed.all())
    half = augment.color_jitter(x, torch.Generator().manual_seed(2), p=0.5)
    untouched = ((half - x).abs().flatten(1).amax(1) == 0).sum()
    assert 0 < int(untouched) < 16


def test_color_jitter_keeps_gray_images_gray() -> None:
    gray = torch.rand(8, 1, 8, 4).expand(8, 3, 8, 4).clone()
    out = augment.color_jitter(gray, torch.Generator().manual_seed(3), p=1.0)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6) and torch.allclose(
        out[:, 1], out[:, 2], atol=1e-6
    )


def test_color_jitter_is_a_stage0_setting(tmp_path) -> None:
    result = invoke(
        "run",
        "--preset",
        "smoke",
        "--color-jitter",
        "0.5",
        "--sr",
        "bicubic",
        "--sr-iters",
        "0",
        "--reid-iters",
        "2",
        "--out",
        tmp_path / "cj",
    )
    assert result.exit_code == 0, result.output
    assert (
        json.loads((tmp_path / "cj" / "config.json").read_text())["config"]["color_jitter"] == 0.5
    )
    bad = CliRunner().invoke(main, ["run", "--preset", "smoke", "--color-jitter", "2"])
    assert bad.exit_code == 2 and "color_jitter is a probability" in bad.output


# -- the MLR specs end to end on the real folders (CI-sized) ------------------------------------


def _board_rows(out: Path) -> dict[str, dict]:
    return {g["label"]: g for g in json.loads((out / "leaderboard.json").read_text())["groups"]}


@pytest.mark.slow
def test_mlr_viper_spec_runs_end_to_end_on_two_splits(tmp_path, shared_data) -> None:
    root = Path(shared_data) / "viper"
    out = tmp_path / "viper"
    rows = ("HR query (upper bound)", "INTACT")  # the other rows differ only in flags
    result = invoke(
        "bench",
        "benchmarks/specs/mlr-viper.toml",
        "--data-root",
        root,
        "--preset",
        "smoke",
        "--reid",
        "resnet18",
        "--set",
        "reid_init=scratch",
        "--splits",
        "2",
        "--out",
        out,
        *[a for r in rows for a in ("--row", r)],
    )
    assert result.exit_code == 0, result.output
    rows = _board_rows(out)
    assert list(rows) == ["HR query (upper bound)", "INTACT"]
    assert all(g["n"] == 2 for g in rows.values())
    assert rows["HR query (upper bound)"]["query"] == "hr" and rows["INTACT"]["query"] == "sr"
    # INTACT leaves stage 0's re-id model frozen, and the stage-0 cache makes the HR row's
    # model the same one: their HR queries rank identically
    hr, intact = rows["HR query (upper bound)"]["queries"], rows["INTACT"]["queries"]
    assert hr["hr"]["rank1"] == intact["hr"]["rank1"]
    splits = {
        json.loads((out / "intact" / f"seed0-split{k}" / "split.json").read_text())["options"][
            "split"
        ]
        for k in range(2)
    }
    assert splits == {0, 1}
    test_ids = [
        set(json.loads((out / "intact" / f"seed0-split{k}" / "split.json").read_text())["test_ids"])
        for k in range(2)
    ]
    assert len(test_ids[0]) == 316 and test_ids[0] != test_ids[1]
    board = (out / "leaderboard.md").read_text()
    assert "46.2 / 73.1 / 81.6" in board and "| Query |" in board


@pytest.mark.slow
def test_mlr_cuhk03_spec_runs_its_intact_row(tmp_path, shared_data) -> None:
    root = Path(shared_data) / "cuhk03-labeled"
    out = tmp_path / "cuhk03"
    result = invoke(
        "bench",
        "benchmarks/specs/mlr-cuhk03.toml",
        "--data-root",
        root,
        "--preset",
        "smoke",
        "--reid",
        "resnet18",
        "--set",
        "reid_init=scratch",
        "--row",
        "INTACT",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    intact = _board_rows(out)["INTACT"]
    assert intact["n"] == 1 and intact["queries"]["sr"]["rank1"]["over"] == "trials"
    assert "86.4 / 97.4 / 98.5" in (out / "leaderboard.md").read_text()
