"""harness/export.py: a finished run's query and gallery paths as ONNX and TorchScript graphs.

Two smoke runs are shared by the module: a cascade row (srgan with ``--reg none``) and a
bicubic row (``--sr bicubic``, no stage 1). Each export is checked against the evaluator's
own feature extraction (:func:`harness.evaluate.extract_features` with the SR or bicubic
transform), on the run's queries at every protocol ratio and on its gallery, to 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from harness.data.mlr import downsample, lr_size, ratio_key, upsample_bicubic
from harness.data.prepare import prepare_data
from harness.errors import HarnessError
from harness.evaluate import extract_features
from harness.export import CARD, export_run, load_exported, load_run, require_format, sha256_file
from harness.run import run_experiment
from harness.rundir import load_run_config
from tests.helpers import smoke_config

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")


def _run(registry, root: Path, name: str, **values) -> Path:
    run_dir = root / name
    config = smoke_config(registry, **values)
    # the two rows share one stage-0 model, as a bench's rows do
    run_experiment(
        config, run_dir, registry, echo=lambda m: None, stage0_cache_dir=root / ".stage0-cache"
    )
    return run_dir


@pytest.fixture(scope="module")
def runs(registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {
        "cascade": _run(registry, root, "cascade", sr="srgan", reg="none"),
        "bicubic": _run(registry, root, "bicubic", sr="bicubic", reg="none", sr_iters=0),
    }


@pytest.fixture(scope="module")
def exports(registry, runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    out = {}
    for row, run_dir in runs.items():
        for fmt in ("onnx", "torchscript"):
            folder = root / f"{row}-{fmt}"
            export_run(run_dir, folder, fmt, registry, echo=lambda message: None)
            out[row, fmt] = folder
    return out


@pytest.fixture(scope="module")
def evaluated(registry, runs):
    """Per row: the run's data, and the evaluator's features of its gallery and its LR queries
    (made by the protocol, then stored as uint8 as an LR image file holds them)."""
    out = {}
    for row, run_dir in runs.items():
        run = load_run(run_dir, registry)
        config = load_run_config(run_dir)
        data = prepare_data(config, registry)
        hr = run.hr_size
        gallery = extract_features(run.reid, data.gallery_images, CPU)
        queries = {}
        for ratio in run.ratios:
            lr = downsample(data.query_images.float() / 255, ratio, config.protocol)
            lr = (lr * 255).round().to(torch.uint8)

            def transform(x, run=run, hr=hr):
                sr = run.query_kind == "sr"
                out = run.generator(x, hr) if sr else upsample_bicubic(x, hr)
                return out.float().clamp(0, 1)

            queries[ratio] = (lr, extract_features(run.reid, lr, CPU, transform=transform))
        out[row] = (run, gallery, queries, data)
    return out


def _onnx(folder: Path, name: str):
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"image": batch.numpy()})[0]


def _torchscript(folder: Path, name: str):
    module = torch.jit.load(str(folder / name))
    return lambda batch: module(batch).detach().numpy()


@pytest.mark.slow
@pytest.mark.parametrize("row", ["cascade", "bicubic"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_features_match_the_evaluators(exports, evaluated, row, fmt):
    folder = exports[row, fmt]
    card = json.loads((folder / CARD).read_text())
    load = _onnx if fmt == "onnx" else _torchscript
    run, gallery, queries, data = evaluated[row]
    got = load(folder, card["graphs"]["gallery"]["file"])(data.gallery_images)
    np.testing.assert_allclose(got, gallery.numpy(), atol=1e-4, rtol=0)
    assert set(card["graphs"]["query"]) == {ratio_key(r) for r in run.ratios} == {"2", "3", "4"}
    for ratio, (lr, expected) in queries.items():
        graph = card["graphs"]["query"][ratio_key(ratio)]
        assert tuple(graph["input_size"]) == tuple(lr.shape[-2:]) == lr_size(run.hr_size, ratio)
        got = load(folder, graph["file"])(lr)
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_graphs_take_any_batch_size(exports, evaluated):
    folder = exports["cascade", "onnx"]
    run, gallery, _, data = evaluated["cascade"]
    embed = _onnx(folder, "gallery.onnx")
    one = embed(data.gallery_images[:1])
    five = embed(data.gallery_images[:5])
    assert one.shape[0] == 1 and five.shape[0] == 5
    np.testing.assert_allclose(five[:1], one, atol=1e-5)


@pytest.mark.slow
def test_model_card_records_data_metrics_files_and_config(runs, exports):
    folder = exports["cascade", "onnx"]
    card = json.loads((folder / CARD).read_text())
    run_doc = json.loads((runs["cascade"] / "config.json").read_text())
    metrics = json.loads((runs["cascade"] / "metrics.json").read_text())
    written = sorted(p.name for p in folder.iterdir() if p.name != CARD)
    assert sorted(card["files"]) == written
    assert all(sha256_file(folder / n) == digest for n, digest in card["files"].items())
    assert card["config"] == run_doc
    assert card["query_kind"] == "sr" and card["metric"] == run_doc["config"]["metric"]
    (result,) = card["model-index"][0]["results"]
    assert result["dataset"]["protocol"] == metrics["protocol_version"]
    assert result["dataset"]["type"] == "synthetic"
    by_type = {m["type"]: m for m in result["metrics"]}
    assert by_type["rank1"]["value"] == round(100 * metrics["queries"]["sr"]["rank1"], 2)
    assert by_type["mAP"]["interval_95"] == [
        round(100 * v, 2) for v in metrics["queries"]["sr"]["mAP_ci"]
    ]
    assert card["source"]["checkpoint_sha256"] == sha256_file(
        runs["cascade"] / "checkpoints" / card["source"]["checkpoint"]
    )


@pytest.mark.slow
def test_loading_an_export_checks_every_files_sha256(exports, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exports["bicubic", "torchscript"], copy)
    load_exported(copy)  # intact: loads
    with open(copy / "gallery.pt", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(HarnessError, match="gallery.pt does not match its sha256"):
        load_exported(copy)


@pytest.mark.slow
def test_cli_exports_and_refuses_an_incomplete_run(runs, tmp_path):
    out = tmp_path / "ts"
    result = CliRunner().invoke(
        main, ["export", str(runs["bicubic"]), "--format", "torchscript", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / CARD).is_file() and "exported" in result.output

    broken = tmp_path / "unfinished"
    broken.mkdir()
    (broken / "config.json").write_text((runs["bicubic"] / "config.json").read_text())
    (broken / "metrics.json").write_text('{"status": "running"}')
    result = CliRunner().invoke(main, ["export", str(broken), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "is not a complete run" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_format_whose_library_is_missing_is_refused(monkeypatch, runs, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    with pytest.raises(HarnessError, match="--format onnx needs the 'onnx' package"):
        require_format("onnx")
    result = CliRunner().invoke(main, ["export", str(runs["bicubic"]), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs the 'onnx' package" in result.output


@pytest.mark.slow
def test_an_hr_query_row_has_no_lr_path_to_export(registry, runs, tmp_path):
    doc = json.loads((runs["bicubic"] / "config.json").read_text())
    (runs["bicubic"] / "config.json").write_text(json.dumps({**doc, "query": "hr"}))
    try:
        with pytest.raises(HarnessError, match="--query sr or --query bicubic"):
            load_run(runs["bicubic"], registry)
        assert load_run(runs["bicubic"], registry, query="bicubic").query_kind == "bicubic"
    finally:
        (runs["bicubic"] / "config.json").write_text(json.dumps(doc))


def test_readme_use_a_trained_model_names_real_commands_and_options():
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"## Use a trained model.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].split() for line in block.splitlines() if line.strip()]
    assert [words[1] for words in commands] == ["run", "export", "search"]
    for words in commands:
        result = CliRunner().invoke(main, [words[1], "--help"])
        assert result.exit_code == 0
        for word in words:
            if word.startswith("--"):
                assert word in result.output, f"{word} is not an option of harness {words[1]}"
