"""harness.run: one run end to end, as its folder records it (config.json's sizes and
compute, split.json's LR size per query) and as a re-evaluation reads it back."""

from __future__ import annotations

import json

import pytest
import torch

from harness.data.mlr import lr_size
from harness.run import run_experiment
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
    assert saved["protocol_version"] == "mlr-2.1"
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
    # the validation split (mlr-2.1): one of the 4 training people, evaluated like the test
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
