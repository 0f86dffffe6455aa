"""A run's training diagnostics, summarised from its log for ``metrics.json``.

Why from the log and not from the trainer's memory: ``log.jsonl`` is trimmed
to the checkpoint a resumed run starts from, so a run interrupted any number
of times reports the same summary as one that never stopped. The trainer logs,
on every log iteration of stage 1, each loss term's share of G's gradient
(``diag/grad_share/<term>``), a critic's gradient paths
(``diag/dis_path_share/fc``) and the regulariser's held-out probes
(``probe/critic_r2``, ``probe/critic_gap``, ``probe/d_accuracy``); stage 1's
iteration 0 holds the probes taken before G's first update.
docs/intact.md says how to read them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's records (a line torn by a crash is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def _mean(values: Iterable[float]) -> float | None:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 4) if values else None


def summarise(records: Iterable[Mapping[str, Any]], critic_warmup_iters: int = 0) -> dict[str, Any]:
    """``metrics.json``'s ``diagnostics`` block: stage-1 means of the logged diagnostics.

    ``grad_share.<term>`` and ``dis_path_share.fc``: means over stage 1's log
    iterations; every probe (``critic_r2``, ``critic_gap``, ``d_accuracy``, RAIN's
    ``f_disc_accuracy`` ...): its mean over stage 1 after its first update, ``critic_r2_at_start``
    the probe before it, ``critic_r2_end`` the last one. Empty for a run that
    logged none (no stage 1, or a regulariser without terms to decompose).
    """
    stage1 = [r for r in records if r.get("stage") == "sr"]
    start = [r for r in stage1 if int(r.get("iteration", -1)) == 0]
    later = [r for r in stage1 if int(r.get("iteration", 0)) > 0]
    out: dict[str, Any] = {}
    for prefix, name in (
        ("diag/grad_share/", "grad_share"),
        ("diag/dis_path_share/", "dis_path_share"),
    ):
        keys = sorted({k for r in stage1 for k in r if k.startswith(prefix)})
        block = {k[len(prefix) :]: _mean(r[k] for r in stage1 if k in r) for k in keys}
        if block:
            out[name] = block
    probes = sorted({k for r in later for k in r if k.startswith("probe/")})
    for key in probes:  # every probe a regulariser reports (a critic's R², D's or Df's accuracy)
        mean = _mean(r[key] for r in later if key in r)
        if mean is not None:
            out[key[len("probe/") :]] = mean
    if start and "probe/critic_r2" in start[-1]:
        out["critic_r2_at_start"] = round(float(start[-1]["probe/critic_r2"]), 4)
    ends = [r["probe/critic_r2"] for r in later if "probe/critic_r2" in r]
    if ends:
        out["critic_r2_end"] = round(float(ends[-1]), 4)
    if out:
        out["critic_warmup_iters"] = int(critic_warmup_iters)
    return out


def summary_lines(diagnostics: Mapping[str, Any]) -> list[str]:
    """One or two plain lines for the run summary (empty without diagnostics)."""
    if not diagnostics:
        return []
    lines = []
    shares = diagnostics.get("grad_share") or {}
    if shares:
        lines.append(
            "share of G's gradient over stage 1: "
            + ", ".join(
                f"{term} {value:.2f}" for term, value in shares.items() if value is not None
            )
        )
    facts = []
    if "critic_r2" in diagnostics:
        start = diagnostics.get("critic_r2_at_start")
        facts.append(
            f"critic R² on held-out HR {diagnostics['critic_r2']:.2f}"
            + (f" ({start:.2f} when L_dis started)" if start is not None else "")
        )
    if "critic_gap" in diagnostics:
        facts.append(f"SR - HR critic error {diagnostics['critic_gap']:.3f}")
    fc = (diagnostics.get("dis_path_share") or {}).get("fc")
    if fc is not None:
        facts.append(f"L_dis reaches G {100 * fc:.0f}% through f_c'")
    if "d_accuracy" in diagnostics:
        facts.append(f"D accuracy {100 * diagnostics['d_accuracy']:.0f}%")
    if facts:
        lines.append(
            "; ".join(facts)
            + f" (critic warm-up {diagnostics.get('critic_warmup_iters', 0)} iterations)"
        )
    others = {k: v for k, v in diagnostics.items() if k not in _SUMMARISED and isinstance(v, float)}
    if others:
        lines.append(
            "held-out probes over stage 1: "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(others.items()))
        )
    return lines


#: the diagnostics the summary lines above already say in words
_SUMMARISED = {
    "grad_share",
    "dis_path_share",
    "critic_r2",
    "critic_r2_at_start",
    "critic_r2_end",
    "critic_gap",
    "d_accuracy",
    "critic_warmup_iters",
}
