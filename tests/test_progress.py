"""harness.progress: a line per log step where output is a file, a bar on a terminal."""

from __future__ import annotations

import io

from harness.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_one_plain_line_per_log_step_with_both_etas():
    out = io.StringIO()
    bar = Progress(10, "stage 1: SR with intact", 0, later=20, batch=16, stream=out)
    for _ in range(4):
        bar.update()
    bar.set_postfix({"mse": "0.002"})
    bar.close()
    (line,) = out.getvalue().splitlines()
    assert line.startswith("stage 1: SR with intact: 4/10  ")
    assert "img/s  stage ETA " in line and "  run ETA ~" in line


def test_the_run_eta_counts_the_stages_still_to_come():
    bar = Progress(10, "stage 0", 0, later=90, stream=io.StringIO())
    bar.start -= 10.0  # ten seconds for five iterations: two seconds each
    bar.update(5)
    line = bar.line()
    assert "stage ETA 0m10s" in line and "run ETA ~3m10s" in line  # 5 + 90 iterations left


def test_a_terminal_gets_the_bar_and_no_lines_and_other_ranks_get_nothing():
    tty = _Terminal()
    bar = Progress(5, "stage 0", 0, stream=tty)
    bar.update()
    bar.set_postfix({"ce": "1.0"})
    assert tty.getvalue() == ""
    quiet = io.StringIO()
    other_rank = Progress(5, "stage 0", 0, stream=quiet, enabled=False)
    other_rank.update()
    other_rank.set_postfix({"ce": "1.0"})
    assert quiet.getvalue() == ""
