"""harness/search.py: find an LR query's person in a folder of gallery crops.

One smoke run is shared by the module: the synthetic data written to disk in Market-1501's
layout (``write_layout``) and trained on through the market1501 folder reader, so the
gallery folder holds exactly the files the run's evaluation embedded. (VIPeR at
../shared/data would do the same, but its smoke run takes over three minutes on a 2-core
box; the real-data check is reported in docs/export.md.)
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.data.mlr import downsample
from harness.data.prepare import prepare_data
from harness.errors import HarnessError
from harness.evaluate import extract_features
from harness.export import export_run, load_exported, load_image, load_run, run_embedder
from harness.metrics import pairwise_distance
from harness.run import run_experiment
from harness.rundir import load_run_config
from harness.search import list_gallery, rank, search
from tests.helpers import smoke_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world(registry, tmp_path_factory):
    """A data folder, a finished run on it, and 5 LR query files made from its test queries."""
    root = tmp_path_factory.mktemp("search")
    write = registry.lookup("dataset", "synthetic").write_layout
    data_root = write(
        root / "data", "market1501", train_ids=8, test_ids=8, cameras=2, images_per_camera=2,
        height=32, width=16,
    )  # fmt: skip
    run_dir = root / "run"
    config = smoke_config(registry, data="market1501", data_root=str(data_root), sr="srgan")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(config, run_dir, registry, echo=lambda message: None)
    finally:
        torch.set_num_threads(before)
    split = json.loads((run_dir / "split.json").read_text())
    config = load_run_config(run_dir)
    queries = []
    for i, (image, pid, cam, ratio, _) in enumerate(split["query"][:5]):
        hr = torch.from_numpy(load_image(data_root / image, config.hr_size)).permute(2, 0, 1)
        lr = downsample(hr[None].float() / 255, ratio, config.protocol)[0]
        path = root / "queries" / f"q{i}-x{ratio:g}.png"
        path.parent.mkdir(exist_ok=True)
        array = (lr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(array).save(path)
        queries.append({"path": path, "pid": pid, "cam": cam, "index": i, "ratio": ratio})
    gallery = {row[0]: (row[1], row[2]) for row in split["gallery"]}
    return {
        "root": root,
        "data_root": Path(data_root),
        "run": run_dir,
        "queries": queries,
        "gallery": gallery,
        "gallery_dir": Path(data_root) / "bounding_box_test",
    }


def _true_match_rank(ranked: list[tuple[int, int]], pid: int, cam: int) -> int:
    """1-based rank of the first true match, the query's own camera's copies left out
    (Market-style evaluation, as the run's evaluation scores it)."""
    kept = [p for p, c in ranked if not (p == pid and c == cam)]
    return kept.index(pid) + 1


@pytest.mark.slow
def test_search_ranks_each_true_match_where_the_evaluation_did(registry, world, tmp_path):
    run = load_run(world["run"], registry)
    config = load_run_config(world["run"])
    data = prepare_data(config, registry)
    hr = run.hr_size
    gallery_f = extract_features(run.reid, data.gallery_images, CPU)
    gallery_ids = list(zip(data.gallery_pids.tolist(), data.gallery_camids.tolist(), strict=True))

    doc = search(
        run_embedder(world["run"], registry),
        [q["path"] for q in world["queries"]],
        world["gallery_dir"],
        tmp_path / "out",
        top=10_000,
    )
    assert doc["gallery_size"] == len(data.gallery_images)
    for q, found in zip(world["queries"], doc["queries"], strict=True):
        i, ratio = q["index"], q["ratio"]

        def transform(x, ratio=ratio):  # the evaluation's SR query path, from the HR image
            return run.generator(downsample(x, ratio, config.protocol), hr).float().clamp(0, 1)

        feature = extract_features(run.reid, data.query_images[i : i + 1], CPU, transform=transform)
        dist = pairwise_distance(feature, gallery_f, config.metric)[0]
        order = torch.sort(dist, stable=True).indices.tolist()
        expected = _true_match_rank([gallery_ids[j] for j in order], q["pid"], q["cam"])
        ranked = [world["gallery"][f"bounding_box_test/{m['image']}"] for m in found["matches"]]
        assert found["ratio"] == ratio
        assert _true_match_rank(ranked, q["pid"], q["cam"]) == expected, found["image"]


@pytest.mark.slow
def test_a_second_search_embeds_nothing_again(registry, world, tmp_path):
    embedder = run_embedder(world["run"], registry)
    queries = [world["queries"][0]["path"]]
    first = search(embedder, queries, world["gallery_dir"], tmp_path / "a", top=3)
    assert first["embedded"] == first["gallery_size"] and first["cached"] == 0
    calls = []
    embed = embedder.gallery
    embedder.gallery = lambda batch: calls.append(len(batch)) or embed(batch)
    again = search(embedder, queries, world["gallery_dir"], tmp_path / "a", top=3)
    assert again["embedded"] == 0 and again["cached"] == first["gallery_size"] and calls == []
    assert again["queries"] == first["queries"]

    grown = tmp_path / "grown"
    shutil.copytree(world["gallery_dir"], grown)
    new = next(grown.iterdir())
    Image.open(new).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(grown / "zz-new.png")
    more = search(embedder, queries, grown, tmp_path / "b", top=3, cache_dir=tmp_path / "a/cache")
    assert more["embedded"] == 1 and calls == [1]


@pytest.mark.slow
def test_an_exported_model_searches_like_its_run(registry, world, tmp_path):
    export_run(world["run"], tmp_path / "ts", "torchscript", registry, echo=lambda m: None)
    queries = [q["path"] for q in world["queries"]]
    from_run = search(run_embedder(world["run"], registry), queries, world["gallery_dir"],
                      tmp_path / "r", top=5)  # fmt: skip
    from_export = search(load_exported(tmp_path / "ts"), queries, world["gallery_dir"],
                         tmp_path / "e", top=5)  # fmt: skip
    for a, b in zip(from_run["queries"], from_export["queries"], strict=True):
        assert [m["image"] for m in a["matches"]] == [m["image"] for m in b["matches"]]
        np.testing.assert_allclose(
            [m["distance"] for m in a["matches"]], [m["distance"] for m in b["matches"]], atol=1e-5
        )
    result = CliRunner().invoke(
        main,
        ["search", "--model", str(tmp_path / "ts"), "--query", str(queries[0]),
         "--gallery", str(world["gallery_dir"]), "--top", "4", "--out", str(tmp_path / "cli")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert len(doc["queries"][0]["matches"]) == 4 and (tmp_path / "cli" / "index.html").is_file()


@pytest.mark.slow
def test_page_escapes_names_and_links_relatively(registry, world, tmp_path):
    gallery = tmp_path / "gal"
    gallery.mkdir()
    source = next(world["gallery_dir"].iterdir())
    odd = "a<b>&\"c'.png"
    Image.open(source).save(gallery / odd)
    out = tmp_path / "out"
    search(run_embedder(world["run"], registry), [world["queries"][0]["path"]], gallery, out)
    page = (out / "index.html").read_text()
    assert "<b>" not in page and "a&lt;b&gt;&amp;&quot;c&#x27;.png" in page
    assert "src='../gal/a%3Cb%3E%26%22c%27.png'" in page
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 2 and all(not s.startswith(("/", "file:")) for s in sources)


@pytest.mark.slow
def test_bad_input_is_one_line(world, tmp_path):
    def cli(*args):
        result = CliRunner().invoke(main, ["search", *args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        return result.output

    run, gallery, query = str(world["run"]), str(world["gallery_dir"]), world["queries"][0]["path"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert str(broken) in cli(run, "--query", str(broken), "--gallery", gallery)
    (tmp_path / "empty").mkdir()
    assert "holds no images" in cli(
        run, "--query", str(query), "--gallery", str(tmp_path / "empty")
    )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(world["run"] / "config.json", unfinished)
    (unfinished / "metrics.json").write_text('{"status": "failed"}')
    assert "is not a complete run" in cli(
        str(unfinished), "--query", str(query), "--gallery", gallery
    )
    assert "not both" in cli("--query", str(query), "--gallery", gallery)


def test_empty_gallery_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(HarnessError, match="holds no images"):
        list_gallery(tmp_path)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_rank_is_the_evaluations_distance_with_or_without_faiss(monkeypatch, metric):
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(3, 8)).astype("float32"), rng.normal(size=(20, 8)).astype("float32")
    order, dist = rank(q, g, metric, top=5)
    full = pairwise_distance(torch.from_numpy(q), torch.from_numpy(g), metric).numpy()
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :5], atol=1e-6)
    assert (np.take_along_axis(full, order, 1) == dist).all()

    class Flat:  # the two exact faiss indexes, in numpy: what the hook calls
        def __init__(self, dim, inner):
            self.inner, self.rows = inner, np.zeros((0, dim), "float32")

        def add(self, rows):
            self.rows = np.concatenate([self.rows, rows])

        def search(self, queries, k):
            if self.inner:
                score = queries @ self.rows.T
                idx = np.argsort(-score, axis=1, kind="stable")[:, :k]
            else:
                score = ((queries[:, None] - self.rows[None]) ** 2).sum(-1)
                idx = np.argsort(score, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(score, idx, 1), idx

    fake = types.SimpleNamespace(
        IndexFlatIP=lambda d: Flat(d, True), IndexFlatL2=lambda d: Flat(d, False)
    )
    monkeypatch.setitem(sys.modules, "faiss", fake)
    f_order, f_dist = rank(q, g, metric, top=5, faiss_min=10)
    assert (f_order == order).all()
    np.testing.assert_allclose(f_dist, dist, atol=1e-5)
    small_order, _ = rank(q, g, metric, top=5, faiss_min=1000)  # below the threshold: torch
    assert (small_order == order).all()
