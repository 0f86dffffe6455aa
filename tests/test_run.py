"""harness.run: one run end to end, as its folder records it (config.json's sizes and
compute, split.json's LR size per query) and as a re-evaluation reads it back."""

from __future__ import annotations

import json

import pytest
import torch

from harness.data.mlr import lr_size
from harness.errors import HarnessError
from harness.run import load_run_config, run_experiment
from tests.helpers import smoke_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_hr_size_is_recorded_and_split_names_each_query_lr_size(registry, tmp_path):
    config = smoke_config(
        registry,
        hr_size="native",
        sr="bicubic",
        sr_iters=0,
        options={"synth_train_ids": 4, "synth_test_ids": 4},
    )
    run_experiment(config, tmp_path / "run", registry, echo=lambda m: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["config"]["hr_height"], saved["config"]["hr_width"]) == (128, 64)
    assert saved["protocol_version"] == "mlr-2.2"
    # what decides speed and the last bits on a CPU: the thread counts, the CPU, the precision
    compute = saved["compute"]
    assert (
        compute["torch_threads"] == torch.get_num_threads()
        and compute["torch_interop_threads"] >= 1
    )
    assert compute["device"] == "cpu" and compute["precision"] == "float32" and compute["cpu"]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["hr_size"] == [128, 64]
    sizes = {tuple(q[4]) for q in split["query"]}
    assert sizes <= {(64, 32), (43, 21), (32, 16)} and sizes
    for _, _, _, ratio, size in split["query"]:
        assert tuple(size) == lr_size((128, 64), ratio)
    # the validation split (since mlr-2.1): one of the 4 training people, evaluated like the test
    assert len(split["val_ids"]) == 1 and len(split["train_ids"]) == 3
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    val, test = metrics["val"], metrics["queries"]
    assert val["num_ids"] == 1 and val["num_queries"] == len(split["val_query"])
    for kind in ("sr", "bicubic", "hr"):
        assert set(val["queries"][kind]) >= set(test[kind]) - {"per_ratio"}
        for name in ("rank1", "rank5", "rank10", "mAP"):
            lo, hi = val["queries"][kind][f"{name}_ci"]
            assert lo <= val["queries"][kind][name] <= hi


def test_an_mlr_1_run_folder_keeps_its_hr_size_on_re_evaluation(tmp_path):
    from harness.run import load_run_config

    doc = {"config": {"height": 48, "width": 24}, "protocol_version": "mlr-1.0"}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert load_run_config(tmp_path).hr_size == (48, 24)


def test_a_run_folder_from_before_the_validation_split_keeps_its_training_set(tmp_path):
    """An mlr-2.0 run held nobody out: resumed or re-evaluated, it must not start to."""
    from harness.run import load_run_config

    doc = {"config": {"protocol": {"seed": 0, "version": "mlr-2.0"}}, "protocol_version": "mlr-2.0"}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert load_run_config(tmp_path).protocol.val_ids == 0.0
    doc["config"]["protocol"]["val_ids"] = 0.2
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert load_run_config(tmp_path).protocol.val_ids == 0.2


def test_a_run_folder_keeps_the_protocol_version_its_split_was_built_under(tmp_path):
    """The version decides the split (mlr-2.1's single-shot validation gallery differs), so a
    config.json without one in its protocol table takes the document's."""
    doc = {"config": {"protocol": {"seed": 0, "val_ids": 0.15, "version": "mlr-2.1"}}}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert load_run_config(tmp_path).protocol.version == "mlr-2.1"
    doc = {"config": {"protocol": {"seed": 0, "val_ids": 0.15}}, "protocol_version": "mlr-2.1"}
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert load_run_config(tmp_path).protocol.version == "mlr-2.1"


# -- the validation split of a single-gallery-shot dataset -----------------------------------


@pytest.fixture(scope="module")
def tiny_cuhk03(tmp_path_factory):
    """A generated CUHK03-partial layout (never real images): 4 training people, each with 2
    images on camera one (LR) and 2 on camera two, so the validation split holds one out."""
    from crossres_plugins.data.synthetic import write_layout

    base = tmp_path_factory.mktemp("cuhk03")
    return write_layout(
        base / "cuhk03",
        "cuhk03-partial",
        train_ids=4,
        test_ids=3,
        images_per_camera=2,
        height=32,
        width=16,
    )


def _cuhk03_config(registry, root, seed: int, **protocol):
    config = smoke_config(
        registry,
        data="cuhk03-partial",
        data_root=str(root),
        sr="bicubic",
        sr_iters=0,
        reid_iters=0,
        protocol={"seed": seed, **protocol},
    )
    return config


def test_a_single_shot_validation_split_of_one_person_evaluates(registry, tiny_cuhk03, tmp_path):
    """Protocol seed 0 holds out a person whose mlr-2.1 gallery kept a camera-one image: a
    gallery draw of it left the only query without a match, and evaluation crashed."""
    run_experiment(
        _cuhk03_config(registry, tiny_cuhk03, 0), tmp_path / "run", registry, echo=lambda m: None
    )
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(split["val_ids"]) == 1 and len(split["val_query"]) == 1
    # the gallery is the person's camera-two images only (camera one, id 0, is the LR camera)
    assert [row[2] for row in split["val_gallery"]] == [1, 1]
    assert all(row[1] == split["val_ids"][0] for row in split["val_gallery"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["protocol_version"] == "mlr-2.2"
    assert metrics["val"]["eval_style"] == "single-gallery-shot"
    for kind in ("sr", "bicubic", "hr"):
        assert "trials_skipped" not in metrics["val"]["queries"][kind]  # every draw matched


def test_an_mlr_2_1_run_keeps_its_old_split_and_never_crashes(registry, tiny_cuhk03, tmp_path):
    """A run folder recording mlr-2.1 rebuilds its old split (camera-one images in the
    validation gallery); a draw without a match is skipped and counted, and a split with no
    match in any draw is one line, never a traceback."""
    from click.testing import CliRunner

    from harness.cli import main

    old = _cuhk03_config(registry, tiny_cuhk03, 0, version="mlr-2.1")
    run_experiment(old, tmp_path / "old", registry, echo=lambda m: None)
    split = json.loads((tmp_path / "old" / "split.json").read_text())
    assert sorted(row[2] for row in split["val_gallery"]) == [0, 1, 1]
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    assert saved["protocol_version"] == saved["config"]["protocol"]["version"] == "mlr-2.1"
    metrics = json.loads((tmp_path / "old" / "metrics.json").read_text())
    assert metrics["protocol_version"] == "mlr-2.1"
    assert metrics["val"]["queries"]["sr"]["trials_skipped"] == 1  # of the smoke preset's 2
    # re-evaluated, it is the same split and version (resuming checks split.json the same way)
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "old")])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "old" / "metrics.json").read_text())
    assert again["protocol_version"] == "mlr-2.1"
    assert again["val"]["queries"]["sr"] == metrics["val"]["queries"]["sr"]

    # protocol seed 2: both draws of the held-out person come from camera one
    never = _cuhk03_config(registry, tiny_cuhk03, 2, version="mlr-2.1")
    with pytest.raises(HarnessError, match="val split of cuhk03-partial cannot be ranked"):
        run_experiment(never, tmp_path / "never", registry, echo=lambda m: None)
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "never")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the val split of cuhk03-partial")
    assert "Traceback" not in result.output and "mlr-2.2 runs build" in lines[0]
