"""Run-folder artefacts: files exist, parse, and say what the metrics say."""

from __future__ import annotations

import csv

import pytest
import torch

from harness.report import (
    cmc_figure,
    figure_text,
    format_summary,
    load_samples,
    ordered_kinds,
    plot_cmc,
    plot_sr_samples,
    write_cmc_csv,
    write_run_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curve(start: float) -> list[float]:
    return [min(1.0, start + 0.01 * i) for i in range(50)]


def _metrics() -> dict:
    per_ratio = {
        r: {"rank1": 0.5, "rank5": 0.7, "rank10": 0.8, "mAP": 0.4, "psnr": 22.0, "ssim": 0.6}
        for r in ("2", "3", "4")
    }
    sr = {"rank1": 0.625, "rank5": 0.8, "rank10": 0.875, "mAP": 0.5, "mINP": 0.2}
    sr.update({"cmc": _curve(0.625), "per_ratio": per_ratio, "psnr": 24.123, "ssim": 0.7123})
    bicubic = dict(sr, rank1=0.5, cmc=_curve(0.5), psnr=21.0, ssim=0.61)
    hr = {"rank1": 0.9, "rank5": 0.95, "rank10": 0.97, "mAP": 0.8, "mINP": 0.5, "cmc": _curve(0.9)}
    return {
        "status": "complete",
        "protocol_version": "mlr-1.0",
        "wall_time_s": 1.0,
        # "lr-aug" first on purpose: the report must still put sr, bicubic, hr first.
        "queries": {
            "lr-aug": dict(hr, rank1=0.3, cmc=_curve(0.3)),
            "hr": hr,
            "bicubic": bicubic,
            "sr": sr,
        },
        "num_queries": 64,
        "num_gallery": 512,
        "eval_style": "market",
    }


def test_ordered_kinds_puts_sr_bicubic_hr_first() -> None:
    assert ordered_kinds(["zeta", "hr", "lr-aug", "sr", "bicubic"]) == [
        "sr",
        "bicubic",
        "hr",
        "lr-aug",
        "zeta",
    ]


def test_cmc_csv_has_header_and_fifty_ranks(tmp_path) -> None:
    metrics = _metrics()
    path = write_cmc_csv(tmp_path / "cmc.csv", metrics["queries"])
    lines = path.read_text().splitlines()
    assert len(lines) == 51
    rows = list(csv.reader(lines))
    assert rows[0] == ["rank", "sr", "bicubic", "hr", "lr-aug"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 51))
    assert float(rows[1][1]) == pytest.approx(0.625)
    assert float(rows[3][2]) == pytest.approx(0.52)  # bicubic at rank 3
    assert float(rows[50][3]) == pytest.approx(1.0)


def test_cmc_csv_leaves_short_curves_empty(tmp_path) -> None:
    queries = {"sr": {"cmc": [0.1, 0.2, 0.3]}, "hr": {"cmc": [0.5]}}
    rows = list(csv.reader((write_cmc_csv(tmp_path / "c.csv", queries)).read_text().splitlines()))
    assert rows[2] == ["2", "0.200000", ""]


def test_plots_are_png(tmp_path) -> None:
    metrics = _metrics()
    metrics["queries"]["sr"]["cmc_std"] = [0.01] * 50  # single-gallery-shot band
    cmc = plot_cmc(tmp_path / "cmc.png", metrics["queries"], "CMC")
    assert cmc.read_bytes()[:8] == PNG_MAGIC
    torch.manual_seed(0)
    hr = torch.rand(5, 3, 32, 16)
    lr = torch.rand(5, 3, 8, 4)  # smaller: must be nearest-upsampled, not rejected
    out = plot_sr_samples(tmp_path / "s.png", lr, hr * 0.9, hr, bicubic=hr * 0.8, max_images=3)
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp files


@pytest.mark.parametrize(
    "label", [r"$\notacommand{x}$", "a" * 300, "cost $5 and $6", "mixed $x$ " + "b" * 200]
)
def test_a_label_is_drawn_literally_and_never_fails_the_figure(tmp_path, label) -> None:
    """Labels are the user's: mathtext or 300 characters must not fail a leaderboard after the
    runs have trained (both did, with a traceback)."""
    curve = [0.5] * 50
    fig = cmc_figure({label: curve, "bicubic": curve}, title=label)
    path = tmp_path / "cmc.png"
    fig.savefig(path)  # matplotlib parses mathtext here
    assert path.read_bytes()[:8] == PNG_MAGIC
    drawn = figure_text(label)
    assert len(drawn.replace(r"\$", "$")) <= 80 and "$" not in drawn.replace(r"\$", "")
    assert figure_text("INTACT (ours)") == "INTACT (ours)"  # ordinary labels untouched


def test_format_summary_shows_percentages_and_quality() -> None:
    text = format_summary(_metrics())
    lines = text.splitlines()
    assert "mlr-1.0" in lines[0] and "64 queries" in lines[0]
    body = [
        line
        for line in lines
        if line.split() and line.split()[0] in {"sr", "bicubic", "hr", "lr-aug"}
    ]
    assert [line.split()[0] for line in body] == ["sr", "bicubic", "hr", "lr-aug"]
    assert body[0].split() == ["sr", "62.5", "80.0", "87.5", "50.0", "24.12", "0.712"]
    assert body[2].split() == ["hr", "90.0", "95.0", "97.0", "80.0"]  # no PSNR for HR queries
    assert "\x1b" not in text  # plain text, no terminal colour codes


def test_format_summary_survives_nan_quality() -> None:
    metrics = _metrics()
    metrics["queries"]["sr"]["psnr"] = float("nan")
    assert "nan" not in format_summary(metrics)


def test_write_run_report_writes_all_files(tmp_path) -> None:
    hr = torch.rand(4, 3, 32, 16)
    samples = {"lr": torch.rand(4, 3, 32, 16), "sr": hr, "hr": hr, "bicubic": hr}
    written = write_run_report(tmp_path, _metrics(), samples)
    assert sorted(p.name for p in written) == [
        "cmc.csv",
        "cmc.png",
        "sr_samples.png",
        "sr_samples.pt",
    ]
    assert (tmp_path / "sr_samples.png").read_bytes()[:8] == PNG_MAGIC
    stored = load_samples(tmp_path / "sr_samples.pt")  # uint8, within one grey level of the input
    assert set(stored) == {"lr", "bicubic", "sr", "hr"} and stored["hr"].dtype == torch.uint8
    assert (stored["hr"].float() / 255 - hr).abs().max() <= 0.5 / 255 + 1e-6


def _private_dataset(tmp_path) -> dict:
    """The summary of a dataset that forbids redistributing its images: the cuhk03-partial
    plugin reading a layout of tiny generated images (never CUHK03's own)."""
    from crossres_plugins.data.cuhk03 import read_cuhk03_partial
    from crossres_plugins.data.synthetic import write_layout

    root = tmp_path / "fake-cuhk03"
    write_layout(root, "cuhk03-partial", train_ids=2, test_ids=2, cameras=2, images_per_camera=1)
    summary = read_cuhk03_partial(root).summary()
    assert summary["redistributable"] is False
    return summary


def test_a_private_datasets_sample_images_are_drawn_only_when_asked(tmp_path) -> None:
    metrics = {**_metrics(), "dataset": _private_dataset(tmp_path)}
    hr = torch.rand(4, 3, 32, 16)
    samples = {"lr": torch.rand(4, 3, 32, 16), "sr": hr, "hr": hr, "bicubic": hr}
    run = tmp_path / "run"
    written = write_run_report(run, metrics, samples)
    assert sorted(p.name for p in written) == ["cmc.csv", "cmc.png"]
    assert not (run / "sr_samples.png").exists() and not (run / "sr_samples.pt").exists()
    written = write_run_report(run, metrics, samples, show_images=True)  # --show-samples
    assert {"sr_samples.png", "sr_samples.pt"} <= {p.name for p in written}
    assert (run / "sr_samples.png").read_bytes()[:8] == PNG_MAGIC
    write_run_report(run, metrics, samples)  # asked no more: the earlier images go
    assert not (run / "sr_samples.png").exists() and not (run / "sr_samples.pt").exists()


def test_cmc_legend_never_covers_the_curves() -> None:
    import warnings

    names = [f"srgan/resnet18/intact lambda_a=0.00{k} bridge_dim={k}" for k in range(8)]
    curves = {n: [min(1.0, 0.1 * k + 0.02 * r) for r in range(50)] for k, n in enumerate(names)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Tight layout not applied"
        fig = cmc_figure(curves, "CMC")
        fig.draw_without_rendering()  # applies the constrained layout, as savefig does
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent()
    plot = ax.get_window_extent()
    assert legend.x0 >= plot.x1  # beside the axes, not over them
    assert legend.x1 <= fig.bbox.x1 + 1  # and not cut off by the figure edge
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names


def test_write_run_report_without_samples(tmp_path) -> None:
    written = write_run_report(tmp_path, _metrics())
    assert sorted(p.name for p in written) == ["cmc.csv", "cmc.png"]
    assert not (tmp_path / "sr_samples.png").exists()


def test_format_summary_gives_rank1_intervals_where_metrics_carry_them() -> None:
    metrics = _metrics()
    assert "interval" not in format_summary(metrics)  # metrics written before the bootstrap
    boot = {
        "resamples": 1000,
        "level": 0.95,
        "unit": "query identity",
        "identities": 100,
        "seed": 0,
    }
    metrics["queries"]["sr"].update(rank1_ci=[0.52, 0.73], bootstrap=boot)
    metrics["queries"]["hr"].update(rank1_ci=[0.84, 0.95], bootstrap=boot)
    line = format_summary(metrics).splitlines()[-1]
    assert line == (
        "Rank-1 95% interval (bootstrap over 100 query identities): "
        "sr [52.0, 73.0], hr [84.0, 95.0]"
    )
