"""The leaderboard as a static site: one self-contained page a person reads in a browser.

``harness leaderboard DIRS... --out site/`` writes ``index.html``: one table and one CMC
plot per dataset and protocol version (:func:`harness.leaderboard.boards`), columns sorted
by a click on their header (or by ``#sort=<column>`` in the address, which is how a test
drives it in headless Chromium), every row linking to its runs' folders, the paper's numbers
beside ours, a figure of the same query images through LR / bicubic / each row's SR / HR,
and, where a table's rows sweep one weight, SR PSNR against SR-query Rank-1
(:mod:`harness.sweep`). The best row's Rank-1 and mAP cells carry ★ and the rows tied with
it ≈, beside each row's Δ to the reference row (:func:`harness.leaderboard.compare_rows`).
A row's details carry its runs' diagnostics (gradient shares of G's
terms, the critic's fit) where their metrics.json has them.

Everything is inline (style, script, images as data URIs) and nothing is fetched: the page
opens from ``file://`` on a machine without a network. Links to run folders are relative
to the page, so a ``runs/`` folder moved together with its site keeps working.

The page must fit a 1280-pixel window without scrolling sideways: the dataset is named in
each table's heading instead of a column, header cells wrap, a ± spread sits under its mean,
and long row names are cut (:func:`harness.leaderboard.short_name`) with the full name and
the run links in a ``<details>`` line one click away.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import leaderboard as lb
from harness import sweep
from harness.ranks import may_show_images
from harness.report import SAMPLES_FILE, load_samples, samples_figure

#: files of a run folder the page links to, where they exist
RUN_FILES = ("config.json", "metrics.json", "cmc.png", "sr_samples.png", "ranks.png")
#: those of them that show the dataset's images (left out for a private dataset, unless asked)
IMAGE_FILES = ("sr_samples.png", "ranks.png")


def _shows(run: lb.RunResult, show_samples: bool) -> bool:
    """Whether the page may show ``run``'s sample images: not where its dataset says they
    may not be redistributed (CUHK03), unless ``harness leaderboard --show-samples`` asks
    for a private page (:func:`harness.ranks.may_show_images`)."""
    dataset = run.metrics.get("dataset")
    return may_show_images(dataset if isinstance(dataset, dict) else None, show_samples)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1em 1.2em; color: #222; max-width: 1240px; }
h1 { font-size: 1.4em; margin: 0.2em 0; } h2 { font-size: 1.15em; margin: 1.4em 0 0.3em; }
p.legend, p.meta { color: #555; font-size: 0.85em; margin: 0.3em 0; }
nav ul { margin: 0.3em 0; padding-left: 1.2em; font-size: 0.9em; }
table.board { border-collapse: collapse; font-size: 0.8em; max-width: 100%; }
table.board th, table.board td { border: 1px solid #ccc; padding: 0.2em 0.3em; \
vertical-align: top; }
table.board th { background: #f3f3f3; cursor: pointer; user-select: none; font-weight: 600;
  white-space: normal; overflow-wrap: anywhere; }
table.board th.sorted-desc::after { content: " \\25BE"; } \
table.board th.sorted-asc::after { content: " \\25B4"; }
table.board td { text-align: right; white-space: nowrap; }
table.board td.text { text-align: left; white-space: normal; }
table.board td.run { max-width: 15em; min-width: 9em; overflow-wrap: anywhere; }
td .sd { display: block; color: #777; font-size: 0.85em; }
td .mark { float: left; margin-right: 0.2em; } td .mark.best { color: #b8860b; }
td.paper { white-space: normal; min-width: 4.5em; }
details summary { cursor: pointer; }
details .recipe { font-size: 0.9em; color: #444; margin: 0.2em 0; }
details .links { font-size: 0.85em; margin: 0.1em 0; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; height: auto; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.figs > figure, .figs > div { flex: 0 1 auto; max-width: 100%; }
figure.cmc img { width: 620px; } figure.samples img { height: 440px; width: auto; }
figure.sweep img { width: 600px; } figure.ranks img { width: 300px; }
figure.sweep figcaption strong { display: block; color: #222; font-size: 1.05em; }
figcaption { font-size: 0.85em; color: #555; }
.thumbs { display: flex; flex-wrap: wrap; gap: 0.8em; }
ul.notes { font-size: 0.85em; color: #833; }
"""

# Sorting: numbers by data-sort (a mean, without its spread), text alphabetically; cells
# without a value always go last. ``#sort=R-1`` (or ``#sort=R-1:asc``) sorts on load.
_JS = """
(function () {
  function sortTable(table, col, dir) {
    var ths = table.tHead.rows[0].cells, th = null;
    for (var i = 0; i < ths.length; i++) {
      ths[i].classList.remove('sorted-asc', 'sorted-desc');
      if (ths[i].dataset.col === col) { th = ths[i]; }
    }
    if (!th) { return false; }
    var idx = th.cellIndex, numeric = th.dataset.type === 'num';
    dir = dir || (numeric ? 'desc' : 'asc');
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[idx].dataset.sort, y = b.cells[idx].dataset.sort;
      if (x === undefined || y === undefined) { return (x === undefined) - (y === undefined); }
      var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return dir === 'asc' ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    th.classList.add(dir === 'asc' ? 'sorted-asc' : 'sorted-desc');
    table.dataset.sortedBy = col + ':' + dir;
    return true;
  }
  function fromHash() {
    var m = /sort=([^&:]+)(?::(asc|desc))?/.exec(decodeURIComponent(location.hash));
    if (!m) { return; }
    document.querySelectorAll('table.board').forEach(function (t) { sortTable(t, m[1], m[2]); });
  }
  document.querySelectorAll('table.board').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener('click', function () {
        var now = th.classList.contains('sorted-desc') ? 'asc'
          : th.classList.contains('sorted-asc') ? 'desc' : null;
        sortTable(table, th.dataset.col, now);
      });
    });
  });
  fromHash();
  window.addEventListener('hashchange', fromHash);
  document.body.dataset.pageWidth = String(document.documentElement.scrollWidth);
  document.body.dataset.viewWidth = String(window.innerWidth);
  // Each figure's rendered box and its image's decoded size, for a headless browser to read.
  function measure() {
    document.querySelectorAll('figure').forEach(function (f) {
      var r = f.getBoundingClientRect(), img = f.querySelector('img');
      f.dataset.box = Math.round(r.width) + 'x' + Math.round(r.height);
      f.dataset.visible = String(f.offsetParent !== null && r.width > 0 && r.height > 0);
      if (img) { f.dataset.natural = img.naturalWidth + 'x' + img.naturalHeight; }
    });
  }
  measure();
  window.addEventListener('load', measure);
}());
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _href(path: Path, out_dir: Path | None) -> str:
    """A link to a local file: a relative path (to the page, else to the working folder),
    every segment percent-encoded and led by ``./``, so no folder name can become a scheme.

    Why: a run folder named ``javascript:alert(1)`` once became a link that ran a script
    when clicked. ``quote`` with no safe characters encodes ``:`` (and ``?``, ``#``), and
    the leading ``./`` keeps even an encoded first segment from reading as anything but a path.
    """
    base = (out_dir if out_dir is not None else Path.cwd()).resolve()
    try:
        relative = Path(os.path.relpath(path.resolve(), base))
    except ValueError:  # another drive (Windows): no relative path exists; link the name alone
        relative = Path(path.name)
    segments = [quote(part, safe="") for part in relative.as_posix().split("/")]
    return "./" + "/".join(segments)


def _png_data(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell_html(header: str, cell: lb.Cell) -> str:
    value = f"{cell.sort:.6g}" if isinstance(cell.sort, float) else cell.sort
    sort = "" if value is None else f' data-sort="{_esc(value)}"'
    cls = ' class="text"' if header in lb.TEXT_COLUMNS else ""
    if header.startswith("Paper"):
        cls = ' class="paper"'
    text = cell.text
    if " ± " in text:
        mean, spread = text.split(" ± ", 1)
        body = f'{_esc(mean)}<span class="sd">± {_esc(spread)}</span>'
    elif header in lb.DELTA_HEADERS.values() and " [" in text:  # Δ, its interval beneath
        delta, interval = text.split(" ", 1)
        body = f'{_esc(delta)}<span class="sd">{_esc(interval)}</span>'
    else:
        body = _esc(text)
    if cell.mark:
        kind = next(k for k, m in lb.MARKS.items() if m == cell.mark)
        title = "best row" if kind == "best" else "not significantly different from the best row"
        body = f'<span class="mark {kind}" title="{title}">{_esc(cell.mark)}</span>{body}'
    return f"<td{cls}{sort}>{body}</td>"


def _run_cell(g: lb.Group, cell: lb.Cell, out_dir: Path | None, show_samples: bool) -> str:
    """Short name; the full name and links to every run's folder and files one click away."""
    links = []
    for run in g.runs:
        files = " · ".join(
            f'<a href="{_esc(_href(run.run_dir / f, out_dir))}">{_esc(f)}</a>'
            for f in RUN_FILES
            if (run.run_dir / f).is_file() and (f not in IMAGE_FILES or _shows(run, show_samples))
        )
        folder = f'<a href="{_esc(_href(run.run_dir, out_dir))}/">{_esc(run.run_dir.name)}</a>'
        links.append(f'<div class="links">{folder}: {files}</div>')
    full = f'<div class="recipe">{_esc(g.name)}</div>' if g.short != g.name else ""
    bench = f'<div class="recipe">bench {_esc(g.bench)}</div>' if g.bench else ""
    text = lb.diagnostics_text(g.diagnostics) if g.diagnostics else ""
    diag = f'<div class="recipe diagnostics">diagnostics: {_esc(text)}</div>' if text else ""
    return (
        f'<td class="text run" data-sort="{_esc(cell.sort)}"><details>'
        f'<summary title="{_esc(g.name)}">{_esc(g.short)}</summary>'
        f"{full}{bench}{diag}{''.join(links)}</details></td>"
    )


def _table_html(
    board: lb.Board,
    paper: Mapping[str, Mapping[str, float]] | None,
    out_dir: Path | None,
    show_samples: bool = False,
) -> str:
    header, rows = lb.table_cells(board.groups, paper)
    shown = [g for g in board.groups if g.n > 0]
    head = "".join(
        f'<th data-col="{_esc(h)}" data-type="{"text" if h in lb.TEXT_COLUMNS else "num"}"'
        f' title="sort by {_esc(h)}">{_esc(h)}</th>'
        for h in header
    )
    body = []
    for g, row in zip(shown, rows, strict=True):
        cells = [_run_cell(g, row[0], out_dir, show_samples)]
        cells += [_cell_html(h, c) for h, c in zip(header[1:], row[1:], strict=True)]
        body.append(f'<tr data-name="{_esc(g.name)}">' + "".join(cells) + "</tr>")
    return (
        f'<table class="board" id="table-{_esc(board.slug)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _sample_rows(
    board: lb.Board, show_samples: bool = False
) -> tuple[list[tuple[str, Any]], list[lb.Group]]:
    """LR / bicubic / each SR row's SR / HR of the query images most rows share.

    Runs store their samples as ``sr_samples.pt``; two runs show the same queries exactly
    when their HR images are equal (same data, split and HR size), which is checked, not
    assumed. Rows reporting the HR or bicubic query have no SR of their own to show.
    """
    found: dict[str, list[tuple[lb.Group, dict[str, Any]]]] = {}
    for g in board.groups:
        for run in g.runs:
            if not _shows(run, show_samples):
                continue
            samples = load_samples(run.run_dir / SAMPLES_FILE)
            if samples is not None:
                digest = hashlib.sha256(samples["hr"].numpy().tobytes()).hexdigest()
                found.setdefault(digest, []).append((g, samples))
                break
    if not found:
        return [], []
    entries = max(found.values(), key=len)
    first = entries[0][1]
    rows: list[tuple[str, Any]] = [("LR", first.get("lr", first["hr"]))]
    if first.get("bicubic") is not None:
        rows.append(("bicubic", first["bicubic"]))
    names = lb.legend_names([g for g, _ in entries])
    shown = []
    for g, samples in entries:
        if g.query == "sr":
            rows.append((f"SR: {names[id(g)]}", samples["sr"]))
            shown.append(g)
    rows.append(("HR", first["hr"]))
    return rows, shown


def _samples_html(board: lb.Board, out_dir: Path | None, show_samples: bool = False) -> str:
    """The board's sample images: the SR samples set side by side, then each row's ranked
    lists; none of a dataset whose images may not be redistributed, unless asked (then a
    line says why there are none)."""
    hidden = sorted(
        {
            str(r.metrics["dataset"].get("name") or r.config.get("data", "?"))
            for g in board.groups
            for r in g.runs
            if not _shows(r, show_samples)  # so its metrics name a dataset
        }
    )
    note = (
        f'<p class="meta private">No sample images of {_esc(", ".join(hidden))}: its images '
        "may not be redistributed (harness leaderboard --show-samples shows them on a private "
        "page).</p>"
        if hidden
        else ""
    )
    return (
        _sr_samples_html(board, out_dir, show_samples)
        + _ranks_html(board, out_dir, show_samples)
        + note
    )


def _ranks_html(board: lb.Board, out_dir: Path | None, show_samples: bool = False) -> str:
    """Each row's ranked lists (its first run's ranks.png), linked, not copied.

    A run draws ranks.png only where its dataset's images may be shown (harness.ranks), so a
    row without one is a row whose images stay out of the page, or a run that predates it.
    """
    stored = [
        (g, run.run_dir / "ranks.png")
        for g in board.groups
        for run in g.runs[:1]
        if (run.run_dir / "ranks.png").is_file() and _shows(run, show_samples)
    ]
    if not stored:
        return ""
    figures = "".join(
        f'<figure class="ranks" id="ranks-{_esc(board.slug)}-{i}">'
        f'<a href="{_esc(_href(p, out_dir))}">'
        f'<img alt="ranked lists: {_esc(g.short)}" src="{_esc(_href(p, out_dir))}"></a>'
        f"<figcaption>{_esc(g.short)}</figcaption></figure>"
        for i, (g, p) in enumerate(stored)
    )
    return (
        '<div><p class="meta" style="max-width: 40em">Ranked lists (each row\'s first run): '
        "for two seeded queries per LR ratio, the LR query, the query as the re-id model sees "
        "it (SR, bicubic, HR) and its top 10 gallery images, true matches framed green, "
        f'wrong ones red.</p><div class="thumbs">{figures}</div></div>'
    )


def _sr_samples_html(board: lb.Board, out_dir: Path | None, show_samples: bool = False) -> str:
    rows, shown = _sample_rows(board, show_samples)
    if shown:
        image = _png_data(samples_figure(rows))
        missing = [
            g.short
            for g in board.groups
            if g.query == "sr" and g.n and g not in shown and _shows(g.runs[0], show_samples)
        ]
        caption = (
            "The same query images through LR (nearest-upsampled) / bicubic / each SR row's SR "
            "/ HR (the first run of each row, from its sr_samples.pt)."
            + (
                f" Not shown (no sr_samples.pt for these images): {', '.join(missing)}."
                if missing
                else ""
            )
        )
        return (
            f'<figure class="samples"><img alt="SR samples" src="{image}">'
            f'<figcaption style="max-width: 32em">{_esc(caption)}</figcaption></figure>'
        )
    stored = [
        (g, run.run_dir / "sr_samples.png")
        for g in board.groups
        if g.query == "sr"
        for run in g.runs[:1]
        if (run.run_dir / "sr_samples.png").is_file() and _shows(run, show_samples)
    ]
    if not stored:
        return ""
    thumbs = "".join(
        f'<figure><a href="{_esc(_href(p, out_dir))}"><img alt="{_esc(g.short)}" width="360" '
        f'src="{_esc(_href(p, out_dir))}"></a><figcaption>{_esc(g.short)}</figcaption></figure>'
        for g, p in stored
    )
    return (
        '<div><p class="meta">SR samples as each run stored them (LR / bicubic / SR / HR rows; '
        "these runs predate sr_samples.pt, so their rows cannot be set side by side):</p>"
        f'<div class="thumbs">{thumbs}</div></div>'
    )


def _sweep_html(board: lb.Board) -> str:
    """The board's weight-sweep figure, or nothing where its rows sweep no weight."""
    curves = sweep.curves(board.groups)
    if not sweep.drawn(curves):
        return ""
    image = _png_data(sweep.sweep_figure(curves, f"Weight sweep: {board.title}"))
    swept = "; ".join(
        f"{c.name} over {', '.join(sweep.weight_text(v) for v in c.values)}" for c in curves
    )
    caption = (
        f"One curve per regulariser, points in weight order and labelled by the weight ({swept}); "
        "mean over runs, bars ±1 std where a row has several. Left costs pixels, up buys re-id."
    )
    return (
        f'<figure class="sweep" id="sweep-{_esc(board.slug)}"><figcaption><strong>'
        f'{_esc(sweep.CAPTION)}</strong></figcaption><img alt="{_esc(sweep.CAPTION)}, '
        f'{_esc(board.title)}" src="{image}">'
        f'<p class="meta" style="max-width: 40em">{_esc(caption)}</p></figure>'
    )


def _board_html(
    board: lb.Board,
    paper: Mapping[str, Mapping[str, float]] | None,
    out_dir: Path | None,
    show_samples: bool = False,
) -> str:
    finished = [g for g in board.groups if g.n > 0]
    parts = [f'<section id="{_esc(board.slug)}"><h2>{_esc(board.title)}</h2>']
    meta = [f"dataset {board.data}", f"protocol {board.protocol}", f"{len(finished)} row(s)"]
    if board.benches:
        meta.append("bench " + ", ".join(board.benches))
    parts.append(f'<p class="meta">{_esc("; ".join(meta))}</p>')
    if finished:
        parts.append(_table_html(board, paper, out_dir, show_samples))
        compared = lb.compare_rows(board.groups).line()
        if compared:
            parts.append(f'<p class="meta paired">{_esc(compared)}</p>')
        cmc = _png_data(lb.cmc_plot(board.groups, f"Mean CMC: {board.title}"))
        samples = _samples_html(board, out_dir, show_samples)
        parts.append(
            f'<div class="figs"><figure class="cmc"><img alt="mean CMC, {_esc(board.title)}" '
            f'src="{cmc}"></figure>{_sweep_html(board)}{samples}</div>'
        )
    else:
        parts.append("<p><em>No finished runs.</em></p>")
    extra = lb.notes(board.groups)
    if extra:
        parts.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in extra) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def render_site(
    groups: Sequence[lb.Group],
    paper: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "Leaderboard",
    out_dir: str | Path | None = None,
    show_samples: bool = False,
) -> str:
    """The whole page: a contents list, then each dataset's table, CMC plot and samples
    (``show_samples``: also of datasets whose images may not be redistributed)."""
    out = Path(out_dir) if out_dir is not None else None
    tables = lb.boards(groups)
    contents = "".join(
        f'<li><a href="#{_esc(b.slug)}">{_esc(b.title)}</a>'
        + (f" ({_esc(', '.join(b.benches))})" if b.benches else "")
        + "</li>"
        for b in tables
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)} ({_esc(lb.protocol_line(groups))})</h1>",
        f'<p class="legend">{_esc(lb.LEGEND)} One table per dataset and protocol version: rows '
        "of different tables are not comparable. Click a header to sort; click a row's name "
        "for its full recipe and its runs.</p>",
    ]
    if tables:
        parts.append(f"<nav><ul>{contents}</ul></nav>")
        parts += [_board_html(b, paper, out, show_samples) for b in tables]
    else:
        parts.append("<p><em>No finished runs.</em></p>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def render_html(
    groups: Iterable[Any],
    paper: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "Leaderboard",
    out_dir: str | Path | None = None,
    show_samples: bool = False,
) -> str:
    """The static site's page; links are relative to ``out_dir``."""
    return render_site(lb.as_groups(groups), paper, title, out_dir, show_samples)
