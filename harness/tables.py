"""A leaderboard as GitHub-markdown tables (``leaderboard.md``, ``harness leaderboard``).

A renderer of :mod:`harness.leaderboard`'s results model, like :mod:`harness.site`;
neither the model nor the other renderer imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness import sweep
from harness.leaderboard import (
    LEGEND,
    TEXT_COLUMNS,
    Board,
    Group,
    as_groups,
    boards,
    compare_rows,
    diagnostics_text,
    notes,
    protocol_line,
    table,
)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(
    groups: Sequence[Group], paper: Mapping[str, Mapping[str, float]] | None
) -> list[str]:
    header, rows = table(groups, paper)
    if not rows:
        return ["_No finished runs._"]
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if h in TEXT_COLUMNS else "---:" for h in header) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _markdown_details(board: Board) -> list[str]:
    """Under a table: which rows its paired comparisons are taken against, each row's run
    diagnostics (where its metrics.json has them) and a pointer to the weight-sweep figure,
    which only the site and its PNG draw."""
    lines = []
    compared = compare_rows(board.groups).line()
    if compared:
        lines += ["", compared]
    rows = [(g, diagnostics_text(g.diagnostics)) for g in board.groups if g.n and g.diagnostics]
    rows = [(g, text) for g, text in rows if text]
    if rows:
        lines += ["", "Diagnostics (mean over runs):", ""]
        lines += [f"- {g.name}: {text}" for g, text in rows]
    if sweep.drawn(sweep.curves(board.groups)):
        lines += ["", f"{sweep.CAPTION}: drawn in the site (index.html) and its sweep PNG."]
    return lines


def render_markdown(
    groups: Iterable[Any],
    paper: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "Leaderboard",
) -> str:
    """GitHub-markdown tables, one per dataset and protocol version (:func:`boards`);
    ``paper`` maps a row's label to {rank1, rank5, rank10} in %."""
    groups = as_groups(groups)
    lines = [f"# {title} ({protocol_line(groups)})", "", LEGEND]
    for board in boards(groups):
        lines += ["", f"## {board.title}", ""]
        lines += _markdown_table(board.groups, paper)
        lines += _markdown_details(board)
    if not groups:
        lines += ["", "_No finished runs._"]
    extra = notes(groups)
    if extra:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in extra]
    return "\n".join(lines) + "\n"
