"""The leaderboard a person reads: row names, one table per dataset, the static site.

The last tests render the site in headless Chromium (Debian's ``chromium`` package) and
read the DOM it produces; they skip with a message where no browser is installed.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness import leaderboard as lb
from harness.cli import main
from harness.publish import write_leaderboard
from harness.report import save_samples
from harness.site import render_html
from tests.test_leaderboard import make_run, with_per_query

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _options(doc_dir: Path, options: dict) -> None:
    """Give a fabricated run the plugin options its reg declares (as a real config.json does)."""
    path = doc_dir / "config.json"
    doc = json.loads(path.read_text())
    doc["config"]["options"] = options
    path.write_text(json.dumps(doc))


# --------------------------------------------------------------------------- names


def test_rows_are_named_by_what_differs_among_rows_that_declare_it(tmp_path) -> None:
    none = make_run(tmp_path, "none", reg="none")
    _options(none, {"lambda_c": 0.0003, "sr_blocks": 6})
    a = make_run(tmp_path, "a", reg="intact")
    _options(
        a,
        {"lambda_c": 0.0003, "sr_blocks": 6, "lambda_a": 0.0003, "bridge_dim": 64, "lambda_e": 1.0},
    )
    b = make_run(tmp_path, "b", reg="intact", finetune_reid=True)
    _options(
        b,
        {"lambda_c": 0.0003, "sr_blocks": 6, "lambda_a": 0.001, "bridge_dim": 64, "lambda_e": None},
    )
    names = [g.name for g in lb.group(lb.collect([none, a, b]))]
    # bridge_dim and lambda_e are not differences: the rows without them do not have them,
    # and the rows that do agree; lambda_a differs between the two rows that declare it.
    assert names == [
        "srgan/resnet18/none finetune_reid=False",
        "srgan/resnet18/intact finetune_reid=False lambda_a=0.0003",
        "srgan/resnet18/intact finetune_reid=True lambda_a=0.001",
    ]


def test_long_names_are_cut_in_tables_and_legends_but_kept_whole(tmp_path) -> None:
    lrs = [0.0001, 0.0002, 0.0003]
    dirs = [
        make_run(
            tmp_path,
            f"r{k}",
            reg="intact",
            lr=lrs[k],
            lr_reid=1e-3 * (k + 1),
            batch_size=16 + k,
            sr_iters=100 + k,
            reid_iters=50 + k,
        )
        for k in range(3)
    ]
    groups = lb.group(lb.collect(dirs))
    g = groups[0]
    assert len(g.name) > lb.SHORT_NAME
    # Every row shares srgan/resnet18/intact: the short name spends its room on what differs.
    assert [x.short for x in groups] == [f"batch_size={16 + k} lr={lrs[k]} +3" for k in range(3)]
    assert all(len(x.short) <= lb.SHORT_NAME for x in groups)
    page = render_html(groups)
    # the full name is one click away: a tooltip and the first line of the row's details
    assert (
        f'<summary title="{g.name}">{g.short}</summary><div class="recipe">{g.name}</div>' in page
    )
    fig = lb.cmc_plot(groups)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [x.short for x in groups]


# --------------------------------------------------------------------------- one table per dataset


def test_each_dataset_gets_its_own_table_and_cmc_plot(tmp_path) -> None:
    runs = tmp_path / "runs"
    dirs = [
        make_run(runs, "syn-none", reg="none", data="synthetic"),
        make_run(runs, "syn-intact", reg="intact", data="synthetic"),
        make_run(runs, "cuhk-intact", reg="intact", data="cuhk01", r1=0.83),
    ]
    result = CliRunner().invoke(
        main, ["leaderboard", *map(str, dirs), "--out", str(tmp_path / "site")]
    )
    assert result.exit_code == 0, result.output
    md = result.output
    assert (
        "## synthetic, market (protocol mlr-1.0)" in md
        and "## cuhk01, market (protocol mlr-1.0)" in md
    )
    syn, cuhk = md.split("## cuhk01")[0], md.split("## cuhk01")[1]
    assert "srgan/resnet18/none" in syn and "83.0" not in syn  # never ranked together
    assert "83.0" in cuhk and "srgan/resnet18/none" not in cuhk
    site = tmp_path / "site"
    assert sorted(p.name for p in site.glob("cmc-*.png")) == [
        "cmc-cuhk01-mlr-1.0.png",
        "cmc-synthetic-mlr-1.0.png",
    ]
    assert not (site / "cmc.png").exists()
    page = (site / "index.html").read_text()
    assert page.count('<table class="board"') == 2
    tables = json.loads((site / "leaderboard.json").read_text())["boards"]
    assert [(t["data"], len(t["rows"])) for t in tables] == [("synthetic", 2), ("cuhk01", 1)]


def test_a_protocol_version_change_is_another_table(tmp_path) -> None:
    a = make_run(tmp_path, "a", reg="gan")
    b = make_run(tmp_path, "b", reg="intact")
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["protocol_version"] = "mlr-0.9"
    (b / "metrics.json").write_text(json.dumps(metrics))
    assert [(x.data, x.protocol) for x in lb.boards(lb.group(lb.collect([a, b])))] == [
        ("synthetic", "mlr-1.0"),
        ("synthetic", "mlr-0.9"),
    ]


# --------------------------------------------------------------------------- site contents


def _with_samples(run_dir: Path, hr: torch.Tensor, sr_shift: float) -> Path:
    (run_dir / "sr_samples.png").write_bytes(PNG_MAGIC)
    save_samples(
        run_dir / "sr_samples.pt",
        {"lr": hr * 0.5, "bicubic": hr * 0.8, "sr": (hr + sr_shift).clamp(0, 1), "hr": hr},
    )
    return run_dir


def test_site_links_runs_and_sets_the_same_queries_side_by_side(tmp_path) -> None:
    from harness.site import _sample_rows

    torch.manual_seed(0)
    hr = torch.rand(4, 3, 16, 8)
    runs = tmp_path / "runs"
    a = _with_samples(make_run(runs, "a", reg="gan", label="GAN", bench="b"), hr, 0.1)
    b = _with_samples(
        make_run(runs, "b", reg="intact", label="INTACT", bench="b", paper={"rank1": 88.1}), hr, 0.2
    )
    other = _with_samples(
        make_run(runs, "c", reg="none", label="MSE", bench="b"), torch.rand(4, 3, 16, 8), 0.0
    )
    groups = lb.group(lb.collect([a, b, other]))
    (board,) = lb.boards(groups)
    rows, shown = _sample_rows(board)
    # Only runs whose HR images are the same queries are composed; the third row's differ.
    assert [name for name, _ in rows] == ["LR", "bicubic", "SR: GAN", "SR: INTACT", "HR"]
    assert [g.label for g in shown] == ["GAN", "INTACT"]
    site = tmp_path / "site"
    write_leaderboard(site, groups)
    page = (site / "index.html").read_text()
    assert 'href="./../runs/a/config.json"' in page and 'href="./../runs/b/sr_samples.png"' in page
    assert (site / "../runs/a/config.json").is_file()
    assert "88.1 / - / -" in page and "protocol mlr-1.0" in page
    assert page.count('alt="SR samples"') == 1
    for forbidden in ("http://", "https://", "<link", 'src="http'):
        assert forbidden not in page  # self-contained: nothing is fetched


def test_no_folder_name_becomes_a_link_scheme(tmp_path) -> None:
    """A run folder named like a script URL is linked as a relative, percent-encoded path."""
    runs = tmp_path / "runs"
    evil = make_run(runs, "javascript:alert(1)", reg="gan")
    spaced = make_run(runs, "a b#c?d", reg="intact")
    site = tmp_path / "site"
    write_leaderboard(site, lb.group(lb.collect([evil, spaced])))
    page = (site / "index.html").read_text()
    hrefs = [h for h in page.split('href="')[1:]]
    links = [h.split('"', 1)[0] for h in hrefs if not h.startswith("#")]
    assert links and all(link.startswith("./") for link in links), links
    assert 'href="./../runs/javascript%3Aalert%281%29/config.json"' in page
    assert 'href="./../runs/a%20b%23c%3Fd/config.json"' in page
    assert (site / "../runs/javascript:alert(1)/config.json").is_file()


def test_runs_without_stored_tensors_show_their_own_sample_figures(tmp_path) -> None:
    run = make_run(tmp_path / "runs", "old", reg="intact")
    (run / "sr_samples.png").write_bytes(PNG_MAGIC)
    (run / "sr_samples.pt").write_bytes(b"not a torch file")  # corrupt: ignored, not fatal
    page = render_html(lb.group(lb.collect([run])), out_dir=tmp_path / "site")
    assert 'src="./../runs/old/sr_samples.png"' in page and 'alt="SR samples"' not in page


# --------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it as root)",
)
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1000",
]


def _chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *HEADLESS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Dom(HTMLParser):
    """Header cells, rows (data-name) per table, the body's measured widths, and each
    figure's attributes (the page's script writes its rendered box and image size there)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.body: dict[str, str | None] = {}
        self.figures: list[dict[str, str | None]] = []
        self.paired: list[str] = []  # the line under each table naming its best and reference
        self._in_th = False
        self._in_td = False
        self._in_paired = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "figure":
            self.figures.append(a)
        elif tag == "table":
            self.tables.append({"header": [], "rows": [], "sorted": a.get("data-sorted-by")})
        elif tag == "th" and self.tables:
            self._in_th = True
            self.tables[-1]["header"].append("")
        elif tag == "tr" and a.get("data-name") is not None:
            self.tables[-1]["rows"].append(a["data-name"])
            self.tables[-1].setdefault("cells", {})[a["data-name"]] = []
        elif tag == "td" and self.tables and self.tables[-1]["rows"]:
            self._in_td = True
            self.tables[-1]["cells"][self.tables[-1]["rows"][-1]].append("")
        elif tag == "p" and "paired" in (a.get("class") or "").split():
            self._in_paired = True
            self.paired.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._in_th = False
        elif tag == "td":
            self._in_td = False
        elif tag == "p":
            self._in_paired = False

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.tables[-1]["header"][-1] += data
        elif self._in_td:
            self.tables[-1]["cells"][self.tables[-1]["rows"][-1]][-1] += data
        elif self._in_paired:
            self.paired[-1] += data


def _table_one_site(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A Table-1-sized leaderboard (9 labelled rows, 2 seeds, paper numbers, an HR-query row)
    on one dataset, every run with a per_query.json on the same 100 queries (so paired marks
    and Δ appear), and two unlabelled runs on another dataset, from before per_query.json."""
    runs = tmp_path / "runs"
    labels = [
        "HR query (upper bound)",
        "bicubic",
        "res-aug re-id, no SR",
        "SRGAN (MSE+ID+GAN)",
        "common space (Fig. 5a)",
        "D-to-R (Fig. 5b)",
        "INTACT without bridge",
        "INTACT",
        "INTACT + finetuned re-id, a long label that must be cut",
    ]
    r1s = [0.52, 0.31, 0.44, 0.47, 0.45, 0.46, 0.49, 0.61, 0.60]
    order = random.Random(0).sample(range(100), 100)  # which queries a row finds first
    dirs = []
    for label, r1 in zip(labels, r1s, strict=True):
        for seed in range(2):
            d = make_run(
                runs,
                f"{lb_slug(label)}-s{seed}",
                seed=seed,
                r1=r1 + 0.01 * seed,
                label=label,
                bench="mlr-market",
                data="market1501",
                paper={"rank1": 88.1, "rank5": 95.0, "rank10": 96.9},
            )
            kind = "sr"
            if label.startswith("HR"):
                doc = json.loads((d / "config.json").read_text())
                doc["query"] = kind = "hr"
                (d / "config.json").write_text(json.dumps(doc))
            found = round(100 * (0.9 if kind == "hr" else r1 + 0.01 * seed))
            hits = [0.0] * 100
            for q in order[:found]:
                hits[q] = 1.0
            with_per_query(d, hits, kind)  # the same 100 queries for every row: paired tests
            dirs.append(d)
    dirs += [
        make_run(runs, "syn-none", reg="none"),
        make_run(runs, "syn-intact", reg="intact", r1=0.7),
    ]
    site = tmp_path / "site"
    write_leaderboard(site, lb.group(lb.collect(dirs)), title="Table 1")
    return site, dirs


def lb_slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower())


@pytest.mark.slow
@needs_browser
def test_site_renders_in_chromium_fits_1280_pixels_and_sorts(tmp_path) -> None:
    site, dirs = _table_one_site(tmp_path)
    url = (site / "index.html").resolve().as_uri()
    dom = _Dom()
    dom.feed(_chromium("--dump-dom", url))
    market, synthetic = dom.tables
    assert market["header"] == [
        "Run",
        "Query",
        "Runs",
        "R-1",
        "Δ R-1 vs ref",
        "R-5",
        "R-10",
        "mAP",
        "Δ mAP vs ref",
        "R-1 ×2",
        "R-1 ×3",
        "R-1 ×4",
        "PSNR",
        "SSIM",
        "bicubic R-1",
        "HR R-1",
        "Paper R-1/5/10",
        "Δ R-1",
    ]
    assert len(market["rows"]) == 9 and len(set(market["rows"])) == 9  # one row per recipe
    assert market["rows"][0] == "HR query (upper bound)"  # unsorted: first-seen order
    assert synthetic["rows"] == ["srgan/resnet18/none", "srgan/resnet18/intact"]
    assert "Δ R-1 vs ref" not in synthetic["header"]  # runs without per_query.json: no Δ
    # The site's marks and Δ are the markdown's: the best SR row ★, the rows within a few
    # queries of it ≈ (paired bootstrap), the reference row "ref", the others Δ [lo, hi].
    md_header, md_rows = lb.table(lb.group(lb.collect(dirs))[:9])
    by_name = {row[0]: row for row in md_rows}
    r1, delta = market["header"].index("R-1"), market["header"].index("Δ R-1 vs ref")
    assert md_header == market["header"]
    marks = {}
    for name in market["rows"]:
        cells, md = market["cells"][name], by_name[name]
        marks[name] = cells[r1][0] if cells[r1][0] in "★≈" else ""
        shown = f"{cells[r1][1:]} {marks[name]}" if marks[name] else cells[r1]
        assert md[r1].replace(" ", "") == shown.replace(" ", "")
        assert md[delta].replace(" ", "") == cells[delta].replace(" ", "")
    # one query behind the best on the same queries: tied; the rest 2 or more points behind
    tied = "INTACT + finetuned re-id, a long label that must be cut"
    assert {n: m for n, m in marks.items() if m} == {"INTACT": "★", tied: "≈"}
    assert market["cells"]["INTACT"][delta] == "ref"
    assert market["cells"][tied][delta].startswith("-1.0")
    assert dom.paired == [
        "Paired comparisons: best R-1: INTACT; best mAP: INTACT; Δ is to the reference row "
        "INTACT (the best R-1 row)."
    ]
    # Nothing scrolls sideways at 1280 pixels: the page is no wider than the window.
    assert int(dom.body["data-page-width"]) <= int(dom.body["data-view-width"]) == 1280

    by_r1 = _Dom()
    by_r1.feed(_chromium("--dump-dom", url + "#sort=R-1"))
    market_sorted = by_r1.tables[0]
    assert market_sorted["sorted"] == "R-1:desc"
    # the HR-query row reports its HR query (90.0), the upper bound, above every SR row
    assert market_sorted["rows"][:3] == [
        "HR query (upper bound)",
        "INTACT",
        "INTACT + finetuned re-id, a long label that must be cut",
    ]
    assert market_sorted["rows"][-1] == "bicubic"
    assert sorted(market_sorted["rows"]) == sorted(market["rows"])
    assert by_r1.tables[1]["rows"] == ["srgan/resnet18/intact", "srgan/resnet18/none"]
    ascending = _Dom()
    ascending.feed(_chromium("--dump-dom", url + "#sort=Run:asc"))
    assert ascending.tables[0]["rows"] == sorted(market["rows"], key=str.lower)

    shot = tmp_path / "leaderboard.png"
    _chromium(f"--screenshot={shot}", url)
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000


# ----------------------------------------------------------------------- weight sweep, diagnostics

INTACT_OPTIONS = {
    "lambda_c": 0.0003,
    "sr_blocks": 6,
    "lambda_g": 0.0003,
    "lr_D": 0.0001,
    "lambda_a": 0.0003,
    "phi_hidden": 256,
    "phi_depth": 2,
    "bridge_dim": 64,
    "lr_phi": 0.0001,
    "lambda_e": 1.0,
}
GAN_OPTIONS = {"lambda_c": 0.0003, "sr_blocks": 6, "lambda_g": 0.0003, "lr_D": 0.0001}


def _sweep_site(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The critic-weight bench in small: INTACT over 3 values of lambda_a, GAN over 3 of
    lambda_g (labelled rows, as the bench writes them), plus the plain MSE+ID row."""
    runs = tmp_path / "runs"
    dirs = [
        make_run(
            runs, "none", reg="none", label="MSE+ID", bench="critic-weight", psnr=25.3, r1=0.30
        )
    ]
    for reg, name, option, options in (
        ("intact", "INTACT", "lambda_a", INTACT_OPTIONS),
        ("gan", "GAN", "lambda_g", GAN_OPTIONS),
    ):
        for k, (weight, text) in enumerate(((0.0, "0"), (3e-3, "3e-3"), (3e-2, "3e-2"))):
            d = make_run(
                runs,
                f"{reg}-{k}",
                reg=reg,
                label=f"{name} {option}={text}",
                bench="critic-weight",
                psnr=25.2 - 20 * weight - (0.1 if reg == "gan" else 0.0),
                r1=0.32 + 4 * weight,
            )
            _options(d, {**options, option: weight})
            dirs.append(d)
    site = tmp_path / "site"
    write_leaderboard(site, lb.group(lb.collect(dirs)), title="critic-weight")
    return site, dirs


def test_a_weight_sweep_is_drawn_in_the_site(tmp_path) -> None:
    from harness import sweep

    site, dirs = _sweep_site(tmp_path)
    page = (site / "index.html").read_text()
    assert page.count('<figure class="sweep"') == 1
    figure = page.split('<figure class="sweep"', 1)[1].split("</figure>", 1)[0]
    assert "<strong>Weight sweep: SR PSNR vs SR-query Rank-1</strong>" in figure
    assert 'src="data:image/png;base64,' in figure  # inline, like the CMC plot
    assert "intact: lambda_a over 0, 3e-3, 3e-2; gan: lambda_g over 0, 3e-3, 3e-2" in figure
    assert (site / "sweep.png").read_bytes()[:8] == PNG_MAGIC
    assert (
        "Weight sweep: SR PSNR vs SR-query Rank-1: drawn in the site"
        in (site / "leaderboard.md").read_text()
    )
    groups = lb.group(lb.collect(dirs))
    fig = sweep.sweep_figure(sweep.curves(groups))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "intact: lambda_a",
        "gan: lambda_g",
        "bicubic query",
    ]
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        ["0", "3e-3", "3e-2"] * 2
    )  # points labelled by weight
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("SR PSNR (dB)", "SR-query Rank-1 (%)")


def test_row_details_carry_the_runs_diagnostics(tmp_path) -> None:
    from tests.test_leaderboard import DIAGNOSTICS, _with_diagnostics

    run = _with_diagnostics(
        make_run(tmp_path, "a", reg="intact", label="INTACT <critic>"),
        {**DIAGNOSTICS, "grad_share": {"mse": 0.8, "<dis>": 0.2}},
    )
    page = render_html(lb.group(lb.collect([run, make_run(tmp_path, "b", reg="gan", label="GAN")])))
    assert page.count('<div class="recipe diagnostics">') == 1  # the GAN row has none to show
    assert (
        '<div class="recipe diagnostics">diagnostics: grad share mse 0.80 · &lt;dis&gt; 0.20; '
        "critic R² 0.55 (0.50 at start); gap 0.12; L_dis via f_c 30%; D acc 0.70; "
        "critic warm-up 200 iters"
        "</div>"
    ) in page


@needs_browser
def test_weight_sweep_figure_is_visible_in_chromium(tmp_path) -> None:
    site, _ = _sweep_site(tmp_path)
    dom = _Dom()
    dom.feed(_chromium("--dump-dom", (site / "index.html").resolve().as_uri()))
    (figure,) = [f for f in dom.figures if "sweep" in (f.get("class") or "").split()]
    assert figure["data-visible"] == "true"
    width, height = map(int, figure["data-box"].split("x"))
    natural_w, natural_h = map(int, figure["data-natural"].split("x"))
    assert width > 300 and height > 200  # laid out at its size, not collapsed
    assert natural_w > 300 and natural_h > 200  # the inline PNG decoded
    assert int(dom.body["data-page-width"]) <= int(dom.body["data-view-width"]) == 1280


# --------------------------------------------------------------------------- ranked lists


def _ranks_site(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Two rows with ranks.png (as harness.ranks draws it), one old run without."""
    from harness.ranks import write_ranks
    from tests.test_ranks import _ranks

    torch.manual_seed(0)
    runs = tmp_path / "runs"
    dirs = [
        make_run(runs, "gan", reg="gan", label="GAN", bench="b"),
        make_run(runs, "intact", reg="intact", label="INTACT", bench="b"),
        make_run(runs, "old", reg="none", label="MSE", bench="b"),
    ]
    for d in dirs[:2]:
        write_ranks(d, _ranks(), {"name": "synthetic"})
    site = tmp_path / "site"
    write_leaderboard(site, lb.group(lb.collect(dirs)), title="ranks")
    return site, dirs


def test_each_row_shows_its_ranked_lists_where_its_run_drew_them(tmp_path) -> None:
    site, _ = _ranks_site(tmp_path)
    page = (site / "index.html").read_text()
    assert page.count('<figure class="ranks"') == 2  # the old run has none: nothing to show
    assert 'src="./../runs/gan/ranks.png"' in page and 'src="./../runs/intact/ranks.png"' in page
    assert 'alt="ranked lists: GAN"' in page and "framed green" in page
    assert "runs/old/ranks.png" not in page


def test_the_site_shows_no_sample_images_of_a_private_dataset_unless_asked(tmp_path) -> None:
    """Runs of a dataset that forbids redistribution (a fake cuhk03-partial of generated images)
    whose folders hold sample images (their runs asked, --show-samples): the site shows none
    of them, links to none, and says why; harness leaderboard --show-samples shows them."""
    from harness.ranks import write_ranks
    from tests.test_ranks import _ranks
    from tests.test_report import _private_dataset

    summary = _private_dataset(tmp_path)
    torch.manual_seed(0)
    hr = torch.rand(4, 3, 16, 8)
    runs = tmp_path / "runs"
    for name in ("gan", "intact"):
        run = make_run(runs, name, reg=name, label=name.upper(), data="cuhk03-partial")
        _with_samples(run, hr, 0.1)
        write_ranks(run, _ranks(), summary, show_images=True)
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "dataset": summary}))
    result = CliRunner().invoke(main, ["leaderboard", str(runs), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert 'alt="SR samples"' not in page and '<figure class="ranks"' not in page
    assert "sr_samples" not in page and "ranks.png" not in page  # not even as links
    assert "No sample images of cuhk03-partial" in page and "--show-samples" in page
    asked = tmp_path / "private-site"
    result = CliRunner().invoke(
        main, ["leaderboard", str(runs), "--out", str(asked), "--show-samples"]
    )
    assert result.exit_code == 0, result.output
    page = (asked / "index.html").read_text()
    assert page.count('alt="SR samples"') == 1 and page.count('<figure class="ranks"') == 2
    assert "No sample images" not in page


@needs_browser
def test_ranked_lists_are_visible_in_chromium(tmp_path) -> None:
    site, _ = _ranks_site(tmp_path)
    dom = _Dom()
    dom.feed(_chromium("--dump-dom", (site / "index.html").resolve().as_uri()))
    ranks = [f for f in dom.figures if "ranks" in (f.get("class") or "").split()]
    assert len(ranks) == 2 and all(f["id"].startswith("ranks-") for f in ranks)
    for figure in ranks:
        assert figure["data-visible"] == "true"
        width, height = map(int, figure["data-box"].split("x"))
        natural_w, natural_h = map(int, figure["data-natural"].split("x"))
        assert width >= 250 and height > 150  # laid out at its size, not collapsed
        assert natural_w > 300 and natural_h > 200  # the run's PNG loaded and decoded
    assert int(dom.body["data-page-width"]) <= int(dom.body["data-view-width"]) == 1280
