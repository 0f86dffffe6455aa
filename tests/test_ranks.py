"""Ranked lists (issue 26, item 2): a seeded sample covering every ratio, the gallery ranked
as the evaluation ranks it, ranks.json always and ranks.png only where images may be shown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from harness.ranks import (
    FIGURE_FILE,
    JSON_FILE,
    PER_RATIO,
    TOP,
    ranked_lists,
    sample_queries,
    write_ranks,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_sample_covers_every_ratio_and_is_fixed_by_the_seed() -> None:
    ratios = [2.0, 3.0, 4.0, 2.0, 3.0, 4.0, 2.0, 4.0, 4.0, 3.0, 2.0]
    picked = sample_queries(ratios, seed=0)
    assert sample_queries(ratios, seed=0) == picked  # the same queries in every run
    by_ratio = {r: [i for i in picked if ratios[i] == r] for r in (2.0, 3.0, 4.0)}
    assert all(len(v) == PER_RATIO for v in by_ratio.values()), by_ratio
    assert len(set(picked)) == len(picked)
    assert sample_queries([2.0, 3.0, 3.0], seed=5) == [0, 1, 2]  # fewer than asked: all
    draws = {tuple(sample_queries(ratios, seed=s)) for s in range(8)}
    assert len(draws) > 1  # the seed draws, it is not the first queries of each ratio


def test_the_gallery_is_ranked_as_evaluation_ranks_it() -> None:
    """Nearest first; the query's identity from its own camera is left out (Market junk);
    a match is a gallery image of the query's identity from another camera."""
    g_pids = torch.tensor([7, 7, 3, 7, 5])
    g_cams = torch.tensor([0, 1, 1, 1, 1])
    dist = torch.tensor([[0.0, 0.4, 0.1, 0.2, 0.3]])  # gallery 0: same pid, same camera
    (query,) = ranked_lists(
        [4],
        {"sr": dist, "hr": torch.tensor([[-1.0, 0.4, 0.3, 0.2, 0.1]])},
        q_pids=torch.tensor([0, 0, 0, 0, 7]),
        q_cams=torch.tensor([0, 0, 0, 0, 0]),
        q_ratios=torch.tensor([2.0, 2.0, 3.0, 3.0, 4.0]),
        g_pids=g_pids,
        g_cams=g_cams,
        top=3,
    )
    assert (query["index"], query["pid"], query["camid"], query["ratio"]) == (4, 7, 0, 4.0)
    assert query["ranks"]["sr"] == {
        "gallery": [2, 3, 4],
        "pids": [3, 7, 5],
        "distances": [0.1, 0.2, 0.3],
        "match": [False, True, False],
    }
    assert query["ranks"]["hr"]["gallery"] == [4, 3, 2]  # gallery 0 never, even when nearest
    assert "bicubic" not in query["ranks"]  # only the kinds it was given


def _ranks(n_queries: int = 2) -> dict:
    gallery = (torch.rand(12, 3, 16, 8) * 255).to(torch.uint8)
    views = {
        "lr": [torch.rand(3, 8, 4) for _ in range(n_queries)],
        **{k: [torch.rand(3, 16, 8) for _ in range(n_queries)] for k in ("sr", "bicubic", "hr")},
    }
    dist = torch.rand(n_queries, 12)
    queries = ranked_lists(
        list(range(n_queries)),
        {k: dist + i for i, k in enumerate(("sr", "bicubic", "hr"))},
        q_pids=torch.arange(n_queries),
        q_cams=torch.zeros(n_queries, dtype=torch.long),
        q_ratios=torch.tensor([2.0, 4.0][:n_queries]),
        g_pids=torch.arange(12) % 4,
        g_cams=torch.ones(12, dtype=torch.long),
    )
    return {"queries": queries, "views": views, "gallery": gallery, "metric": "euclidean"}


def test_ranks_json_is_always_written_and_the_figure_only_where_images_may_be_shown(
    tmp_path,
) -> None:
    torch.manual_seed(0)
    ranks = _ranks()
    shown = tmp_path / "shown"
    shown.mkdir()
    write_ranks(shown, ranks, {"name": "synthetic"})
    assert (shown / FIGURE_FILE).read_bytes()[:8] == PNG_MAGIC
    doc = json.loads((shown / JSON_FILE).read_text())
    assert doc["figure"] == FIGURE_FILE and doc["top"] == TOP and doc["metric"] == "euclidean"
    assert [len(q["ranks"]["sr"]["gallery"]) for q in doc["queries"]] == [TOP, TOP]

    private = tmp_path / "private"
    private.mkdir()
    (private / FIGURE_FILE).write_bytes(PNG_MAGIC)  # an earlier evaluation's figure
    write_ranks(private, ranks, {"name": "cuhk03", "redistributable": False})
    assert not (private / FIGURE_FILE).exists()
    doc = json.loads((private / JSON_FILE).read_text())
    assert doc["figure"] is None and doc["queries"][0]["ranks"]["hr"]["pids"]  # the data stays

    write_ranks(private, ranks, {"name": "cuhk03", "redistributable": False}, show_images=True)
    assert (private / FIGURE_FILE).is_file()  # the user asked for them


@pytest.mark.slow
def test_show_samples_draws_a_private_datasets_images_only_when_asked(tmp_path) -> None:
    """A run on a dataset that forbids redistribution (cuhk03-partial over generated images,
    never CUHK03's) draws no sample image; harness eval --show-samples draws them for a private
    report without touching config.json (no setting: the run's identity stays), and an eval
    without it takes them away again."""
    from click.testing import CliRunner
    from crossres_plugins.data.synthetic import write_layout

    from harness.cli import main

    data, run = tmp_path / "fake-cuhk03", tmp_path / "run"
    write_layout(data, "cuhk03-partial", train_ids=4, test_ids=3, cameras=2, images_per_camera=2)
    images = ("sr_samples.png", "sr_samples.pt", FIGURE_FILE)

    def cli(*args: str) -> None:
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        assert json.loads((run / "metrics.json").read_text())["status"] == "complete"

    cli(
        *("run", "--preset", "smoke", "--device", "cpu", "--data", "cuhk03-partial"),
        *("--data-root", data, "--val-ids", "0", "--out", run),
        *("--reid-iters", "2", "--sr-warmup-iters", "1", "--sr-iters", "2"),
    )
    assert not any((run / name).exists() for name in images)
    assert (run / JSON_FILE).is_file()  # the ranked lists' numbers hold no image
    config = (run / "config.json").read_text()
    assert "show_samples" not in json.loads(config)["config"]  # a report choice, no setting
    cli("eval", run, "--show-samples")
    assert all((run / name).is_file() for name in images)
    assert (run / "config.json").read_text() == config
    cli("eval", run)
    assert not any((run / name).exists() for name in images)


def test_cuhk03_declares_its_images_may_not_be_redistributed() -> None:
    from crossres_plugins.data import cuhk03

    assert cuhk03.REDISTRIBUTABLE is False


# --------------------------------------------------------------------------- from evaluation


@pytest.fixture(scope="module")
def evaluated(registry, tmp_path_factory):
    """An untrained smoke cascade evaluated: its report, and what evaluation ranked with."""
    from harness.data.prepare import prepare_data
    from harness.evaluate import evaluate_models
    from harness.models import build_models
    from harness.report import write_run_report
    from harness.run import resolve_config, seed_everything

    config = resolve_config({"preset": "smoke"}, registry)
    data = prepare_data(config, registry)
    config = config.replace(hr_height=data.hr_size[0], hr_width=data.hr_size[1])
    seed_everything(0)
    models, _ = build_models(config, registry, data.num_classes)
    metrics, samples = evaluate_models(
        models["G"], models["reid"], data, config, torch.device("cpu")
    )
    run_dir = tmp_path_factory.mktemp("ranks")
    metrics["dataset"] = data.dataset_summary
    write_run_report(run_dir, metrics, samples)
    return run_dir, data, models, config


@pytest.mark.slow
def test_every_run_report_ranks_a_sample_of_every_ratio(evaluated) -> None:
    run_dir, data, _, config = evaluated
    assert (run_dir / FIGURE_FILE).read_bytes()[:8] == PNG_MAGIC
    doc = json.loads((run_dir / JSON_FILE).read_text())
    ratios = {float(r) for r in data.query_ratios.tolist()}
    assert {q["ratio"] for q in doc["queries"]} == ratios
    assert [q["index"] for q in doc["queries"]] == sample_queries(
        data.query_ratios.tolist(), config.protocol.seed
    )
    for q in doc["queries"]:
        assert q["pid"] == int(data.query_pids[q["index"]])
        assert q["ratio"] == float(data.query_ratios[q["index"]])
        assert set(q["ranks"]) == {"sr", "bicubic", "hr"}
        for ranked in q["ranks"].values():
            assert len(ranked["gallery"]) == min(TOP, len(data.gallery_pids))
            assert ranked["distances"] == sorted(ranked["distances"])
            assert ranked["pids"] == [int(data.gallery_pids[g]) for g in ranked["gallery"]]
            assert ranked["match"] == [p == q["pid"] for p in ranked["pids"]]


@pytest.mark.slow
def test_the_hr_ranked_list_is_the_evaluations_own_distances(evaluated) -> None:
    from harness.evaluate import extract_features
    from harness.metrics import pairwise_distance

    run_dir, data, models, config = evaluated
    doc = json.loads((run_dir / JSON_FILE).read_text())
    picked = [q["index"] for q in doc["queries"]]
    device = torch.device("cpu")
    qf = extract_features(models["reid"], data.query_images[picked], device)
    gf = extract_features(models["reid"], data.gallery_images, device)
    dist = pairwise_distance(qf, gf, config.metric)
    for row, q in enumerate(doc["queries"]):
        ranked = q["ranks"]["hr"]
        expected = [float(dist[row, g]) for g in ranked["gallery"]]
        assert ranked["distances"] == pytest.approx(expected, abs=1e-5)
        same = (data.gallery_pids == q["pid"]) & (data.gallery_camids == q["camid"])
        allowed = dist[row].masked_fill(same, math.inf)
        assert ranked["distances"][0] == pytest.approx(float(allowed.min()), abs=1e-5)


def test_old_run_folders_without_ranks_are_still_read(tmp_path: Path) -> None:
    from harness import leaderboard as lb
    from tests.test_leaderboard import make_run

    run = make_run(tmp_path, "old", reg="intact")
    assert not (run / JSON_FILE).exists()
    (result,) = lb.collect([run])
    assert result is not None
