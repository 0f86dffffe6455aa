"""Bench launchers: shared stages train once, failures retry then are named, every launcher
gives the serial numbers (local processes, a local Ray, submitit's local executor)."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from crossres_plugins.launch.local import gpu_slots

from harness import ConfigError
from harness.bench import BenchFailed, load_spec, run_bench, select_rows
from harness.cli import main
from harness.launch import JobOutcome, PlannedRun, RunJob
from harness.scheduler import launch_runs, parse_launcher_options

SPEC = """
name = "mini"
[defaults]
data = "synthetic"
preset = "smoke"
device = "cpu"
[[runs]]
label = "MSE+ID"
reg = "none"
[[runs]]
label = "MSE+ID+GAN"
reg = "gan"
"""


# --------------------------------------------------------------- the scheduling rule, no processes


class Planned:
    def __init__(self, name: str, root: Path) -> None:
        self.label, self.run_dir = name, root / name


class FakeLauncher:
    """Runs jobs in threads; records which runs were in flight together; fails on demand."""

    def __init__(
        self, fail: dict[str, int] | None = None, seconds: float = 0.05, early: bool = False
    ) -> None:
        self.pool = ThreadPoolExecutor(8)
        self.fail = dict(fail or {})
        self.seconds = seconds
        self.early = early  # write the cache files first, as stage 0 does, then go on training
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.together: list[set[str]] = []
        self.submitted: list[tuple[str, int]] = []

    def submit(self, job: RunJob) -> Future:
        self.submitted.append((job.label, job.attempt))
        return self.pool.submit(self._run, job)

    def _run(self, job: RunJob) -> JobOutcome:
        with self.lock:
            self.running.add(job.label)
            self.together.append(set(self.running))
        if self.early:
            for f in job.settings["files"]:
                Path(f).touch()
        time.sleep(self.seconds)
        with self.lock:
            self.running.discard(job.label)
            failing = self.fail.get(job.label, 0) > 0
            if failing:
                self.fail[job.label] -= 1
        if failing:
            return JobOutcome(returncode=1, log=job.log)
        run_dir = Path(job.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text('{"status": "complete"}')
        for f in job.settings["files"]:  # what the real trainer does: write its cache file
            Path(f).touch()
        return JobOutcome(returncode=0, log=job.log, seconds=self.seconds)

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(cancel_futures=cancel)


def _launch(
    tmp_path: Path,
    shared: dict[str, tuple[str, ...]],
    launcher: FakeLauncher,
    jobs: int | None = 4,
    poll: float = 5.0,
):
    runs = [Planned(name, tmp_path) for name in shared]
    files = {run.run_dir: tuple(str(tmp_path / f) for f in shared[run.label]) for run in runs}

    def make_job(run: Planned, attempt: int) -> RunJob:
        return RunJob(
            label=run.label,
            seed=0,
            settings={"files": files[run.run_dir]},
            run_dir=str(run.run_dir),
            out_dir=str(tmp_path),
            bench="t",
            threads=1,
            log=str(run.run_dir) + ".log",
            attempt=attempt,
        )

    lines: list[str] = []
    report = launch_runs(
        runs,
        make_job,
        launcher,
        shared=files,
        jobs=jobs,
        total=len(runs),
        progress=lines.append,
        poll=poll,
    )
    return report, lines


def test_runs_sharing_a_stage_wait_for_its_trainer_and_others_run_in_parallel(tmp_path) -> None:
    # a and b share stage-0 file s0 (b also a warm start w0 with c); d shares nothing
    shared = {"a": ("s0", "wa"), "b": ("s0", "w0"), "c": ("s1", "w0"), "d": ("s2", "w2")}
    launcher = FakeLauncher()
    report, lines = _launch(tmp_path, shared, launcher)
    assert sorted(report.finished) == [f"{x} (seed 0)" for x in "abcd"] and not report.failed
    # a trains s0 and c trains w0: b needs both, so it never runs beside either
    assert not any({"a", "b"} <= s or {"b", "c"} <= s for s in launcher.together)
    # runs with distinct files overlap (d starts at once, beside a and c)
    assert any({"a", "c", "d"} <= s for s in launcher.together)
    assert [label for label, _ in launcher.submitted].index("b") == 3  # b started last
    assert any(
        line.startswith("finished") and "[4/4 done, 0 running, 0 failed]" in line for line in lines
    )


def test_a_run_waiting_for_a_shared_stage_starts_once_the_file_is_written(tmp_path) -> None:
    # a writes s0 at once and trains on for a second (its stage 1); b needs s0 only
    launcher = FakeLauncher(seconds=1.0, early=True)
    start = time.perf_counter()
    report, _ = _launch(tmp_path, {"a": ("s0",), "b": ("s0",)}, launcher, poll=0.02)
    assert sorted(report.finished) == ["a (seed 0)", "b (seed 0)"]
    assert any({"a", "b"} <= s for s in launcher.together)  # b ran beside a, loading s0
    assert time.perf_counter() - start < 1.9  # not one second after the other
    assert [label for label, _ in launcher.submitted] == ["a", "b"]  # a still trained it


def test_jobs_caps_the_runs_in_flight(tmp_path) -> None:
    launcher = FakeLauncher()
    _launch(tmp_path, {x: (f"s{x}",) for x in "abcd"}, launcher, jobs=2)
    assert max(len(s) for s in launcher.together) <= 2


def test_a_failed_run_is_retried_once_then_named_with_its_log_and_others_go_on(tmp_path) -> None:
    # a fails once (the retry succeeds); b fails twice: reported; c shares b's stage and
    # trains it itself after b gives up
    launcher = FakeLauncher(fail={"a": 1, "b": 2})
    report, lines = _launch(tmp_path, {"a": ("sa",), "b": ("s0",), "c": ("s0",)}, launcher)
    assert ("a", 2) in launcher.submitted and ("b", 2) in launcher.submitted
    assert ("a", 3) not in launcher.submitted and ("b", 3) not in launcher.submitted
    assert sorted(report.finished) == ["a (seed 0)", "c (seed 0)"]
    assert report.failed == {"b (seed 0)": str(tmp_path / "b") + ".log"}
    assert any(
        line.startswith("FAILED") and "b.log" in line and "1 failed" in line for line in lines
    )
    assert any(line.startswith("failed") and "retrying once" in line for line in lines)


def test_a_job_is_its_planned_run_plus_how_to_launch_it_and_survives_json(tmp_path) -> None:
    run = PlannedRun(
        label="MSE+ID",
        seed=1,
        settings={"reg": "none", "options": {"split": 2}},
        run_dir=tmp_path / "mse-id" / "seed1-split2",
        paper={"rank1": 50.0},
        ignored_overrides=("reg",),
        split=2,
    )
    job = RunJob.for_run(
        run, out_dir=str(tmp_path), bench="mini", threads=2, log=str(tmp_path / "x.log")
    )
    assert isinstance(job, PlannedRun) and job.name == run.name == "MSE+ID (seed 1, split 2)"
    assert (job.run_dir, job.settings, job.attempt, job.cwd) == (run.run_dir, run.settings, 1, ".")
    again = RunJob.from_json(job.to_json())
    assert again == job and isinstance(again.run_dir, Path)


def test_gpu_slots_give_each_run_its_own_devices() -> None:
    assert gpu_slots(None, 4, 1) == ["0", "1", "2", "3"]
    assert gpu_slots("2,5,7", 8, 1) == ["2", "5", "7"]  # the GPUs we were lent
    assert gpu_slots(None, 5, 2) == ["0,1", "2,3"]  # whole slots only
    assert gpu_slots(None, 0, 1) == []


def test_launcher_options_are_typed_and_unknown_ones_named(registry) -> None:
    entry = registry.lookup("launcher", "slurm")
    typed = parse_launcher_options(entry.options, {"time_min": "30", "partition": "gpu"}, "slurm")
    assert typed["time_min"] == 30 and typed["partition"] == "gpu" and typed["cluster"] == "slurm"
    with pytest.raises(ConfigError, match="no option 'partiton' \\(did you mean 'partition'\\?\\)"):
        parse_launcher_options(entry.options, {"partiton": "gpu"}, "slurm")
    with pytest.raises(ConfigError, match="time_min"):
        parse_launcher_options(entry.options, {"time_min": "0"}, "slurm")


def test_bad_launcher_input_is_one_line_exit_2(tmp_path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    for args, message in [
        (["--launcher", "rey"], "unknown launcher 'rey'. Did you mean 'ray'?"),
        (["--jobs", "0"], "--jobs must be a positive integer"),
        (["--launcher", "local", "-L", "x=1"], "launcher 'local' has no option 'x'"),
        (["-L", "partition=gpu"], "needs --launcher"),
    ]:
        result = CliRunner().invoke(main, ["bench", str(spec), "--out", str(tmp_path / "o"), *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_a_run_failing_in_its_process_leaves_its_log_and_the_leaderboard_names_it(
    tmp_path, registry
) -> None:
    """The real local launcher: a run whose worker fails (here: its data folder vanished)."""
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(
        SPEC.replace('data = "synthetic"', f'data = "viper"\ndata_root = "{tmp_path / "nope"}"')
    )
    spec = select_rows(load_spec(spec_path), ["MSE+ID"])
    out = tmp_path / "out"
    lines: list[str] = []
    with pytest.raises(BenchFailed, match="1 run\\(s\\) failed after a retry") as info:
        run_bench(
            spec,
            out,
            launcher="local",
            jobs=2,
            threads_per_run=1,
            progress=lines.append,
            registry=registry,
            validate=False,
        )
    log = out / "mse-id" / "seed0.log"
    assert info.value.failed["MSE+ID (seed 0)"] == str(log.resolve())
    text = log.read_text()
    assert (
        text.count("=== MSE+ID (seed 0), attempt") == 2 and "error:" in text
    )  # both attempts, the reason
    assert "## Failed runs" in (out / "leaderboard.md").read_text()
    assert json.loads((out / "leaderboard.json").read_text())["failed"]


# ------------------------------------------------------------------------- same numbers everywhere


def _numbers(out: Path) -> dict[str, dict]:
    return {
        p.parent.parent.name: json.loads(p.read_text())["queries"]
        for p in sorted(out.glob("*/seed0/metrics.json"))
    }


def _stage_records(run_dir: Path) -> set[str]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {key for r in records for key in ("stage0_cache", "warmup_cache") if key in r}


@pytest.fixture(scope="module")
def serial(tmp_path_factory, registry) -> dict[str, dict]:
    """The reference: the grid run serially in this process, one torch thread per run."""
    tmp = tmp_path_factory.mktemp("serial")
    (tmp / "s.toml").write_text(SPEC)
    run_bench(
        load_spec(tmp / "s.toml"),
        tmp / "out",
        threads_per_run=1,
        progress=lambda m: None,
        registry=registry,
    )
    numbers = _numbers(tmp / "out")
    assert set(numbers) == {"mse-id", "mse-id-gan"}
    return numbers


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(
            f"{module} is not installed "
            f"(pip install 'crossres-harness[{'ray' if module == 'ray' else 'slurm'}]')"
        )


@pytest.mark.slow
def test_local_jobs_give_the_serial_numbers_and_train_shared_stages_once(
    serial: dict, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(SPEC)
    result = CliRunner().invoke(
        main,
        ["bench", "s.toml", "--out", "out", "--threads-per-run", "1", "--jobs", "2"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert _numbers(tmp_path / "out") == serial  # bit-identical metrics, every query
    # the two rows share stage 0 and the warm start: the first trains them, the second loads both
    assert _stage_records(tmp_path / "out" / "mse-id" / "seed0") == set()
    assert _stage_records(tmp_path / "out" / "mse-id-gan" / "seed0") == {
        "stage0_cache",
        "warmup_cache",
    }
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "out" / ".stage0-cache").glob("*.pt"))
    assert cached == ["critic", "stage0", "warmup"]  # and the gan row's own critic warm-up
    out = result.output
    assert "started  MSE+ID (seed 0)" in out and "[2/2 done, 0 running, 0 failed]" in out
    assert (tmp_path / "out" / "mse-id" / "seed0.log").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [["--launcher", "ray"], ["--launcher", "slurm", "-L", "cluster=local"]],
    ids=["ray", "slurm"],
)
def test_ray_and_slurm_give_the_serial_numbers(
    launcher: list[str], serial: dict, tmp_path, monkeypatch
) -> None:
    """One row each (a local Ray cluster, submitit's local executor): an engine start costs
    seconds."""
    _needs("ray" if "ray" in launcher else "submitit")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(SPEC)
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "s.toml",
            "--out",
            "out",
            "--row",
            "MSE+ID",
            "--threads-per-run",
            "1",
            "--jobs",
            "2",
            *launcher,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert _numbers(tmp_path / "out") == {"mse-id": serial["mse-id"]}
    assert "[1/1 done, 0 running, 0 failed]" in result.output


@pytest.mark.slow
def test_a_local_ray_cluster_runs_its_runs_at_full_priority(tmp_path) -> None:
    """Ray starts workers at niceness 15; a run there loses the CPU to every other process
    (a one-row smoke bench: 105 s beside one other test process, 26 s under submitit)."""
    _needs("ray")
    import ray

    from harness.launch import LaunchSettings
    from plugins.launch.ray_launcher import RayLauncher

    launcher = RayLauncher(LaunchSettings(jobs=1, threads=1, gpus=0, options={}, out_dir=tmp_path))
    try:
        niceness = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())
    finally:
        launcher.close()
    assert niceness == os.nice(0)  # the runs' priority is the caller's, not Ray's 15
    assert not ray.is_initialized()  # the cluster it started, it stops


def test_the_grid_eta_comes_from_finished_runs_and_ends_with_the_grid():
    from harness.scheduler import _count, grid_eta

    assert grid_eta([], 5, 1) is None  # nothing finished yet: no guess
    assert grid_eta([600.0], 0, 1) is None  # nothing left
    assert grid_eta([600.0, 300.0], 4, 2) == 900.0  # 450 s a run, 4 runs, 2 at once
    assert _count(9, 3, 2, 0, 900.0) == "[3/9 done, 2 running, 0 failed; ETA ~15m]"
    assert _count(9, 3, 2, 0, 4000.0).endswith("; ETA ~1h07m]")
    assert _count(4, 4, 0, 0) == "[4/4 done, 0 running, 0 failed]"
