"""Every rendering of a leaderboard written to one folder: site, markdown, JSON, figures.

Kept apart from the results model (:mod:`harness.leaderboard`) and its renderers
(:mod:`harness.tables`, :mod:`harness.site`, :mod:`harness.sweep`) so that each
of those imports only the model, and only this module knows them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness import sweep
from harness.errors import HarnessError
from harness.io import atomic_save_figure, atomic_write_json, atomic_write_text
from harness.leaderboard import as_groups, boards, cmc_plot, to_json
from harness.site import render_html
from harness.tables import render_markdown


def write_leaderboard(
    out_dir: str | Path,
    groups: Iterable[Any],
    paper: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "Leaderboard",
    show_samples: bool = False,
) -> list[Path]:
    """The site (index.html; leaderboard.html is the same page), leaderboard.md,
    leaderboard.json and the CMC plot of each table (cmc.png for a single table, else
    cmc-<dataset>-<protocol>.png), plus the weight-sweep figure of a table whose rows form
    one (sweep.png or sweep-<dataset>-<protocol>.png; :mod:`harness.sweep`), each written
    atomically. ``show_samples``: the site shows sample images even of datasets whose images
    may not be redistributed (a private page; :mod:`harness.site`)."""
    out_dir = Path(out_dir)
    groups = as_groups(groups)
    page = render_html(groups, paper, title, out_dir, show_samples)
    written = [
        atomic_write_text(out_dir / "index.html", page),
        atomic_write_text(out_dir / "leaderboard.html", page),
        atomic_write_text(out_dir / "leaderboard.md", render_markdown(groups, paper, title)),
        atomic_write_json(out_dir / "leaderboard.json", to_json(groups, paper)),
    ]
    tables = [b for b in boards(groups) if any(g.n for g in b.groups)]
    for board in tables:
        name = "cmc.png" if len(tables) == 1 else f"cmc-{board.slug}.png"
        written.append(
            atomic_save_figure(cmc_plot(board.groups, f"Mean CMC: {board.title}"), out_dir / name)
        )
        curves = sweep.curves(board.groups)
        if sweep.drawn(curves):
            name = "sweep.png" if len(tables) == 1 else f"sweep-{board.slug}.png"
            fig = sweep.sweep_figure(curves, f"Weight sweep: {board.title}")
            written.append(atomic_save_figure(fig, out_dir / name))
    return written


def check_out_dir(out_dir: str | Path, run_dirs: Iterable[str | Path]) -> None:
    """Refuse an output folder that is, or lies inside, a run folder being read.

    The leaderboard writes ``cmc.png`` and friends: written into a run folder they would
    replace that run's own files (its ``cmc.png``), so output never goes there. A folder
    *holding* run folders is fine (a bench writes its leaderboard beside its rows). Paths
    are compared resolved, so ``RUN/../RUN`` and symbolic links are seen through.
    """
    target = Path(out_dir).resolve()
    for run_dir in run_dirs:
        source = Path(run_dir).resolve()
        if target == source or source in target.parents:
            where = "is the run folder" if target == source else "is inside the run folder"
            raise HarnessError(
                f"--out {out_dir} {where} {run_dir}, which the leaderboard reads; it would "
                "overwrite that run's files (cmc.png): write the leaderboard outside every run "
                "folder"
            )
