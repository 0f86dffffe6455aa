"""Leaderboard over fabricated run folders: grouping, mean ± std, notes, rendering."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from harness import leaderboard as lb
from harness.config import RunConfig
from harness.publish import write_leaderboard
from harness.site import render_html
from harness.tables import render_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _queries(r1: float, psnr: float = 24.0) -> dict:
    sr = {"rank1": r1, "rank5": r1 + 0.1, "rank10": r1 + 0.15, "mAP": r1 - 0.1, "mINP": 0.1}
    sr["cmc"] = [min(1.0, r1 + 0.01 * i) for i in range(50)]
    sr["per_ratio"] = {
        "2": {"rank1": r1 + 0.05, "rank5": 0.9, "rank10": 0.95, "mAP": 0.5},
        "4": {"rank1": r1 - 0.05, "rank5": 0.8, "rank10": 0.85, "mAP": 0.4},
        "3": {"rank1": r1, "rank5": 0.85, "rank10": 0.9, "mAP": 0.45},
    }
    sr.update({"psnr": psnr, "ssim": 0.7})
    bicubic = dict(sr, rank1=0.4, psnr=21.0)
    hr = {"rank1": 0.9, "rank5": 0.95, "rank10": 0.97, "mAP": 0.8, "mINP": 0.5, "cmc": [0.9] * 50}
    return {"sr": sr, "bicubic": bicubic, "hr": hr}


def make_run(
    root: Path,
    name: str,
    *,
    seed: int = 0,
    r1: float = 0.5,
    psnr: float = 24.0,
    status: str = "complete",
    label: str | None = None,
    paper: dict | None = None,
    bench: str | None = None,
    **fields,
) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = RunConfig(seed=seed, **fields).to_dict()
    doc = {"config": config, "protocol_version": "mlr-1.0", "seed": seed, "versions": {}}
    if label:
        doc["label"] = label
    if paper:
        doc["paper"] = paper
    if bench:
        doc["bench"] = bench
    (run_dir / "config.json").write_text(json.dumps(doc))
    metrics = {"status": status}
    if status == "complete":
        metrics.update(
            {
                "protocol_version": "mlr-1.0",
                "queries": _queries(r1, psnr),
                "num_queries": 64,
                "num_gallery": 512,
                "eval_style": "market",
            }
        )
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def test_seeds_of_one_recipe_are_one_group_with_sample_std(tmp_path) -> None:
    r1s = [0.50, 0.60, 0.70]
    dirs = [make_run(tmp_path, f"intact{s}", seed=s, r1=r, reg="intact") for s, r in enumerate(r1s)]
    dirs.append(make_run(tmp_path, "gan0", seed=0, r1=0.4, reg="gan"))
    groups = lb.group(lb.collect(dirs))
    assert [g.n for g in groups] == [3, 1]
    intact, gan = groups
    stat = intact.stat("sr", "rank1")
    assert stat.mean == pytest.approx(0.60)
    assert stat.std == pytest.approx(statistics.stdev(r1s))  # ddof=1
    assert stat.std == pytest.approx(0.1)
    assert gan.stat("sr", "rank1").std == 0.0  # a single run has no spread
    assert intact.per_ratio["sr"]["2"]["rank1"].mean == pytest.approx(0.65)
    assert list(intact.per_ratio["sr"]) == ["2", "3", "4"]  # numeric order
    assert intact.stat("sr", "psnr").mean == pytest.approx(24.0)
    assert intact.stat("hr", "rank1").mean == pytest.approx(0.9)
    assert intact.cmc["sr"][0] == pytest.approx(0.6)
    assert intact.seeds == [0, 1, 2]
    # Names tell the unlabelled rows apart by the plugins they use.
    assert "intact" in intact.name and "gan" in gan.name


def test_group_key_ignores_seed_protocol_seed_and_paths_but_not_the_recipe(tmp_path) -> None:
    a = make_run(tmp_path, "a", seed=0, data_root="/x", workers=4)
    b = make_run(tmp_path, "b", seed=1, data_root="/y", workers=0)
    c = make_run(tmp_path, "c", seed=0, lr=2e-4)
    doc = json.loads((b / "config.json").read_text())
    doc["config"]["protocol"]["seed"] = 7
    (b / "config.json").write_text(json.dumps(doc))
    groups = lb.group(lb.collect([a, b, c]))
    assert [g.n for g in groups] == [2, 1]
    assert "lr=0.0002" in groups[1].name  # the differing field names the row


def test_label_overrides_the_grouping_key_and_flags_disagreement(tmp_path) -> None:
    a = make_run(tmp_path, "a", seed=0, label="INTACT", reg="intact")
    b = make_run(tmp_path, "b", seed=1, label="INTACT", reg="intact", lr=2e-4)
    groups = lb.group(lb.collect([a, b]))
    assert len(groups) == 1 and groups[0].name == "INTACT" and groups[0].n == 2
    assert any("differ in: lr" in n for n in groups[0].notes)


def test_one_label_in_two_benches_or_on_two_datasets_is_two_rows(tmp_path) -> None:
    dirs = [
        make_run(tmp_path, "v", label="INTACT", bench="mlr-viper", data="viper"),
        make_run(tmp_path, "c", label="INTACT", bench="mlr-cuhk03", data="cuhk03-partial"),
        make_run(tmp_path, "s", label="INTACT", bench="mlr-viper", data="synthetic"),
        make_run(tmp_path, "s1", seed=1, label="INTACT", bench="mlr-viper", data="synthetic"),
        make_run(tmp_path, "a", label="INTACT", bench="loss-ablation", data="synthetic"),
    ]
    groups = lb.group(lb.collect(dirs))
    # Names tell apart the rows of one table: the bench is named only where a label repeats there.
    assert [(g.name, g.n) for g in groups] == [
        ("INTACT", 1),
        ("INTACT", 1),
        ("mlr-viper: INTACT", 2),
        ("loss-ablation: INTACT", 1),
    ]
    assert [g.config["data"] for g in groups] == [
        "viper",
        "cuhk03-partial",
        "synthetic",
        "synthetic",
    ]
    assert [(b.data, len(b.groups)) for b in lb.boards(groups)] == [
        ("viper", 1),
        ("cuhk03-partial", 1),
        ("synthetic", 2),
    ]
    assert not any(g.notes for g in groups)


def test_incomplete_runs_are_excluded_and_reported(tmp_path) -> None:
    done = make_run(tmp_path, "done", seed=0, r1=0.5)
    running = make_run(tmp_path, "running", seed=1, r1=0.9, status="running")
    empty = tmp_path / "empty"
    empty.mkdir()
    results = lb.collect([done, running, empty])
    assert [r.complete for r in results] == [True, False, False]
    assert results[2].status == "no config.json"
    groups = lb.group(results)
    main = groups[0]
    assert main.n == 1 and main.stat("sr", "rank1").mean == pytest.approx(0.5)
    text = render_markdown(groups)
    assert f"not included: {running} (running)" in text
    assert f"not included: {empty} (no config.json)" in text
    assert text.count("| ") >= 2 and "50.0" in text


def _sr_r1(q: dict, value) -> None:
    q["sr"]["rank1"] = value


TAMPERED = [
    (lambda q: _sr_r1(q, "high"), "metrics.json: queries.sr.rank1 is 'high', not a number"),
    (lambda q: q["sr"].pop("cmc"), "metrics.json: queries.sr has no cmc"),
    (
        lambda q: q["hr"].update(cmc=["a"]),
        "metrics.json: queries.hr.cmc is ['a'], not a list of numbers",
    ),
    (
        lambda q: q["sr"].update(rank1_ci=0.5),
        "metrics.json: queries.sr.rank1_ci is 0.5, not a [low, high]",
    ),
    (
        lambda q: q["sr"]["per_ratio"]["2"].update(mAP=None),
        "metrics.json: queries.sr.per_ratio.2.mAP is None, not a number",
    ),
    (lambda q: q.update(bicubic="x"), "metrics.json: queries.bicubic is not a table"),
]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    TAMPERED,
    ids=["rank1-string", "no-cmc", "cmc-strings", "ci-scalar", "ratio-null", "block-string"],
)
def test_a_run_with_a_tampered_metrics_field_is_skipped_with_the_reason(
    tmp_path, tamper, reason
) -> None:
    """One hand-edited metrics.json neither stops the leaderboard (it was a traceback) nor
    enters its numbers: the run is listed as not included, with the field at fault."""
    from click.testing import CliRunner

    from harness.cli import main

    good = make_run(tmp_path / "runs", "good", r1=0.6)
    bad = make_run(tmp_path / "runs", "bad", seed=1, r1=0.2)
    metrics = json.loads((bad / "metrics.json").read_text())
    tamper(metrics["queries"])
    (bad / "metrics.json").write_text(json.dumps(metrics))
    site = tmp_path / "site"
    result = CliRunner().invoke(main, ["leaderboard", str(good), str(bad), "--out", str(site)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert f"not included: {bad} ({reason}" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| srgan"))
    assert "60.0" in row and "20.0" not in row and "±" not in row  # the good run alone
    assert reason in (site / "leaderboard.md").read_text() and (site / "index.html").is_file()


def test_markdown_has_protocol_version_mean_std_and_paper(tmp_path) -> None:
    paper = {"rank1": 88.1, "rank5": 95.0, "rank10": 96.9}
    dirs = [
        make_run(tmp_path, f"s{s}", seed=s, r1=r, label="INTACT", paper=paper)
        for s, r in enumerate([0.80, 0.90])
    ]
    text = render_markdown(lb.group(lb.collect(dirs)))
    assert text.splitlines()[0] == "# Leaderboard (protocol mlr-1.0)"
    lines = text.splitlines()
    assert "## synthetic, market (protocol mlr-1.0)" in lines  # the table's dataset heading
    row = next(line for line in lines if line.startswith("| INTACT"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = [
        c.strip()
        for c in next(line for line in lines if line.startswith("| Run")).strip("|").split("|")
    ]
    got = dict(zip(header, cells, strict=True))
    assert got["R-1"] == "85.0 ± 7.1"  # mean 0.85, sample std 0.0707
    assert got["Runs"] == "2"
    assert got["R-1 ×2"] == "90.0 ± 7.1"
    assert got["Paper R-1/5/10"] == "88.1 / 95.0 / 96.9"
    assert got["Δ R-1"] == "-3.1"
    assert got["HR R-1"] == "90.0 ± 0.0" and got["bicubic R-1"] == "40.0 ± 0.0"
    assert got["PSNR"] == "24.00 ± 0.00"


def test_paper_argument_overrides_config_paper(tmp_path) -> None:
    run = make_run(tmp_path, "a", label="GAN", paper={"rank1": 1.0})
    text = render_markdown(lb.collect([run]), paper={"GAN": {"rank1": 84.7, "rank5": 93.9}})
    assert "84.7 / 93.9 / -" in text


def test_no_paper_columns_when_nobody_names_the_paper(tmp_path) -> None:
    text = render_markdown(lb.collect([make_run(tmp_path, "a")]))
    assert "Paper" not in text


def test_write_leaderboard_files(tmp_path) -> None:
    dirs = [make_run(tmp_path / "runs", f"s{s}", seed=s, r1=0.5 + 0.1 * s) for s in range(2)]
    out = tmp_path / "board"
    written = write_leaderboard(out, lb.group(lb.collect(dirs)), title="Ablation")
    names = sorted(p.name for p in written)
    assert names == [
        "cmc.png",
        "index.html",
        "leaderboard.html",
        "leaderboard.json",
        "leaderboard.md",
    ]
    assert (out / "index.html").read_text() == (out / "leaderboard.html").read_text()
    assert (out / "cmc.png").read_bytes()[:8] == PNG_MAGIC
    page = (out / "leaderboard.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "Ablation (protocol mlr-1.0)" in page
    assert '<td data-sort="55">55.0<span class="sd">± 7.1</span></td>' in page
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["protocol_versions"] == ["mlr-1.0"]
    sr1 = data["groups"][0]["queries"]["sr"]["rank1"]
    assert sr1["mean"] == pytest.approx(0.55) and sr1["n"] == 2
    assert len(data["groups"][0]["cmc_mean"]["sr"]) == 50


@pytest.mark.parametrize("where", ["{run}", "{run}/site", "{run}/../{name}"])
def test_leaderboard_out_never_writes_into_a_run_it_reads(tmp_path, where) -> None:
    """``harness leaderboard RUN --out RUN`` replaced the run's own cmc.png: refused, one line,
    before anything is written; the run's files are byte-identical afterwards."""
    from click.testing import CliRunner

    from harness.cli import main

    run = make_run(tmp_path / "runs", "r1")
    (run / "cmc.png").write_bytes(PNG_MAGIC + b"the run's own curve")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    out = where.format(run=run, name=run.name)
    result = CliRunner().invoke(main, ["leaderboard", str(run), "--out", out])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "run folder" in errors[0] and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # a folder holding the runs is no run folder: a bench writes its leaderboard there
    result = CliRunner().invoke(main, ["leaderboard", str(run), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_paper_numbers_of_another_dataset_are_not_set_beside_a_row(tmp_path) -> None:
    """A run records the dataset its paper numbers were reported on; on other data the row
    gets no paper column and no Δ (a spec's row moved with --data)."""
    paper = {"rank1": 86.4, "rank5": 97.4, "rank10": 98.5, "data": "cuhk03-partial"}
    moved = make_run(tmp_path, "moved", label="INTACT", paper=paper, data="synthetic")
    text = render_markdown(lb.collect([moved]))
    assert "86.4" not in text and "Paper" not in text
    assert lb.to_json(lb.collect([moved]))["groups"][0]["paper"] is None
    home = make_run(tmp_path, "home", label="INTACT", paper=paper, data="cuhk03-partial")
    assert "86.4 / 97.4 / 98.5" in render_markdown(lb.collect([home]))
    legacy = make_run(tmp_path, "legacy", label="GAN", paper={"rank1": 84.7})  # names no data
    assert "84.7 / - / -" in render_markdown(lb.collect([legacy]))


def test_mixed_protocol_versions_are_called_out(tmp_path) -> None:
    a = make_run(tmp_path, "a", reg="gan")
    b = make_run(tmp_path, "b", reg="intact")
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["protocol_version"] = "mlr-0.9"
    (b / "metrics.json").write_text(json.dumps(metrics))
    header = render_markdown(lb.collect([a, b])).splitlines()[0]
    assert "mlr-0.9, mlr-1.0" in header and "not comparable" in header


def test_nothing_finished_renders_a_clear_table(tmp_path) -> None:
    run = make_run(tmp_path, "a", status="running")
    text = render_markdown(lb.collect([run]))
    assert "No finished runs" in text and "(running)" in text
    assert "No finished runs" in render_html(lb.collect([run]))


def test_a_single_gallery_shot_run_shows_its_spread_over_trials(tmp_path) -> None:
    run = make_run(tmp_path, "one", r1=0.5)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["queries"]["sr"]["cmc_std"] = [0.03] * 4 + [0.02] * 5 + [0.01] * 41
    (run / "metrics.json").write_text(json.dumps(metrics))
    two = [make_run(tmp_path, f"s{k}", seed=k, r1=0.5 + 0.1 * k, label="two") for k in range(2)]
    groups = lb.group(lb.collect([run, *two]))
    single, pair = groups
    assert single.stat("sr", "rank1").over == "trials" and single.stat("sr", "rank1").std == 0.03
    assert single.stat("sr", "rank10").std == 0.01
    assert single.stat("sr", "mAP").std == 0.0  # no per-trial mAP spread is recorded
    assert pair.stat("sr", "rank1").over == "runs"
    header, rows = lb.table(groups)
    r1, mAP = header.index("R-1"), header.index("mAP")
    assert rows[0][r1] == "50.0 ± 3.0†" and rows[0][mAP] == "40.0"
    assert rows[1][r1] == "55.0 ± 7.1"


def test_splits_of_one_row_are_neither_a_config_clash_nor_a_repeated_seed(tmp_path) -> None:
    runs = [
        make_run(
            tmp_path, f"split{k}", seed=0, r1=0.3 + 0.1 * k, label="INTACT", options={"split": k}
        )
        for k in range(3)
    ]
    (g,) = lb.group(lb.collect(runs))
    assert g.notes == [] and g.n == 3
    again = make_run(tmp_path, "again", seed=0, r1=0.3, label="INTACT", options={"split": 1})
    (g,) = lb.group(lb.collect([*runs, again]))
    assert g.notes == [
        "INTACT: seed(s) 0 (split 1) appear more than once; "
        "the std understates the spread over seeds"
    ]


# ------------------------------------------------------------------- weight sweeps and diagnostics


def _sweep_rows(
    root: Path,
    reg: str,
    option: str,
    weights: list[float],
    *,
    label: str = "",
    bench: str | None = None,
) -> list[Path]:
    """One run per weight; PSNR falls and Rank-1 rises with the weight (a trade to draw)."""
    return [
        make_run(
            root,
            f"{reg}-{option}-{k}",
            reg=reg,
            options={option: w, "lambda_e": 1.0},
            psnr=25.0 - 10 * w,
            r1=0.3 + w,
            label=f"{label} {option}={w}" if label else None,
            bench=bench,
        )
        for k, w in enumerate(weights)
    ]


def test_rows_differing_in_one_numeric_option_form_a_curve_sorted_by_weight(tmp_path) -> None:
    from harness import sweep

    intact = _sweep_rows(tmp_path, "intact", "lambda_a", [3e-3, 0.0, 1e-1])  # not in weight order
    gan = _sweep_rows(tmp_path, "gan", "lambda_g", [3e-4, 1e-2])
    groups = lb.group(lb.collect(intact + gan))
    curves = sweep.curves(groups)
    # one curve per regulariser: the same option name under another reg is another recipe
    assert [(c.reg, c.option, c.name) for c in curves] == [
        ("intact", "lambda_a", "intact: lambda_a"),
        ("gan", "lambda_g", "gan: lambda_g"),
    ]
    a, g = curves
    assert a.values == [0.0, 3e-3, 1e-1] and g.values == [3e-4, 1e-2]
    assert [p.psnr for p in a.points] == pytest.approx([25.0, 24.97, 24.0])
    assert [p.rank1 for p in a.points] == pytest.approx([30.0, 30.3, 40.0])  # SR-query Rank-1, %
    assert [p.group.config["options"]["lambda_a"] for p in a.points] == a.values
    assert sweep.drawn(curves)  # the intact curve has 3 points
    assert not sweep.drawn(curves[1:])  # two rows are a comparison, not a sweep
    assert [sweep.weight_text(v) for v in (0, 3e-4, 3e-3, 1e-2, 3e-2, 1e-1, 1.5e-3, 1.0, 20)] == [
        "0",
        "3e-4",
        "3e-3",
        "1e-2",
        "3e-2",
        "1e-1",
        "1.5e-3",
        "1",
        "20",
    ]


def test_seeds_average_into_one_point_and_other_recipes_stay_off_the_curve(tmp_path) -> None:
    from harness import sweep

    rows = _sweep_rows(
        tmp_path, "intact", "lambda_a", [0.0, 3e-3, 1e-2], label="INTACT", bench="critic-weight"
    )
    again = make_run(
        tmp_path,
        "seed1",
        seed=1,
        reg="intact",
        options={"lambda_a": 0.0, "lambda_e": 1.0},
        psnr=26.0,
        r1=0.5,
        label="INTACT lambda_a=0.0",
        bench="critic-weight",
    )
    other_lr = make_run(
        tmp_path, "lr", reg="intact", lr=2e-4, options={"lambda_a": 0.5, "lambda_e": 1.0}
    )
    (curve,) = sweep.curves(lb.group(lb.collect([*rows, again, other_lr])))
    assert curve.values == [0.0, 3e-3, 1e-2]  # the row with another lr is another recipe
    first = curve.points[0]
    assert (
        first.group.n == 2
        and first.psnr == pytest.approx(25.5)
        and first.rank1 == pytest.approx(40.0)
    )
    assert first.rank1_std == pytest.approx(100 * statistics.stdev([0.3, 0.5]))


def test_rows_differing_in_two_settings_form_no_curve(tmp_path) -> None:
    from harness import sweep

    dirs = [
        make_run(
            tmp_path,
            f"r{k}",
            reg="intact",
            options={"lambda_a": 1e-3 * (k + 1), "lambda_e": float(k)},
        )
        for k in range(3)
    ]
    dirs += [
        make_run(tmp_path, f"lr{k}", reg="gan", lr=1e-4 * (k + 1)) for k in range(3)
    ]  # core, not an option
    groups = lb.group(lb.collect(dirs))
    assert sweep.curves(groups) == []
    assert "Weight sweep" not in render_markdown(groups)


DIAGNOSTICS = {
    "grad_share": {"mse": 0.8, "id": 0.1, "gan": 0.05, "dis": 0.2},
    "critic_r2": 0.55,
    "critic_r2_at_start": 0.5,
    "critic_gap": 0.12,
    "dis_path_share": {"fc": 0.3},
    "d_accuracy": 0.7,
    "critic_warmup_iters": 200,
}


def _with_diagnostics(run_dir: Path, diagnostics: dict) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["diagnostics"] = diagnostics
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def test_diagnostics_are_averaged_over_seeds_and_printed_under_the_table(tmp_path) -> None:
    second = dict(
        DIAGNOSTICS, grad_share={"mse": 0.6, "id": 0.3, "gan": 0.05, "dis": 0.2}, critic_r2=0.45
    )
    second.pop("d_accuracy")
    dirs = [
        _with_diagnostics(
            make_run(tmp_path, "s0", seed=0, label="INTACT", reg="intact"), DIAGNOSTICS
        ),
        _with_diagnostics(make_run(tmp_path, "s1", seed=1, label="INTACT", reg="intact"), second),
        make_run(tmp_path, "gan", label="GAN", reg="gan"),
    ]
    groups = lb.group(lb.collect(dirs))
    intact, gan = groups
    assert intact.diagnostics["grad_share"] == pytest.approx(
        {"mse": 0.7, "id": 0.2, "gan": 0.05, "dis": 0.2}
    )
    assert intact.diagnostics["critic_r2"] == pytest.approx(0.5)
    assert intact.diagnostics["d_accuracy"] == pytest.approx(
        0.7
    )  # the mean over the runs reporting it
    assert gan.diagnostics == {}
    assert lb.diagnostics_text(DIAGNOSTICS) == (
        "grad share mse 0.80 · id 0.10 · gan 0.05 · dis 0.20; "
        "critic R² 0.55 (0.50 at start); gap 0.12; "
        "L_dis via f_c 30%; D acc 0.70; critic warm-up 200 iters"
    )
    assert (
        lb.diagnostics_text({"d_accuracy": 0.5, "new_probe": 0.004})
        == "D acc 0.50; new_probe 4.0e-03"
    )
    # metrics.json stores keys sorted; G's terms still read in the order of its objective
    stored = json.loads(
        json.dumps(
            {
                "grad_share": {"bridge": 0.3, **DIAGNOSTICS["grad_share"]},
                "critic_r2": 0.6,
                "critic_r2_end": 0.7,
            },
            sort_keys=True,
        )
    )
    assert lb.diagnostics_text(stored) == (
        "grad share mse 0.80 · id 0.10 · gan 0.05 · dis 0.20 · bridge 0.30; "
        "critic R² 0.60 (0.70 at end)"
    )
    text = render_markdown(groups)
    line = next(x for x in text.splitlines() if x.startswith("- INTACT:"))
    assert line == (
        "- INTACT: grad share mse 0.70 · id 0.20 · gan 0.05 · dis 0.20; "
        "critic R² 0.50 (0.50 at start); "
        "gap 0.12; L_dis via f_c 30%; D acc 0.70; critic warm-up 200 iters"
    )
    assert "- GAN:" not in text  # no diagnostics block, no line
    data = lb.to_json(groups)
    assert data["groups"][0]["diagnostics"]["critic_r2"] == pytest.approx(0.5)


def test_weights_that_land_on_the_same_numbers_share_one_label(tmp_path) -> None:
    from harness import sweep

    weights = [0.0, 3e-4, 3e-3, 1e-2]
    dirs = [
        make_run(tmp_path, f"g{k}", reg="gan", options={"lambda_g": w})
        for k, w in enumerate(weights)
    ]
    dirs += _sweep_rows(tmp_path, "intact", "lambda_a", [0.0, 0.1, 0.2])
    curves = sweep.curves(lb.group(lb.collect(dirs)))
    ax = sweep.sweep_figure(curves).axes[0]
    # the GAN term changed nothing: one label for its four weights, not four printed over each other
    assert sorted(t.get_text() for t in ax.texts) == ["0", "0 to 1e-2", "1e-1", "2e-1"]


def _with_interval(run_dir: Path, se: float, ci: list[float]) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["queries"]["sr"].update(rank1_se=se, rank1_ci=ci)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def test_rank1_interval_of_one_run_is_its_bootstrap_interval(tmp_path) -> None:
    run = _with_interval(make_run(tmp_path, "a", r1=0.5), 0.05, [0.41, 0.6])
    (group,) = lb.group(lb.collect([run]))
    assert lb.rank1_interval(group) == (0.41, 0.6)
    text = render_markdown([group])
    header = next(line for line in text.splitlines() if line.startswith("| Run"))
    assert "| R-1 95% CI |" in header and "[41.0, 60.0]" in text


def test_rank1_interval_over_seeds_combines_shared_people_and_seed_spread(tmp_path) -> None:
    runs = [
        _with_interval(make_run(tmp_path, f"s{i}", seed=i, r1=r1), 0.04, [0.0, 1.0])
        for i, r1 in enumerate((0.40, 0.50))
    ]
    (group,) = lb.group(lb.collect(runs))
    lo, hi = lb.rank1_interval(group)
    # seeds share their test identities: identity se stays 0.04; the seed spread adds
    # std(0.4, 0.5) / sqrt(2) = 0.05; se = hypot(0.04, 0.05)
    se = (0.04**2 + 0.05**2) ** 0.5
    assert (lo, hi) == pytest.approx((0.45 - 1.96 * se, 0.45 + 1.96 * se))


def test_rows_from_before_the_bootstrap_show_no_interval_column(tmp_path) -> None:
    text = render_markdown(lb.collect([make_run(tmp_path, "old")]))
    header = next(line for line in text.splitlines() if line.startswith("| Run"))
    assert "95% CI" not in header


# --------------------------------------------------------------------------- paired comparisons


def with_per_query(run_dir: Path, hits: list[float], kind: str = "sr") -> Path:
    """A per_query.json whose Rank-1 hits are ``hits`` (two queries per person), and a
    metrics.json whose Rank-1 and mAP agree with it."""
    n = len(hits)
    block = {
        "index": list(range(n)),
        "pid": [i // 2 for i in range(n)],
        "ratio": [2.0] * n,
        "rank1": hits,
        "rank5": hits,
        "rank10": hits,
        "AP": [0.8 * h for h in hits],
        "INP": hits,
    }
    doc = {"schema": 1, "data": "synthetic", "protocol_version": "mlr-1.0"}
    doc["queries"] = {kind: block}
    (run_dir / "per_query.json").write_text(json.dumps(doc))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["queries"][kind].update(rank1=sum(hits) / n, mAP=0.8 * sum(hits) / n)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def _hits(n: int, rate: float, seed: int) -> list[float]:
    rng = __import__("numpy").random.default_rng(seed)
    return [float(v < rate) for v in rng.random(n)]


def _paired_rows(tmp_path: Path) -> list[Path]:
    """best (R-1 52/100), one query behind it (51), and far behind (25)."""
    best = _hits(100, 0.5, 0)
    best[:4] = [1.0, 1.0, 1.0, 0.0]
    near = list(best)
    near[0] = 0.0  # the same ranking but for one query
    far = [h if i % 2 else 0.0 for i, h in enumerate(best)]
    return [
        with_per_query(make_run(tmp_path, name, label=name, bench="b"), hits)
        for name, hits in (("best", best), ("near", near), ("far", far))
    ]


def test_a_row_one_query_behind_the_best_is_tied_and_one_far_behind_is_not(tmp_path) -> None:
    groups = lb.group(lb.collect(_paired_rows(tmp_path)))
    cmp = lb.compare_rows(groups)
    best, near, far = groups
    assert cmp.best == {"rank1": best, "mAP": best} and cmp.reference is best
    assert cmp.row(best).mark == {"rank1": "best", "mAP": "best"}
    assert cmp.row(near).mark == {"rank1": "tied", "mAP": "tied"}
    assert cmp.row(far).mark == {"rank1": "apart", "mAP": "apart"}
    assert cmp.row(near).vs_reference["rank1"].delta == pytest.approx(-0.01)
    header, rows = lb.table(groups)
    r1, d1, dmap = header.index("R-1"), header.index("Δ R-1 vs ref"), header.index("Δ mAP vs ref")
    assert [row[r1][-1] for row in rows] == ["★", "≈", "0"]  # far: no mark after its number
    near_ci = cmp.row(near).vs_reference["rank1"].ci
    assert rows[1][d1] == f"-1.0 [{100 * near_ci[0]:+.1f}, {100 * near_ci[1]:+.1f}]"
    assert rows[0][d1] == "ref" and rows[0][dmap] == "ref"
    text = render_markdown(groups)
    assert "paired bootstrap over query identities" in text
    assert "Δ is to the reference row best (the best R-1 row)" in text


def test_a_named_reference_row_and_leaderboard_json_carry_the_comparisons(tmp_path) -> None:
    groups = lb.group(lb.collect(_paired_rows(tmp_path)))
    assert lb.mark_reference(groups, "far") and not lb.mark_reference(list(groups), "nobody")
    lb.mark_reference(groups, "far")
    doc = lb.to_json(groups)
    (board,) = doc["boards"]
    assert board["reference"] == "far" and board["reference_named"] is True
    assert board["best"] == {"rank1": "best", "mAP": "best"}
    rows = {g["name"]: g["paired"] for g in doc["groups"]}
    assert rows["near"]["rank1"]["mark"] == "tied" and rows["far"]["rank1"]["mark"] == "apart"
    assert rows["far"]["rank1"]["vs_reference"] is None  # the reference row itself
    to_far = rows["best"]["rank1"]["vs_reference"]
    best, _, far = groups
    gap = best.stat("sr", "rank1").mean - far.stat("sr", "rank1").mean
    assert gap > 0.2 and to_far["delta"] == pytest.approx(gap) and to_far["significant"] is True
    assert doc["paired"]["resamples"] >= 1000 and doc["schema"] == 1
    assert "Δ is to the reference row far (named by the bench spec)" in render_markdown(groups)


def test_rows_without_per_query_files_get_no_marks_and_a_note(tmp_path) -> None:
    dirs = _paired_rows(tmp_path)
    (dirs[2] / "per_query.json").unlink()  # a run from before the file existed
    groups = lb.group(lb.collect(dirs))
    header, rows = lb.table(groups)
    r1 = header.index("R-1")
    assert rows[1][r1].endswith("≈") and rows[2][r1].endswith(".0")
    assert rows[2][header.index("Δ R-1 vs ref")] == "-"
    assert any("no paired comparison for far: no per_query.json" in n for n in lb.notes(groups))
    for d in dirs[:2]:
        (d / "per_query.json").unlink()
    header, rows = lb.table(lb.group(lb.collect(dirs)))  # nothing to compare: as before
    assert "Δ R-1 vs ref" not in header and not any("★" in c for row in rows for c in row)


def test_rows_on_other_queries_are_not_paired(tmp_path) -> None:
    dirs = _paired_rows(tmp_path)
    doc = json.loads((dirs[1] / "per_query.json").read_text())
    doc["queries"]["sr"]["pid"] = list(range(100))  # other people
    (dirs[1] / "per_query.json").write_text(json.dumps(doc))
    groups = lb.group(lb.collect(dirs))
    assert "rank1" not in lb.compare_rows(groups).row(groups[1]).mark
    assert any("near and best are not paired" in n for n in lb.notes(groups))


def test_a_bench_spec_names_its_reference_row(tmp_path) -> None:
    from harness.bench import parse_spec, write_bench_leaderboard
    from harness.errors import HarnessError

    rows = [{"label": "best"}, {"label": "near"}, {"label": "far"}]
    spec = parse_spec({"name": "b", "reference": "near", "runs": rows})
    assert spec.reference == "near"
    with pytest.raises(HarnessError, match="reference = 'nera' names no row.*'near'"):
        parse_spec({"name": "b", "reference": "nera", "runs": rows})
    for d in _paired_rows(tmp_path / "runs"):
        (tmp_path / "out" / d.name).mkdir(parents=True)
        d.rename(tmp_path / "out" / d.name / "seed0")
    write_bench_leaderboard(spec, tmp_path / "out")
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())["boards"][0]
    assert board["reference"] == "near" and board["reference_named"]


def test_rows_of_different_tables_are_never_compared(tmp_path) -> None:
    dirs = _paired_rows(tmp_path)
    dirs.append(with_per_query(make_run(tmp_path, "m", data="market1501"), _hits(100, 0.9, 3)))
    groups = lb.group(lb.collect(dirs))
    assert not lb.compare_rows(groups).any  # a mixed list: no best across datasets
    header, _ = lb.table(groups)
    assert "Data" in header and "Δ R-1 vs ref" not in header
    (synthetic, market) = lb.boards(groups)
    assert lb.compare_rows(synthetic.groups).any and not lb.compare_rows(market.groups).any
