"""The reliability promise (docs/reliability.md): faults and bad inputs, each a clear one-line
error or a correct complete run. One test (or one parametrized case) per row of that table."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from harness.errors import DiskFullError, HarnessError

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ["--preset", "smoke", "--device", "cpu"]
#: the issue's K: a smoke run long enough to checkpoint several times
K = [
    *SMOKE,
    "--reg",
    "intact",
    "--reid-iters",
    "6",
    "--sr-warmup-iters",
    "2",
    "--sr-iters",
    "6",
    "--ckpt-every",
    "2",
]


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def one_line_error(result, *needles: str) -> str:
    """Exit code 2, no traceback, one ``error:`` line holding every needle."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ------------------------------------------------------------------ 1. a run folder holds one run


@pytest.mark.slow
def test_a_new_run_refuses_a_folder_holding_another_run(tmp_path):
    out = tmp_path / "R"
    assert cli("run", *K, "--out", str(out)).exit_code == 0
    before = (out / "metrics.json").read_text()
    one_line_error(
        cli("run", *K, "--seed", "1", "--out", str(out)),
        "already holds a run",
        "seed 0",
        "--resume",
        "--out",
    )
    assert (out / "metrics.json").read_text() == before


@pytest.mark.slow
def test_resume_refuses_checkpoints_written_under_other_settings(tmp_path):
    out = tmp_path / "R"
    assert cli("run", *K, "--out", str(out)).exit_code == 0
    doc = json.loads((out / "config.json").read_text())
    doc["config"]["seed"] = 1  # what a second run writing into the folder would leave
    (out / "config.json").write_text(json.dumps(doc))
    one_line_error(cli("run", "--resume", str(out)), "was written by another run", "seed: 0 != 1")


# ------------------------------------------------------------------ 2. NaN between log steps


def _no_nonfinite_checkpoint(run: Path) -> None:
    for path in (run / "checkpoints").glob("*.pt"):
        ckpt = torch.load(path, weights_only=True)
        models = ckpt.get("models", {"reid": ckpt}) if isinstance(ckpt, dict) else {}
        for state in models.values():
            for value in state.values():
                if torch.is_tensor(value) and value.is_floating_point():
                    assert torch.isfinite(value).all(), path.name


def test_nan_between_log_steps_is_caught_at_its_iteration_and_never_checkpointed(tmp_path):
    out = tmp_path / "R"
    result = cli(
        "run",
        *SMOKE,
        "--lr-reid",
        "1e12",
        "--log-every",
        "1000",
        "--reid-iters",
        "10",
        "--sr-iters",
        "0",
        "--out",
        str(out),
    )
    line = one_line_error(result, "first became non-finite at iteration", "of stage 'reid'")
    first = int(line.split("at iteration ")[1].split()[0])
    assert 1 <= first <= 10
    assert not list((out / "checkpoints").glob("ckpt-done-*")), "a NaN run must not reach done"
    _no_nonfinite_checkpoint(out)
    metrics = _metrics(out)  # not complete, and it says why
    assert metrics["status"] == "failed" and "non-finite" in metrics["reason"]


@pytest.mark.slow
def test_nan_in_the_gan_steps_is_named_and_never_checkpointed(tmp_path):
    out = tmp_path / "R"
    result = cli(
        "run",
        *SMOKE,
        "--reg",
        "gan",
        "-o",
        "lr_D=1e12",
        "--lr",
        "1e12",
        "--log-every",
        "1000",
        "--sr-iters",
        "6",
        "--out",
        str(out),
    )
    one_line_error(result, "non-finite", "stage 'sr'")
    _no_nonfinite_checkpoint(out)


# -------------------------------------------------------------- 3. weights of another architecture


def _resnet_weights(tmp_path: Path, name: str) -> Path:
    from harness.config import RunConfig
    from harness.registry import get_registry

    model = get_registry().lookup("reid", name).factory(RunConfig(height=32, width=16), 5)
    path = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), path)
    return path


def test_weights_of_a_bigger_architecture_are_refused(tmp_path):
    path = _resnet_weights(tmp_path, "resnet34")
    one_line_error(
        cli(
            "run",
            *SMOKE,
            "--reid",
            "resnet18",
            "--reid-weights",
            str(path),
            "--out",
            str(tmp_path / "R"),
        ),
        "does not cover this re-id model",
        "no place in the model",
        "--partial-weights",
    )


def test_a_foreign_reid_init_file_is_refused_as_reid_weights_is(tmp_path):
    """The issue's case: a resnet34 file names every resnet18 tensor, and 98 more."""
    full = torch.load(_resnet_weights(tmp_path, "resnet34"), weights_only=True)
    trunk = {k[len("backbone.") :]: v for k, v in full.items() if k.startswith("backbone.")}
    path = tmp_path / "r34.pt"
    torch.save(trunk, path)
    args = ["run", *SMOKE, "--reid", "resnet18", "--reid-init", str(path)]
    one_line_error(cli(*args, "--out", str(tmp_path / "R")), "no place in it", "--partial-weights")


def test_a_partial_reid_init_loads_the_matching_part_and_says_so():
    from harness.pretrained import fit_to_backbone

    target = {"conv.weight": torch.zeros(2, 3), "bn.weight": torch.zeros(2)}
    bigger = {**target, "layer9.weight": torch.ones(4)}
    smaller = {"conv.weight": torch.ones(2, 3)}
    for source in (bigger, smaller):
        with pytest.raises(HarnessError, match="another architecture"):
            fit_to_backbone(source, target)
    fitted, how = fit_to_backbone(bigger, target, partial=True)
    assert set(fitted) == set(target) and how == "by name, partial"
    fitted, how = fit_to_backbone(smaller, target, partial=True)
    assert set(fitted) == {"conv.weight"} and how == "by name, partial"
    assert fit_to_backbone(target, target)[1] == "by name"  # a file that fits is no partial


@pytest.mark.slow
def test_a_file_of_one_tensor_is_refused_and_partial_loads_are_counted(tmp_path):
    path = tmp_path / "one.pt"
    full = torch.load(_resnet_weights(tmp_path, "resnet18"), weights_only=True)
    torch.save({"backbone.conv1.weight": full["backbone.conv1.weight"]}, path)
    one_line_error(
        cli("run", *SMOKE, "--reid-weights", str(path), "--out", str(tmp_path / "R")),
        "not in the file",
    )
    result = cli(
        "run",
        *SMOKE,
        "--reid-weights",
        str(path),
        "--partial-weights",
        "--sr-iters",
        "0",
        "--out",
        str(tmp_path / "P"),
    )
    assert result.exit_code == 0, result.output
    assert "1 tensors loaded" in result.output and "missing" in result.output


# ------------------------------------------------------------------ 4. every promised file


@pytest.mark.slow
def test_a_resume_rewrites_a_missing_split_json(tmp_path):
    out = tmp_path / "R"
    assert cli("run", *K, "--out", str(out)).exit_code == 0
    (out / "split.json").unlink()
    (out / "metrics.json").write_text(json.dumps({"status": "running"}))
    assert cli("run", "--resume", str(out)).exit_code == 0
    assert (out / "split.json").is_file() and _metrics(out)["status"] == "complete"


#: a tiny complete run: enough to resume and evaluate
TINY = [
    *SMOKE,
    "--reid-iters",
    "2",
    "--sr-warmup-iters",
    "1",
    "--sr-iters",
    "2",
    "-o",
    "synth_train_ids=4",
    "-o",
    "synth_test_ids=4",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "R"
    result = cli("run", *TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def _copy_run(run: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, to))


def _edit_config(run: Path, edit) -> None:
    doc = json.loads((run / "config.json").read_text())
    edit(doc["config"])
    (run / "config.json").write_text(json.dumps(doc))


@pytest.mark.slow
def test_a_resume_refuses_a_split_its_data_or_protocol_no_longer_give(tmp_path, tiny_run):
    """Edited before the first checkpoint: no checkpoint's settings to compare, only split.json."""
    run = _copy_run(tiny_run, tmp_path / "R")
    import shutil

    shutil.rmtree(run / "checkpoints")
    (run / "metrics.json").write_text(json.dumps({"status": "running"}))
    _edit_config(run, lambda c: c["protocol"].update(seed=c["protocol"]["seed"] + 1))
    one_line_error(
        cli("run", "--resume", str(run)), "cannot be resumed", "protocol.seed", "split.json"
    )
    assert not (run / "checkpoints").exists()  # refused before anything trained


@pytest.mark.slow
def test_eval_of_a_checkpoint_with_nan_weights_is_one_line(tmp_path, tiny_run):
    import torch

    from harness.checkpoint import list_checkpoints

    run = _copy_run(tiny_run, tmp_path / "R")
    final = list_checkpoints(run / "checkpoints")[-1]
    ckpt = torch.load(final, weights_only=False)
    next(t for t in ckpt["models"]["G"].values() if t.is_floating_point()).fill_(float("nan"))
    torch.save(ckpt, final)
    before = (run / "metrics.json").read_bytes()
    one_line_error(cli("eval", str(run)), "weights of 'G' are not finite", "altered or corrupted")
    assert (run / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_a_resume_with_no_checkpoint_says_it_starts_over(tmp_path, tiny_run):
    run = _copy_run(tiny_run, tmp_path / "R")
    import shutil

    shutil.rmtree(run / "checkpoints")
    (run / "metrics.json").write_text(json.dumps({"status": "running"}))
    result = cli("run", "--resume", str(run))
    assert result.exit_code == 0, result.output
    assert f"no checkpoint in {run / 'checkpoints'}: training starts over" in result.output
    assert _metrics(run)["status"] == "complete"


@pytest.mark.slow
def test_a_resume_whose_data_is_gone_says_where_the_data_must_be(tmp_path, tiny_run):
    """`--resume` again cannot help a folder whose data moved: the error names the place."""
    run = _copy_run(tiny_run, tmp_path / "R")
    (run / "metrics.json").write_text(json.dumps({"status": "running"}))  # it had stopped
    gone = tmp_path / "market-was-here"
    _edit_config(run, lambda c: c.update(data="market1501", data_root=str(gone)))
    line = one_line_error(cli("run", "--resume", str(run)), str(gone), "put that data back")
    assert "--data market1501" in line
    assert _metrics(run)["status"] == "failed"


def test_a_split_that_gained_images_is_named_by_its_counts(tmp_path):
    from harness.rundir import check_split

    listing = {"data": "d", "query": [["q", 1]] * 16, "protocol": {"seed": 0}}
    (tmp_path / "split.json").write_text(json.dumps(listing))
    check_split(tmp_path, listing)  # the same split: no complaint
    with pytest.raises(HarnessError, match="query: recorded 16 entries, now 20 entries"):
        check_split(tmp_path, {**listing, "query": [["q", 1]] * 20})
    # an mlr-2.0 folder predates the validation split: an empty one is no change, a real one is
    check_split(tmp_path, {**listing, "val_ids": [], "val_query": []})
    with pytest.raises(HarnessError, match="val_ids: recorded None, now 1 entries"):
        check_split(tmp_path, {**listing, "val_ids": [7]})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda c: c["protocol"].update(ratios=[2.0]), "protocol"),
        (lambda c: c.update(sr_iters=c["sr_iters"] + 5), "sr_iters"),
        (lambda c: c.update(reid="resnet34"), "reid"),  # a config naming another backbone
    ],
)
def test_eval_refuses_a_config_edited_after_training(tmp_path, tiny_run, edit, needle):
    run = _copy_run(tiny_run, tmp_path / "R")
    before = (run / "metrics.json").read_text()
    _edit_config(run, edit)
    one_line_error(cli("eval", str(run)), "disagrees with the settings", needle)
    assert (run / "metrics.json").read_text() == before  # nothing re-marked complete


@pytest.mark.slow
def test_eval_names_a_corrupt_metrics_json_and_keeps_it(tmp_path, tiny_run):
    """metrics.json holds what training recorded (timing, split): a torn one is named, not
    replaced; moved aside, the run is evaluated again without that record."""
    run = _copy_run(tiny_run, tmp_path / "R")
    torn = (run / "metrics.json").read_text()[:100]
    (run / "metrics.json").write_text(torn)
    one_line_error(cli("eval", str(run)), "metrics.json is corrupt (not JSON", "move it aside")
    assert (run / "metrics.json").read_text() == torn
    (run / "metrics.json").rename(run / "metrics.json.torn")
    assert cli("eval", str(run)).exit_code == 0 and _metrics(run)["status"] == "complete"


@pytest.mark.slow
def test_stray_lines_in_log_jsonl_are_named_and_dropped_on_resume(tmp_path, tiny_run):
    run = _copy_run(tiny_run, tmp_path / "R")
    log = run / "log.jsonl"
    lines = log.read_text().splitlines()
    stray = ["hello", "5", '{"stage": "reid", "iteration": "x"}']
    log.write_text("\n".join(lines[:1] + stray + lines[1:]) + "\n")
    (run / "metrics.json").write_text(json.dumps({"status": "running"}))
    result = cli("run", "--resume", str(run))
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    for number in (2, 3, 4):
        assert f"warning: {log} line {number} is not a log record; dropped" in result.output
    kept = log.read_text().splitlines()
    assert not set(stray) & set(kept) and kept[: len(lines)] == lines
    assert _metrics(run)["status"] == "complete"


def test_trim_log_keeps_records_up_to_the_checkpoint_and_names_what_it_drops(tmp_path):
    from harness.run import trim_log

    log = tmp_path / "log.jsonl"
    records = [{"stage": "reid", "iteration": i} for i in (1, 2, 3)] + [{"note": "no stage"}]
    text = [json.dumps(r) for r in records]
    log.write_text("\n".join([text[0], "[1]", text[1], '{"stage": "sr', text[2], text[3]]) + "\n")
    warnings: list[str] = []
    trim_log(log, "reid", 2, warn=warnings.append)
    assert log.read_text().splitlines() == [text[0], text[1], text[3]]
    assert [w.split(";")[0] for w in warnings] == [
        f"warning: {log} line 2 is not a log record",
        f"warning: {log} line 4 is not a log record",
    ]


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder``, made unwritable to this process: by its mode for a user; root ignores
    modes, so for root by the immutable flag (``chattr +i``) where the filesystem has one."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root on a filesystem without the immutable flag: nothing is read-only")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.slow
def test_eval_of_a_read_only_run_folder_is_one_line_before_evaluating(tmp_path, tiny_run):
    run = _copy_run(tiny_run, tmp_path / "R")
    before = (run / "metrics.json").read_text()
    with read_only(run):
        one_line_error(cli("eval", str(run)), f"cannot write to the output folder {run}")
    assert (run / "metrics.json").read_text() == before


@pytest.mark.parametrize("command", ["leaderboard", "bench"])
@pytest.mark.parametrize("inside", [False, True], ids=["the-folder", "a-folder-inside"])
def test_a_read_only_out_folder_is_one_line_before_any_work(tmp_path, command, inside):
    run = tmp_path / "runs" / "R"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {}}))
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "x"\n[defaults]\npreset = "smoke"\n[[runs]]\nlabel = "a"\n')
    with read_only(tmp_path / "ro") as folder:
        out = folder / "site" if inside else folder
        args = [str(run)] if command == "leaderboard" else [str(spec)]
        one_line_error(
            cli(command, *args, "--out", str(out)), f"cannot write to the output folder {out}"
        )
        assert list(folder.iterdir()) == []


@pytest.mark.slow
def test_a_second_resume_of_a_live_run_is_refused_and_a_dead_holder_frees_it(tmp_path, tiny_run):
    from harness.rundir import hold_run_dir

    run = _copy_run(tiny_run, tmp_path / "R")
    (run / "metrics.json").write_text(json.dumps({"status": "running"}))
    with hold_run_dir(run):  # this process trains in R
        one_line_error(cli("run", "--resume", str(run)), "is in use", f"process {os.getpid()}")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from harness.rundir import hold_run_dir\n"
            f"with hold_run_dir(Path({str(run)!r})):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(HarnessError, match="is in use"), hold_run_dir(run):
        pass
    holder.kill()  # SIGKILL: no clean-up ran, the OS releases the lock
    holder.wait()
    with hold_run_dir(run):
        pass


def _workers_of(out: Path) -> list[int]:
    """Live (not zombie) worker processes whose job names ``out``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "harness.worker" in cmd and str(out) in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_a_sigkilled_bench_leaves_no_worker_running(tmp_path):
    spec = tmp_path / "s.toml"
    # two rows that share no stage: both workers start at once
    spec.write_text(
        'name = "k"\n[defaults]\ndata = "synthetic"\npreset = "smoke"\ndevice = "cpu"\n'
        'reid_iters = 500\n[[runs]]\nlabel = "a"\n'
        '[[runs]]\nlabel = "b"\nseed = 1\n'
    )
    out = tmp_path / "out"
    bench = subprocess.Popen(
        [sys.executable, "-m", "harness", "bench", str(spec), "--out", str(out), "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while len(_workers_of(out)) < 2 and time.time() < deadline and bench.poll() is None:
            time.sleep(0.5)
        assert len(_workers_of(out)) == 2, "the bench never started its two workers"
    finally:
        bench.kill()
        bench.wait()
    deadline = time.time() + 10  # SIGTERM from the kernel, at once; ten seconds to exit
    while _workers_of(out) and time.time() < deadline:
        time.sleep(0.2)
    left = _workers_of(out)
    for pid in left:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their bench"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
        ({"WORLD_SIZE": "2", "MASTER_ADDR": "", "MASTER_PORT": ""}, "start distributed runs"),
    ],
)
def test_a_bad_torchrun_environment_is_one_line(tmp_path, env, needle):
    one_line_error(cli("run", *SMOKE, "--out", str(tmp_path / "R"), env=env), needle)


def _has(device: str) -> bool:
    if device == "mps":
        return torch.backends.mps.is_available()
    return device == "cuda" and torch.cuda.is_available()


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:99"])
def test_a_device_this_torch_lacks_is_one_line_before_training(tmp_path, device):
    """torch says so only at the first .to(device), in a traceback (mps: 'PyTorch is not
    linked with support for mps devices'); the run asks first."""
    if _has(device):
        pytest.skip(f"this machine has {device}")
    out = tmp_path / "R"
    one_line_error(cli("run", *SMOKE, "--device", device, "--out", str(out)), f"--device {device}")
    assert not (out / "config.json").exists()


def test_an_allocation_failure_is_one_line_naming_the_batch_size(tmp_path):
    """--batch-size 100000000 asks 143 GiB of this run's first batch; 2^50 fails for certain,
    even where memory is overcommitted (it is beyond any address space)."""
    out = tmp_path / "R"
    one_line_error(
        cli("run", *TINY, "--batch-size", str(2**50), "--out", str(out)),
        "out of memory (tried to allocate",
        f"--batch-size {2**50}",
        "--out NEW_FOLDER",
    )
    assert _metrics(out)["status"] == "failed"


def test_out_of_memory_is_recognised_from_the_cpu_and_cuda_allocators():
    from harness.run import _out_of_memory

    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 153600000000 bytes. Error code 12"
    )
    assert _out_of_memory(cpu) == "tried to allocate 143.1 GiB"
    cuda = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0")
    assert _out_of_memory(cuda) == "tried to allocate 20.00 GiB"
    assert _out_of_memory(MemoryError()) == "an allocation failed"
    assert _out_of_memory(ValueError("boom")) is None
    assert _out_of_memory(HarnessError("out of memory, said by the harness itself")) is None


# ------------------------------------------------------------------ 5. permissions


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_result_files_honour_the_umask(tmp_path, umask, mode):
    from harness.io import atomic_torch_save, atomic_write_text

    old = os.umask(umask)
    try:
        text = atomic_write_text(tmp_path / "a.json", "{}")
        weights = atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    finally:
        os.umask(old)
    assert text.stat().st_mode & 0o777 == mode
    assert weights.stat().st_mode & 0o777 == mode


# ------------------------------------------------------------------ 6. set-ups that cannot learn


def test_one_training_identity_is_refused():
    one_line_error(cli("run", *SMOKE, "-o", "synth_train_ids=1"), "synth_train_ids=1", ">= 2")


def test_a_dataset_with_one_training_identity_is_refused(tmp_path):
    from harness import ReidDataset, hookimpl
    from harness.components import Record
    from harness.registry import Registry
    from harness.resolve import resolve_config
    from harness.run import run_experiment

    class OneId:
        @hookimpl
        def harness_register_datasets(self, registry):
            def build(root, config):
                img = (torch.rand(32, 16, 3) * 255).to(torch.uint8).numpy()
                train = [Record(img, 0, c) for c in (0, 1)]
                test = [Record(img, p, c) for p in (1, 2) for c in (0, 1)]
                return ReidDataset(
                    "one-id",
                    train,
                    [r for r in test if r.camid == 0],
                    [r for r in test if r.camid == 1],
                )

            registry.add("one-id", build, "one training identity")

    reg = Registry()
    reg.load_entry_points(autoload=False)
    reg.register_plugin(OneId(), "one-id")
    config = resolve_config({"preset": "smoke", "data": "one-id", "device": "cpu"}, reg)
    with pytest.raises(HarnessError, match="has 1 identity; re-id training needs at least two"):
        run_experiment(config, tmp_path / "R", reg, echo=lambda *_: None)


# ------------------------------------------------------------------ 7. disk full


def _disk_full(*args, **kwargs):
    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
        ) from exc


def test_disk_full_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    from harness.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, "sr", 1, {"models": {}}, keep=2)
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(
        DiskFullError,
        match="disk full while writing checkpoint .*ckpt-sr-0000002.pt; "
        "the last good checkpoint ckpt-sr-0000001.pt is kept",
    ):
        save_checkpoint(tmp_path, "sr", 2, {"models": {}}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-sr-0000001.pt"]  # no .tmp left


def test_disk_full_while_appending_the_log_is_one_line_and_leaves_no_torn_line(
    tmp_path, monkeypatch
):
    import builtins

    from harness.io import append_jsonl

    log = tmp_path / "log.jsonl"
    append_jsonl(log, {"stage": "sr", "iteration": 1})
    real_open = builtins.open

    class HalfWriter:
        """Writes half the line, then the disk is full."""

        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def seek(self, *args):
            return self.handle.seek(*args)

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda *a, **k: HalfWriter(real_open(*a, **k)))
    with pytest.raises(DiskFullError, match="disk full while appending to .*log.jsonl"):
        append_jsonl(log, {"stage": "sr", "iteration": 2})
    monkeypatch.setattr(builtins, "open", real_open)
    lines = log.read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1]  # no torn half line


@pytest.mark.slow
def test_a_resume_removes_partial_temporaries(tmp_path):
    out = tmp_path / "R"
    assert cli("run", *K, "--out", str(out)).exit_code == 0
    torn = out / "checkpoints" / ".ckpt-sr-0000008.pt.abc123.tmp"
    torn.write_bytes(b"\0" * 1000)
    (out / "metrics.json").write_text(json.dumps({"status": "running"}))
    result = cli("run", "--resume", str(out))
    assert result.exit_code == 0 and not torn.exists()
    assert "removed .ckpt-sr-0000008.pt.abc123.tmp" in result.output


# ------------------------------------------------- 8 and 9. bad values: one line, the option named

BAD_VALUES = [
    (["--log-every", "0"], "--log-every"),
    (["--batch-size", "2", "--triplet"], "--triplet needs --batch-size >= 8"),
    (["--seed", "-5"], "--seed"),
    (["--seed", str(2**64)], "--seed"),
    (["--protocol-seed", "-1"], "--protocol-seed"),
    (["--device", "foo"], "--device must be auto, cpu, cuda"),
    (["--lr-reid", "nan"], "--lr-reid must be finite"),
    (["--lr-reid", "-0.1"], "--lr-reid must be finite and > 0"),
    (["-o", "synth_test_ids=0"], "-o synth_test_ids=0"),
    (["--reg", "intact", "-o", "phi_depth=0"], "-o phi_depth=0"),
    (["--lr", "-1"], "--lr must be finite and > 0"),
    (["--reg", "gan", "-o", "lr_D=-1"], "-o lr_D=-1.0: must be > 0"),
    (["--grad-clip", "-1"], "--grad-clip"),
    (["--ratios", "inf"], "--ratios must all be finite"),
    (["--data-root", "/tmp"], "synthetic dataset is generated and reads no folder"),
    (["-o", "lambda_c=abc"], "-o lambda_c=abc: expected float"),
    (["--sr", "SRGAN"], "Did you mean 'srgan'"),
    (["--reid", "efficientnet_b00"], "Did you mean 'efficientnet_b0'"),
    (["--reid-weights", "/tmp"], "is a folder; give the file"),
    (["--height", "8", "--width", "2"], "too small"),
    (["--reid", "|"], "unknown reid '|'. Known reid names: "),
    (["--reid", "||"], "unknown reid '||'. Known reid names: "),
    (["--device", "xpu"], "--device must be auto, cpu, cuda"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_values_are_one_line_naming_the_option(tmp_path, args, needle):
    one_line_error(cli("run", *SMOKE, *args, "--out", str(tmp_path / "R")), needle)
    assert not (tmp_path / "R").exists() or not (tmp_path / "R" / "checkpoints").exists()


def test_a_text_file_as_weights_is_one_line(tmp_path):
    text = tmp_path / "weights.pt"
    text.write_text("hello")
    one_line_error(
        cli("run", *SMOKE, "--reid-weights", str(text), "--out", str(tmp_path / "R")),
        "cannot read re-id weights",
        "not a PyTorch file",
    )


@pytest.mark.parametrize(
    "corrupt",
    ["not json {", json.dumps([1, 2]), json.dumps({"config": {"height": "tall", "nope": 1}})],
    ids=["not-json", "no-config-table", "bad-values"],
)
def test_a_corrupt_config_json_on_resume_is_one_line(tmp_path, corrupt):
    out = tmp_path / "R"
    out.mkdir()
    (out / "config.json").write_text(corrupt)
    one_line_error(cli("run", "--resume", str(out)), "config.json is corrupt")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            'name = "x"\n[defaults]\nheight = "abc"\n[[runs]]\nlabel = "a"\n',
            "height='abc': expected int",
        ),
        (bytes(range(128, 256)), "not valid TOML"),
        ('name = "../../escape"\n[[runs]]\nlabel = "a"\n', "must be a plain folder name"),
        # values of the wrong type: one line naming the row, the key and what it takes
        (
            'name = "x"\n[[runs]]\nlabel = "a"\nprotocol = { lr_cameras = "13" }\n',
            "row 'a' (seed 0): --lr-cameras must be a list of whole numbers like [0, 1] (got '13')",
        ),
        (
            'name = "x"\n[[runs]]\nlabel = "a"\nprotocol = { ratios = "2,3" }\n',
            "row 'a' (seed 0): --ratios must be a list of numbers like [2, 3, 4] (got '2,3')",
        ),
        (
            'name = "x"\n[[runs]]\nlabel = "a"\nbatch_size = 8.5\n',
            "--batch-size must be a whole number (got 8.5)",
        ),
        (
            'name = "x"\n[[runs]]\nlabel = "a"\noptions = { sr_channels = 1e30 }\n',
            "-o sr_channels=1e+30: must be a whole number no larger than 2^53",
        ),
    ],
    ids=[
        "height-abc",
        "binary",
        "name-escapes",
        "lr-cameras-string",
        "ratios-string",
        "batch-fraction",
        "channels-1e30",
    ],
)
def test_bad_bench_specs_are_one_line(tmp_path, content, needle):
    spec = tmp_path / "spec.toml"
    spec.write_bytes(content if isinstance(content, bytes) else content.encode())
    one_line_error(
        cli("bench", str(spec), "--preset", "smoke", "--out", str(tmp_path / "B")), needle
    )
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("trials = 2.5", "spec.toml [tune]: trials must be a whole number >= 1, got 2.5"),
        ('trials = "3"', "trials must be a whole number >= 1, got '3'"),
        (
            "trials = 1\nspace = { sr_channels = 1e30 }",
            "[tune]: space.sr_channels must be [low, high] or a list of choices, got 1e+30",
        ),
    ],
    ids=["trials-fraction", "trials-string", "space-scalar"],
)
def test_bad_tune_tables_are_one_line(tmp_path, table, needle):
    """trials = 2.5 ran 2 trials and called the budget met; a scalar space was ignored."""
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "x"\n[tune]\n{table}\n[[runs]]\nlabel = "a"\n')
    one_line_error(
        cli("tune", str(spec), "--preset", "smoke", "--out", str(tmp_path / "T")), needle
    )
    assert not (tmp_path / "T").exists()


def test_a_string_is_never_read_as_a_list_of_cameras(tmp_path):
    """lr_cameras = "13" became cameras [1, 3]. A list setting takes a list wherever a
    protocol is made (a spec, config.json); only the command line's own option splits a
    string, at commas (--lr-cameras 13 is camera 13, 1,3 cameras 1 and 3)."""
    from harness.cli_settings import _parse_many
    from harness.config import SETTING, ConfigError, ProtocolConfig, RunConfig

    with pytest.raises(ConfigError, match=r"--lr-cameras must be a list of whole numbers"):
        ProtocolConfig(lr_cameras="13")
    with pytest.raises(ConfigError, match=r"--ratios must be a list of numbers .*\(got 2\)"):
        ProtocolConfig(ratios=2)
    with pytest.raises(ConfigError, match="--lr-cameras must be a list"):
        RunConfig.from_dict({"protocol": {"lr_cameras": "13"}})  # a hand-edited config.json
    assert ProtocolConfig(lr_cameras=[1, 3]).lr_cameras == (1, 3)
    option = _parse_many(SETTING["protocol.lr_cameras"])
    assert option(None, None, "13") == (13,) and option(None, None, "1,3") == (1, 3)
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "x"\n[[runs]]\nlabel = "a"\n')
    one_line_error(
        cli("bench", str(spec), "--set", "lr_cameras=13", "--out", str(tmp_path / "B")),
        "unknown setting 'lr_cameras' (a protocol setting: protocol.lr_cameras",
    )
    # by its dotted name it reaches the protocol table, typed and checked before any training
    one_line_error(
        cli("bench", str(spec), "--set", "protocol.val_ids=0.9", "--out", str(tmp_path / "B")),
        "--val-ids must be finite and >= 0 and <= 0.5 (got 0.9)",
    )
    assert not (tmp_path / "B" / "a").exists()


# ------------------------------------------------------------------ 10. bookkeeping


def test_a_bad_row_anywhere_in_the_grid_stops_the_bench_before_any_training(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "late"\n[defaults]\npreset = "smoke"\n[[runs]]\nlabel = "ok"\n'
        '[[runs]]\nlabel = "bad"\nsr = "SRGANN"\n'
    )
    one_line_error(
        cli("bench", str(spec), "--out", str(tmp_path / "B")), "row 'bad'", "Did you mean 'srgan'"
    )
    assert not (tmp_path / "B" / "ok").exists()


@pytest.mark.slow
def test_skipped_images_leave_split_json_and_the_metrics(tmp_path):
    data = tmp_path / "market"
    assert (
        cli(
            "data",
            "synth",
            "--out",
            str(data),
            "--layout",
            "market1501",
            "--train-ids",
            "8",
            "--test-ids",
            "6",
            "--images-per-camera",
            "2",
            "--height",
            "32",
            "--width",
            "16",
        ).exit_code
        == 0
    )
    query = sorted((data / "Market-1501-v15.09.15" / "query").glob("*.jpg"))
    query[0].write_bytes(b"not a jpeg")
    out = tmp_path / "R"
    result = cli(
        "run",
        *SMOKE,
        "--data",
        "market1501",
        "--data-root",
        str(data),
        "--skip-bad-images",
        "--sr-iters",
        "0",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    split = json.loads((out / "split.json").read_text())
    names = [row[0] for row in split["query"]]
    assert not any(query[0].name in n for n in names)
    assert any(query[0].name in s for s in split["skipped_images"])
    assert _metrics(out)["split"]["num_query"] == len(names) == _metrics(out)["num_queries"]


@pytest.mark.slow
@pytest.mark.parametrize("part", ["query", "bounding_box_test"])
def test_skipping_every_query_or_gallery_image_is_refused_before_training(tmp_path, part):
    data = tmp_path / "market"
    synth = ["data", "synth", "--out", str(data), "--layout", "market1501"]
    sizes = ["--train-ids", "8", "--test-ids", "6", "--images-per-camera", "2"]
    assert cli(*synth, *sizes, "--height", "32", "--width", "16").exit_code == 0
    for image in (data / "Market-1501-v15.09.15" / part).glob("*.jpg"):
        image.write_bytes(b"not a jpeg")
    out = tmp_path / "R"
    args = ["--data", "market1501", "--data-root", str(data), "--skip-bad-images"]
    result = cli("run", *SMOKE, *args, "--out", str(out))
    which = "query" if part == "query" else "gallery"
    one_line_error(result, f"every {which} image was unreadable", "repair or restore")
    assert not (out / "checkpoints").exists()  # refused before anything trained


@pytest.mark.slow
def test_log_jsonl_has_each_iteration_once_after_a_resume(tmp_path):
    from harness.checkpoint import list_checkpoints

    out = tmp_path / "R"
    assert (
        cli("run", *K, "--log-every", "1", "--keep-checkpoints", "50", "--out", str(out)).exit_code
        == 0
    )
    # a crash just after ckpt-sr-0000004: the checkpoints after it are lost, the log ran on
    for path in list_checkpoints(out / "checkpoints"):
        if path.name.startswith("ckpt-done") or path.name > "ckpt-sr-0000004.pt":
            path.unlink()
    (out / "metrics.json").write_text(json.dumps({"status": "running"}))
    result = cli("run", "--resume", str(out))
    assert result.exit_code == 0 and "resumed at stage sr, iteration 4" in result.output
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    keys = [(r["stage"], r["iteration"]) for r in rows if "stage" in r and "error" not in r]
    assert ("sr", 6) in keys and len(keys) == len(set(keys)), "an iteration was logged twice"


# ------------------------------------------------------------------ 11. messages


@pytest.mark.slow
def test_a_skipped_corrupt_checkpoint_is_reported(tmp_path):
    out = tmp_path / "R"
    assert cli("run", *K, "--out", str(out)).exit_code == 0
    from harness.checkpoint import list_checkpoints

    newest = list_checkpoints(out / "checkpoints")[-1]
    newest.write_bytes(b"garbage")
    (out / "metrics.json").write_text(json.dumps({"status": "running"}))
    result = cli("run", "--resume", str(out))
    assert result.exit_code == 0 and f"skipping checkpoint {newest.name}" in result.output


def test_amp_on_cpu_is_said_once(tmp_path):
    result = cli("run", *SMOKE, "--amp", "--sr-iters", "0", "--out", str(tmp_path / "R"))
    assert result.exit_code == 0 and result.output.count("--amp needs a GPU") == 1


@pytest.mark.slow
def test_ctrl_c_says_how_to_continue(tmp_path):
    out = tmp_path / "R"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            *SMOKE,
            "--reid-iters",
            "100000",
            "--log-every",
            "1",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.time() + 120
    log = out / "log.jsonl"
    # interrupt inside the training loop: once a whole iteration line is logged (on a loaded
    # box the file can appear well before the loop runs)
    while time.time() < deadline and not (log.is_file() and log.read_text().endswith("\n")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert f"interrupted; continue with harness run --resume {out}" in output
    assert "Traceback" not in output and "Aborted!" not in output


# ------------------------------------------------------------------ 12. checkpoint size


@pytest.mark.slow
def test_checkpoints_after_stage0_leave_the_frozen_reid_model_to_one_file(tmp_path):
    from harness.checkpoint import FROZEN_REID, latest_checkpoint

    out = tmp_path / "R"
    assert cli("run", *K, "--out", str(out)).exit_code == 0
    ckpts = out / "checkpoints"
    done = torch.load(sorted(ckpts.glob("ckpt-done-*.pt"))[0], weights_only=True)
    assert "reid" not in done["models"] and "reid_optimizer" not in done
    assert (ckpts / FROZEN_REID).is_file()
    assert "reid" in latest_checkpoint(ckpts)["models"]  # put back on load
    frozen = (ckpts / FROZEN_REID).stat().st_size
    assert sorted(ckpts.glob("ckpt-done-*.pt"))[0].stat().st_size < frozen * 3
