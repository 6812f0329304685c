"""Fail fast, lose nothing: every problem that can be known before training is one line with exit
status 2 before any training; a fault during or after training loses nothing that was trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import timm
import torch

from harness import cli, models, runner
from harness.artifacts.checkpoints import (
    LAST,
    CheckpointStore,
    epoch_file,
    load,
)
from harness.results.record import RunResult
from harness.settings import REPO_ROOT
from tests.conftest import ENGINES_SECOND_HEAVY, TINY_MODEL, make_image_folder, tiny_spec
from tests.test_reports import record


@contextmanager
def small_disk(path: Path, size: str, *options: str):
    """A real tmpfs of `size` at `path` (root only; the test is skipped with the reason otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)), "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'not root'}); the case needs a real small"
            " disk"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m harness ...` in this process (same code path, no interpreter start-up)."""
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def tiny_run_args(folder: Path, tmp_path: Path, *extra: str) -> list[str]:
    """A tiny run of the default workflow's recipe (a --model alone would take the neutral base)."""
    return [
        "run",
        "--recipe",
        "efficientnetv2",
        "--model",
        TINY_MODEL,
        "--data",
        str(folder),
        "--weights",
        "random",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "results"),
        *extra,
    ]


def assert_one_line_refusal(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "train_loss=" not in out and "Traceback" not in err  # refused before any training


# --- pre-flight: folders, resume, launcher ------------------------------------------------------


def test_a_results_folder_under_a_file_or_in_proc_is_refused(tiny_folder, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for bad in (tmp_path / "a-file" / "results", Path("/proc/trainbench-results")):
        code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path), "--results-dir", str(bad))
        assert_one_line_refusal(
            code, out, err, f"results folder {bad} cannot be written", "choose another --results-dir"
        )


def test_a_read_only_checkpoint_folder_is_refused(tiny_folder, tmp_path, capsys):
    with small_disk(tmp_path / "ro", "64k", "ro") as read_only:
        code, out, err = run_cli(
            capsys, *tiny_run_args(tiny_folder, tmp_path), "--checkpoint-dir", str(read_only / "ckpt")
        )
    assert_one_line_refusal(
        code,
        out,
        err,
        f"checkpoint folder {read_only / 'ckpt'} cannot be written (Read-only file system)",
        "--checkpoint-dir",
    )


def test_not_enough_disk_for_one_checkpoint_is_refused(tiny_folder, tmp_path, capsys):
    with small_disk(tmp_path / "tiny-disk", "64k") as disk:
        code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path), "--checkpoint-dir", str(disk))
    assert_one_line_refusal(
        code, out, err, f"checkpoint folder {disk}", "MiB free, one checkpoint of test_efficientnet needs about"
    )


def test_resume_with_nothing_to_resume_from_is_refused(tiny_folder, tmp_path, capsys):
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path), "--resume")
    assert_one_line_refusal(code, out, err, "--resume has nothing to resume from", "--checkpoint-dir")


def test_resume_after_the_run_finished_says_so_and_trains_nothing(tiny_folder, tmp_path, capsys):
    """`--resume` after a finished run said `no checkpoint ... found; starting from epoch 1` and trained
    a second attempt."""
    args = tiny_run_args(tiny_folder, tmp_path, "--checkpoint-dir", str(tmp_path / "ckpt"))
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    (done,) = (tmp_path / "results").glob("*/result.json")
    for given in ((), ("--run-id", done.parent.name)):
        code, out, err = run_cli(capsys, *args, "--resume", *given)
        line = f"--resume: {done.parent.name.rsplit('-', 1)[0]} already finished (record {done}); "
        assert code == 0 and line in out and "nothing to resume; drop --resume to train a new attempt" in out, out + err
        assert (
            "epoch 1/1" not in out and "starting from epoch 1" not in out and "test_acc=" in out
        )  # its metrics, not trained again
        assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [done.parent.name]  # no second attempt begun
    (
        tmp_path / "ckpt" / done.parent.name / LAST
    ).unlink()  # an interrupted second attempt: its checkpoint is resumed, as before
    attempt = tmp_path / "ckpt" / f"{done.parent.name}-attempt2"
    attempt.mkdir()
    (tmp_path / "ckpt" / done.parent.name / epoch_file(1)).rename(attempt / LAST)
    code, out, err = run_cli(capsys, *args, "--resume")
    assert code == 0 and f"resuming {attempt.name}" in out and "already finished" not in out, out + err


@pytest.mark.parametrize(
    "options, fragments",
    [
        (("--lr", "nan"), ("lr must be a positive number, got nan",)),
        (("--weight-decay", "-0.1"), ("weight_decay must be 0 or a positive number, got -0.1",)),
        (("--engine", "poutyne", "--num-nodes", "2"), ("Poutyne trains in one process", "--engine lightning")),
        (
            ("--engine", "lightning", "--num-nodes", "2", "--run-id", "n2"),
            ("--num-nodes 2 needs a launcher on every node", "torchrun"),
        ),
        (
            ("--engine", "lightning", "--devices", "2", "--batch-size", "9"),
            ("batch size 9 is the global batch", "--batch-size 8 or 10"),
        ),
    ],
    ids=[
        "lr-nan",
        "negative-weight-decay",
        "poutyne-2-nodes",
        "lightning-2-nodes-without-launcher",
        "batch-not-dividing",
    ],
)
def test_impossible_recipes_and_launches_are_refused(options, fragments, tiny_folder, tmp_path, capsys):
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path), *options)
    assert_one_line_refusal(code, out, err, *fragments)


@pytest.mark.slow
@pytest.mark.heavy
def test_a_node_whose_peers_never_come_stops_waiting_with_a_message(tiny_folder, tmp_path):
    """Node 0 of 2 under a launcher's environment, node 1 never started: exit 2 after the rendezvous timeout."""
    from harness.artifacts.emulator import free_port

    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "NODE_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    args = tiny_run_args(
        tiny_folder,
        tmp_path,
        "--engine",
        "lightning",
        "--num-nodes",
        "2",
        "--run-id",
        "n2",
        "--rendezvous-timeout-s",
        "3",
    )
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert (
        f"did not all meet at 127.0.0.1:{env['MASTER_PORT']} within 3 s" in line
        and "1/2 clients joined" in line
        and "--rendezvous-timeout-s" in line
    )
    assert "Traceback" not in done.stderr


# --- weights files ---------------------------------------------------------------------------------


def _write_random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _write_a_list(path: Path) -> None:
    torch.save([torch.zeros(3)], path)


def _write_vit(path: Path) -> None:
    models.save_weights(timm.create_model("test_vit", num_classes=4), path, {})


def _write_group_norm_variant(path: Path) -> None:
    """Same classifier name, other layers: timm's load_state_dict would print dozens of lines."""
    models.save_weights(timm.create_model("test_efficientnet_gn", num_classes=4), path, {})


@pytest.mark.parametrize(
    "name, write, fragment",
    [
        (f"{TINY_MODEL}.safetensors", _write_random_bytes, "cannot be read"),
        (f"{TINY_MODEL}.pth", _write_a_list, "holds a list, not a state dict"),
        (
            f"{TINY_MODEL}.safetensors",
            _write_vit,
            "has no classifier tensor 'classifier.weight': is it a checkpoint of test_efficientnet?",
        ),
        (f"{TINY_MODEL}.safetensors", _write_group_norm_variant, "its tensors do not fit this architecture"),
    ],
    ids=["random-bytes", "not-a-state-dict", "another-architecture", "same-head-other-layers"],
)
def test_a_weights_file_that_does_not_load_or_fit_is_one_line(name, write, fragment, tiny_folder, tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    write(weights / name)
    args = tiny_run_args(tiny_folder, tmp_path, "--weights-dir", str(weights))
    args[args.index("--weights") + 1] = "pretrained"
    code, out, err = run_cli(capsys, *args)
    assert_one_line_refusal(code, out, err, f"weights file {weights / name}", fragment)


# --- settings files, environment twins, baseline ---------------------------------------------------


def test_spec_and_settings_files_that_are_missing_or_invalid(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{ not json")
    (tmp_path / "other.json").write_text(json.dumps({"model": "x"}))
    for option, path, fragment in (
        ("--spec", tmp_path / "missing.json", "cannot be read (No such file or directory)"),
        ("--spec", tmp_path / "broken.json", "is not a spec file"),
        ("--spec", tmp_path / "other.json", "is not a spec file"),
    ):
        code, out, err = run_cli(capsys, "run", option, str(path))
        assert_one_line_refusal(code, out, err, f"{option} {path}", fragment)
    (tmp_path / "spec.json").write_text(tiny_spec().to_json())
    code, out, err = run_cli(
        capsys, "run", "--spec", str(tmp_path / "spec.json"), "--settings", str(tmp_path / "broken.json")
    )
    assert_one_line_refusal(code, out, err, f"--settings {tmp_path / 'broken.json'} is not a settings file")


@pytest.mark.parametrize(
    "variable, value",
    [
        ("TRAINBENCH_WANDB", "maybe"),
        ("TRAINBENCH_EPOCHS", "abc"),
        ("TRAINBENCH_GCS_RETRY_S", "soon"),
        ("TRAINBENCH_PROFILE", "medium"),
    ],
)
def test_an_environment_twin_with_a_bad_value_is_named(variable, value, monkeypatch, capsys):
    monkeypatch.setenv(variable, value)
    code, out, err = run_cli(capsys, "report", "results")
    assert_one_line_refusal(code, out, err, f"{variable}={value!r} is not valid", "fix or unset the variable")


# `python -m pytest ARGS` (pytest.main reads sys.argv as pytest's own entry point does), then one line on stdout
# that says whether the session imported torch: what pytest refuses before collecting, it refuses before torch.
PYTEST_SAYING_IF_TORCH = (
    "import sys, pytest\n"
    "code = pytest.main()\n"
    "print('torch imported' if 'torch' in sys.modules else 'torch not imported', flush=True)\n"
    "sys.exit(code)\n"
)


def _pytest_saying_if_torch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PYTEST_SAYING_IF_TORCH, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=120,
    )


@pytest.mark.slow
def test_pytest_names_a_bad_environment_twin_and_a_missing_baseline_before_collecting(tmp_path):
    pytest_args = ["benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider"]
    done = _pytest_saying_if_torch(*pytest_args, env={**_env(), "TRAINBENCH_EPOCHS": "abc"})
    assert (
        done.returncode == 4
        and "ERROR: TRAINBENCH_EPOCHS='abc' is not valid" in done.stderr
        and "Traceback" not in done.stderr
    ), done.stderr
    assert done.stdout.splitlines()[-1] == "torch not imported", done.stdout
    done = _pytest_saying_if_torch(*pytest_args, "--baseline", str(tmp_path / "last-night"))
    assert (
        done.returncode == 4
        and f"ERROR: --trainbench-baseline: {tmp_path / 'last-night'} does not exist" in done.stderr
    )
    assert done.stdout.splitlines()[-1] == "torch not imported", done.stdout


XDIST_REFUSAL = "would train cases side by side on shared cores and pytest-benchmark disables itself under xdist"


@pytest.mark.slow
@pytest.mark.parametrize(
    "workers", [["-n", "2"], ["-n", "auto"], ["--dist", "load", "--tx", "2*popen"]], ids=["n2", "auto", "dist"]
)
def test_pytest_xdist_over_the_benchmarks_is_refused_before_anything_trains(workers, tmp_path):
    """Cases trained side by side share the cores, and pytest-benchmark writes no --benchmark-json under xdist."""
    pytest.importorskip("xdist", reason="pytest-xdist is in the test extra (pip install 'trainbench[test]')")
    out = tmp_path / "x.json"
    done = _pytest_saying_if_torch(
        *workers,
        "benchmarks",
        "-k",
        "fastvit",
        f"--benchmark-json={out}",
        "--results-dir",
        str(tmp_path / "results"),
        "-p",
        "no:cacheprovider",
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert (
        done.returncode == 4
        and len(lines) == 1
        and lines[0].startswith("ERROR: trainbench: pytest-xdist (")
        and XDIST_REFUSAL in lines[0]
    ), done.stderr
    assert "run without -n (spread cases over machines with `trainbench nightly`)" in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / "results").exists() and "epoch 1/" not in done.stdout, "nothing trained"
    assert done.stdout.splitlines() == ["torch not imported"], done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["-n", "0", "benchmarks"], ["-n", "2", "tests/test_spec.py"]], ids=["no-workers", "tests-only"]
)
@pytest.mark.heavy
def test_pytest_xdist_without_workers_or_away_from_the_benchmarks_is_left_alone(args):
    pytest.importorskip("xdist", reason="pytest-xdist is in the test extra (pip install 'trainbench[test]')")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 0 and XDIST_REFUSAL not in done.stderr, done.stdout[-2000:] + done.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TRAINBENCH_")}


# --- training faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_a_last_training_batch_of_one_image_is_dropped_not_a_crash(engine, tiny_folder, settings):
    """36 training images in batches of 35: the last batch would be 1 image, which BatchNorm cannot train on."""
    record = runner.run(tiny_spec(engine=engine).with_recipe(batch_size=35), settings.replace(data_root=tiny_folder))
    assert record.data["split"]["train"] == 36 and len(record.history) == 1


@pytest.mark.heavy
def test_a_truncated_last_checkpoint_falls_back_to_the_newest_readable_epoch(tiny_folder, settings, tmp_path, capfd):
    settings = settings.replace(data_root=tiny_folder, checkpoint_dirs=(tmp_path / "ckpt",))
    spec = tiny_spec().with_recipe(epochs=2)
    first = runner.run(spec, settings)
    last = tmp_path / "ckpt" / first.run_id / LAST
    last.write_bytes(last.read_bytes()[:1000])  # last.ckpt shares epoch_002's bytes, so both are damaged now
    resumed = runner.run(spec, settings.replace(resume=True, results_dir=tmp_path / "again"))
    out = capfd.readouterr().out
    assert "is unreadable" in out and f"resuming from {epoch_file(1)} instead of the damaged {LAST}" in out
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[0] == first.history[0]  # epoch 1 came from the checkpoint, epoch 2 was trained again


def test_resume_when_every_checkpoint_is_damaged_says_so_before_training(tiny_folder, settings, tmp_path, capsys):
    settings = settings.replace(data_root=tiny_folder, checkpoint_dirs=(tmp_path / "ckpt",))
    spec = tiny_spec().with_recipe(epochs=2)
    first = runner.run(spec, settings)
    for checkpoint in (tmp_path / "ckpt" / first.run_id).iterdir():
        checkpoint.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    args = [
        "run",
        "--spec",
        str(tmp_path / "spec.json"),
        "--settings",
        str(tmp_path / "settings.json"),
        "--run-id",
        first.run_id,
    ]
    (tmp_path / "spec.json").write_text(spec.to_json())
    (tmp_path / "settings.json").write_text(settings.replace(resume=True, results_dir=tmp_path / "again").to_json())
    code, out, err = run_cli(capsys, *args)
    assert (
        code == 2
        and err.startswith(f"error: every checkpoint of {first.run_id} is damaged (")
        and "drop --resume" in err
    ), err
    assert "train_loss=" not in out and not (tmp_path / "again" / first.run_id / "result.json").exists()


def test_settings_options_on_the_command_line_are_used_with_a_spec_file(tiny_folder, settings, tmp_path, capsys):
    """With --spec, the settings options given on the command line apply, over a --settings file."""
    (tmp_path / "spec.json").write_text(tiny_spec().to_json())
    (tmp_path / "settings.json").write_text(settings.replace(data_root=tiny_folder).to_json())
    code, _out, err = run_cli(
        capsys,
        "run",
        "--spec",
        str(tmp_path / "spec.json"),
        "--settings",
        str(tmp_path / "settings.json"),
        "--results-dir",
        str(tmp_path / "given"),
    )
    assert code == 0, err
    assert len(list((tmp_path / "given").glob("*/result.json"))) == 1 and not settings.results_dir.exists()
    options = (
        "--data-root",
        str(tiny_folder),
        "--cache-dir",
        str(settings.cache_dir),
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "alone"),
    )
    code, _out, err = run_cli(capsys, "run", "--spec", str(tmp_path / "spec.json"), *options)
    assert code == 0, err
    assert len(list((tmp_path / "alone").glob("*/result.json"))) == 1


def test_a_full_disk_while_saving_names_the_file_and_the_space_and_leaves_no_partial_file(tmp_path, capsys):
    """The write runs in the background: its failure is printed at the next save (or at wait), listed,
    never raised; a later checkpoint that fits is written."""
    with small_disk(tmp_path / "full", "256k") as disk:
        store = CheckpointStore("run", [disk], bucket=None)
        store.save(1, {"trainbench": {"epoch": 1}, "weights": torch.zeros(1 << 20)})  # 4 MiB on a 256 KiB disk
        store.save(2, {"trainbench": {"epoch": 2}, "weights": torch.zeros(1)})
        store.wait()
        assert sorted(p.name for p in (disk / "run").iterdir()) == [
            epoch_file(2),
            LAST,
        ]  # nothing left of epoch 1's file
        (failure,) = store.failures
        assert (
            failure["epoch"] == 1
            and "epoch_001.ckpt could not be written (no space left on device: " in failure["message"]
        )
        assert (
            "MiB free, a checkpoint needs 4.0 MiB); free space on that disk or choose another --checkpoint-dir"
            in failure["message"]
        )
        out = capsys.readouterr().out
        assert (
            f"warning: {failure['message']}; the run goes on without it (no checkpoint of this run is kept yet)" in out
        )
        assert store.last == disk / "run" / epoch_file(2) and load(disk / "run" / LAST)["trainbench"]["epoch"] == 2


def _fill_disk(disk: Path, batches_per_epoch: int, full_epochs: range):
    """A step hook that fills `disk` (a real ENOSPC) from the last batch of the first epoch of
    `full_epochs`, after epoch 1's checkpoint is there, and frees it at the first batch after them."""
    calls = {"n": 0}

    def hook() -> None:
        calls["n"] += 1
        epoch, batch = divmod(calls["n"] - 1, batches_per_epoch)
        if epoch + 1 == full_epochs.start and batch == batches_per_epoch - 1:
            deadline = time.monotonic() + 60
            while not list(disk.glob(f"*/{LAST}")):  # epoch 1's write runs in the background
                assert time.monotonic() < deadline, "no first checkpoint"
                time.sleep(0.05)
            with open(disk / "filler", "wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                except OSError:
                    pass
        elif epoch + 1 == full_epochs.stop and batch == 0:
            (disk / "filler").unlink()

    return hook


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_a_full_disk_at_a_mid_run_checkpoint_keeps_the_run(engine, tiny_folder, settings, tmp_path, capsys):
    """3 epochs trained, then `epoch_002.ckpt could not be written ([enforce fail at inline_container.cc:672] .
    unexpected pos ...)`, exit 2, no test metrics, no record: the trained run was thrown away."""
    spec = tiny_spec(engine=engine, limit_batches=2).with_recipe(epochs=4)
    with small_disk(tmp_path / "ckpt", "4m") as disk:
        result = runner.run(
            spec,
            settings.replace(data_root=tiny_folder, checkpoint_dirs=(disk,)),
            step_hook=_fill_disk(disk, 2, range(2, 4)),
        )
        kept = load(disk / result.run_id / LAST)["trainbench"]["epoch"]
        files = sorted(p.name for p in (disk / result.run_id).iterdir())
    assert result.status == "ok" and len(result.history) == 4 and "test_acc" in result.test
    checkpoints = result.extra["artifacts"]["checkpoints"]
    assert (
        checkpoints["failures"][0]["epoch"] == 2
        and "epoch_002.ckpt could not be written (no space left on device: " in checkpoints["failures"][0]["message"]
    )
    assert (
        checkpoints["last"].endswith(epoch_file(4)) and kept == 4
    )  # the checkpoint after the disk was freed is written
    assert epoch_file(1) in files and epoch_file(2) not in files and not [f for f in files if f.endswith(".tmp")]
    assert "warning: checkpoint " in capsys.readouterr().out
    assert (
        RunResult.load(settings.results_dir / result.run_id / "result.json").extra["artifacts"]["checkpoints"][
            "failures"
        ]
        == checkpoints["failures"]
    )


def test_a_checkpoint_is_a_snapshot_training_cannot_change_while_it_is_written(tmp_path):
    store = CheckpointStore("run", [tmp_path / "ckpt"], bucket=None)
    writer_busy = threading.Event()
    store._writer.submit(writer_busy.wait, 30)  # hold the writer thread, so the save below is surely still queued
    weights = torch.ones(1 << 20)
    store.save(1, {"trainbench": {"epoch": 1, "history": [{"epoch": 1}]}, "state_dict": {"w": weights}})
    weights.zero_()  # the next optimizer step, before the write has started
    writer_busy.set()
    store.wait()
    saved = load(tmp_path / "ckpt" / "run" / epoch_file(1))
    assert (
        bool((saved["state_dict"]["w"] == 1).all())
        and load(tmp_path / "ckpt" / "run" / LAST)["trainbench"]["epoch"] == 1
    )


def test_temporary_files_of_an_interrupted_save_are_removed_at_start(tmp_path, capsys):
    folder = tmp_path / "ckpt" / "run"
    folder.mkdir(parents=True)
    (folder / f".{epoch_file(3)}.4242.tmp").write_bytes(b"half a checkpoint")
    CheckpointStore("run", [tmp_path / "ckpt"], bucket=None)
    assert list(folder.iterdir()) == [] and "left by an interrupted save" in capsys.readouterr().out


def test_a_finished_runs_metrics_are_printed_when_its_record_cannot_be_written(tiny_folder, tmp_path, capsys):
    with small_disk(tmp_path / "results", "8k") as results:
        code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path, "--results-dir", str(results)))
        leftovers = [p.name for p in results.rglob("*") if p.name.endswith(".tmp")]
    assert code == 2 and "could not be written" in err and "choose another --results-dir" in err
    assert "test_acc=" in out and leftovers == []


# --- results ------------------------------------------------------------------------------------------


def test_report_names_a_corrupt_record_skips_it_and_reports_the_rest(tmp_path, capsys):
    good = record(tiny_spec(), 0.5, 1.0, run_id="good")
    good.save(tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "result.json").write_text('{"run_id": "bad", ')
    code = cli.main(["report", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and f"skipped: {tmp_path / 'bad' / 'result.json'} is not a readable result record" in err
    assert "| good |" in out


def test_a_tolerance_that_is_not_a_number_names_the_option(tmp_path, capsys):
    code, out, err = run_cli(capsys, "compare", str(tmp_path), str(tmp_path), "--tolerance", "acc=abc")
    assert_one_line_refusal(code, out, err, "--tolerance acc=abc: 'abc' is not a number", "--tolerance acc=0.02")


@pytest.mark.slow  # the nightly collects the benchmarks with pytest in a process of its own
@pytest.mark.heavy  # make test: the nightly plans and runs real nights (test_nightly_cluster)
def test_nightly_says_when_nothing_matched(tmp_path, capsys):
    code, out, err = run_cli(capsys, "nightly", "--out", str(tmp_path / "n"), "--", "-k", "nomatch")
    assert code == 2 and "no benchmark case in benchmarks matches the pytest arguments -k nomatch" in out, out + err
    assert not (tmp_path / "n" / "records").exists()


def test_a_class_folder_too_small_for_the_split_is_named_with_a_fix(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "d", {"cats": 20, "dogs": 2})
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path))
    assert_one_line_refusal(code, out, err, "class folder(s) 'dogs' (2) have fewer than 3 images")
    code, out, err = run_cli(
        capsys,
        *tiny_run_args(make_image_folder(tmp_path / "e", {"cats": 20, "dogs": 4}), tmp_path),
        "--split",
        "0.9,0.05,0.05",
    )
    assert_one_line_refusal(
        code, out, err, "leaves class folder(s) 'dogs' (4 images: 4/0/0, no val or test image)", "--split 0.6,0.2,0.2"
    )


def test_a_rare_class_gets_advice_that_trains(tmp_path, capsys):
    """Classes of 60, 12 and 4 images: the default split was refused with the split already in use as its advice."""
    folder = make_image_folder(tmp_path / "d", {"common": 60, "some": 12, "rare": 4})
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path))
    assert_one_line_refusal(
        code,
        out,
        err,
        "'rare' (4 images: 3/1/0, no test image)",
        "give --split 0.6,0.2,0.2",
        "or add 1 image(s) to 'rare'",
    )
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path), "--split", "0.6,0.2,0.2")
    assert code == 0, err
    assert "data: 45 train / 16 val / 15 test images, 3 classes" in out  # every one of the 76 images is in a part


@pytest.mark.slow
def test_a_batch_batchnorm_cannot_train_on_is_refused_with_sizes_that_work(tmp_path, capsys):
    """resnet18 at 32 px ends in a 1x1 map: one image per device left BatchNorm one value per channel,
    a traceback after set-up in both engines."""
    folder = make_image_folder(tmp_path / "d", {"a": 8, "b": 8, "c": 8})
    for engine in ("poutyne", "lightning"):
        args = [*tiny_run_args(folder, tmp_path, "--model", "resnet18", "--engine", engine, "--batch-size", "1")]
        code, out, err = run_cli(capsys, *args)
        assert_one_line_refusal(
            code,
            out,
            err,
            "resnet18 at 32 px with 1 image per device gives its BatchNorm layer layer4.0.bn1 one value per channel"
            " (input [1, 512, 1, 1])",
            "give --batch-size 2 or more (2 images per device) or --image-size 33 or more",
        )
        assert "data:" not in out  # before the run's data line: nothing trained
    code, out, err = run_cli(
        capsys, *tiny_run_args(folder, tmp_path, "--model", "resnet18", "--batch-size", "1", "--image-size", "33")
    )
    assert code == 0, err  # the advised size trains


def test_found_by_the_sweep(tiny_folder, tmp_path, capsys):
    """Cases a bad-input sweep found ending in a traceback: an unwritable cache folder, a report
    written under a file, an image size too small for the distortions, a settings file's bad mode."""
    (tmp_path / "a-file").write_text("x")
    code, out, err = run_cli(
        capsys, *tiny_run_args(tiny_folder, tmp_path), "--cache-dir", str(tmp_path / "a-file" / "cache")
    )
    assert_one_line_refusal(
        code, out, err, f"cache folder {tmp_path / 'a-file' / 'cache'} cannot be written", "--cache-dir"
    )
    code, out, err = run_cli(capsys, "report", str(tmp_path), "--out", str(tmp_path / "a-file" / "out"))
    assert_one_line_refusal(code, out, err, f"report folder {tmp_path / 'a-file' / 'out'} cannot be written", "--out")
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path), "--image-size", "4")
    assert_one_line_refusal(code, out, err, "image_size 4 is too small to train on; give --image-size 16 or more")
    (tmp_path / "spec.json").write_text(tiny_spec().to_json())
    (tmp_path / "settings.json").write_text(json.dumps({"results_dir": str(tmp_path / "r"), "wandb": "bogus"}))
    code, out, err = run_cli(
        capsys, "run", "--spec", str(tmp_path / "spec.json"), "--settings", str(tmp_path / "settings.json")
    )
    assert_one_line_refusal(
        code, out, err, "is not a settings file", "wandb mode 'bogus' is not one of auto, online, offline, off"
    )


@pytest.mark.slow
def test_more_found_by_the_sweep(tiny_folder, tmp_path, capsys):
    """eda into a folder under a file, eda over an image past the bomb limit, run ids that are paths,
    and pytest's --tolerance that was only parsed after the session."""
    (tmp_path / "a-file").write_text("x")
    code, out, err = run_cli(capsys, "eda", str(tiny_folder), "--out", str(tmp_path / "a-file" / "eda"))
    assert_one_line_refusal(code, out, err, "EDA folder", "cannot be written", "--out")
    for bad in ("../../escape", "a/b"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*tiny_run_args(tiny_folder, tmp_path), "--run-id", bad])
        assert exit_info.value.code == 2 and "is not a folder name" in capsys.readouterr().err
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--baseline",
            str(tmp_path),
            "--tolerance",
            "acc=x",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert done.returncode == 4 and "ERROR: --tolerance acc=x: 'x' is not a number" in done.stderr


def test_eda_lists_an_image_over_the_bomb_limit_as_unreadable(tiny_folder, tmp_path, monkeypatch):
    from PIL import Image

    from harness import eda
    from harness.catalog import FASTVIT

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # the tiny folder's 40x40 images are over twice that
    survey = eda.run(tiny_folder, tmp_path / "eda", FASTVIT.recipe, "fastvit", sample=10)
    assert len(survey.corrupt) == 72 and all("DecompressionBombError" in why for _, why in survey.corrupt)


def test_found_by_the_second_sweep(tiny_folder, tmp_path, capsys):
    # a settings file whose checkpoint_dirs is a string once wrote one folder per character, into /
    (tmp_path / "spec.json").write_text(tiny_spec().to_json())
    (tmp_path / "settings.json").write_text(
        json.dumps({"results_dir": str(tmp_path / "r"), "checkpoint_dirs": str(tmp_path / "ckpt")})
    )
    code, out, err = run_cli(
        capsys, "run", "--spec", str(tmp_path / "spec.json"), "--settings", str(tmp_path / "settings.json")
    )
    assert_one_line_refusal(code, out, err, "checkpoint_dirs must be a list of path strings")
    # the global batch is checked against the --batch-size given, not the recipe's 128
    code, out, err = run_cli(
        capsys, *tiny_run_args(tiny_folder, tmp_path), "--engine", "lightning", "--devices", "3", "--batch-size", "9"
    )
    assert code == 2 and "batch size" not in err and "3 CPU processes need 3 cores" in err
    # a --weights-dir that is not a folder is said at once, not after the hub's retries
    args = tiny_run_args(
        tiny_folder, tmp_path, "--weights-dir", str(tmp_path / "nowhere"), "--profile", "full"
    )  # the smoke profile would make the folder for its stand-in
    args[args.index("--weights") + 1] = "pretrained"
    code, out, err = run_cli(capsys, *args)
    assert_one_line_refusal(code, out, err, f"weights folder {tmp_path / 'nowhere'} is not a folder")


def test_a_checkpoint_folder_given_twice_is_one_folder_and_leaves_no_temporary(tiny_folder, tmp_path, capsys):
    code, _out, err = run_cli(
        capsys,
        *tiny_run_args(
            tiny_folder, tmp_path, "--checkpoint-dir", str(tmp_path / "c"), "--checkpoint-dir", str(tmp_path / "c")
        ),
        "--epochs",
        "2",
    )
    assert code == 0, err
    assert list(tmp_path.rglob("*.tmp")) == [] and len(list((tmp_path / "c").iterdir())) == 1


def test_an_image_between_one_and_two_times_the_pixel_limit_is_named_too(tmp_path, monkeypatch):
    from PIL import Image

    from harness.data.decode import image_problem

    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")  # 1600 pixels: PIL only warns between 1000 and 2000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert "over PIL's decompression-bomb limit" in image_problem(str(tmp_path / "big.png"), decode=True)


def test_nightly_checks_what_the_end_of_the_night_needs_first(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for args, fragment in (
        (["--baseline", str(tmp_path / "none")], "does not exist"),
        (["--tolerance", "acc=x"], "'x' is not a number"),
        (["--out", str(tmp_path / "a-file" / "n")], "nightly folder"),
    ):
        code, out, err = run_cli(capsys, "nightly", "--dry-run", *args)
        assert code == 2 and fragment in out and "phase" not in out, out + err


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES_SECOND_HEAVY)
def test_ctrl_c_is_one_line_and_leaves_no_temporary_file(engine, tiny_folder, tmp_path):
    """SIGINT during training: exit 130 with one line, no traceback, no temporary file in any folder.
    (Lightning turned it into exit 1 with SIGINT ignored.)"""
    import signal
    import time

    command = [
        sys.executable,
        "-m",
        "harness",
        *tiny_run_args(tiny_folder, tmp_path, "--checkpoint-dir", str(tmp_path / "ckpt"), "--engine", engine),
    ]
    command[command.index("--epochs") + 1] = "50"
    # A suite started in the background (`cmd &`) inherits an ignored SIGINT, and Python then installs
    # no KeyboardInterrupt handler: give the child the default disposition a terminal would.
    child = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while not list((tmp_path / "ckpt").rglob("epoch_002.ckpt")):
        assert child.poll() is None and time.monotonic() < deadline, (
            "the run ended or stalled before its second checkpoint"
        )
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _out, err = child.communicate(timeout=120)
    assert child.returncode == 130 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == [
        line for line in err.splitlines() if line.startswith("interrupted:")
    ]
    assert list(tmp_path.rglob("*.tmp")) == []


LAUNCHER = """
import sys
from pathlib import Path

from harness import interrupts, launch
from harness.settings import RunSettings
from tests.conftest import tiny_spec

interrupts.install()  # as the pytest layer does
try:
    launch.run_in_subprocess(tiny_spec().with_recipe(epochs=50), RunSettings.from_json(Path(sys.argv[1]).read_text()))
except KeyboardInterrupt:
    print("launcher: interrupted")
    sys.exit(interrupts.exit_status())
"""


@pytest.mark.slow
@pytest.mark.heavy
def test_a_sigterm_to_the_launcher_goes_on_to_its_child_which_ends_as_a_terminated_run(tiny_folder, tmp_path):
    """The launcher's child (`python -m harness run`) was SIGKILLed when the launcher was
    interrupted, its queued uploads lost; a SIGTERM to the launcher never reached it."""
    import signal
    import time

    from harness.settings import RunSettings

    settings = RunSettings(
        results_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache",
        data_root=tiny_folder,
        checkpoint_dirs=(tmp_path / "ckpt",),
        wandb="off",
        mlflow="off",
    )
    (tmp_path / "settings.json").write_text(settings.to_json())
    command = [sys.executable, "-c", LAUNCHER, str(tmp_path / "settings.json")]
    launcher = subprocess.Popen(
        command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while not list((tmp_path / "ckpt").rglob("epoch_001.ckpt")):
        assert launcher.poll() is None and time.monotonic() < deadline, "the run ended or stalled before a checkpoint"
        time.sleep(0.05)
    launcher.send_signal(signal.SIGTERM)  # to the launcher alone, as Kubernetes signals a pod's first process
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, out[-3000:]
    assert "terminated (SIGTERM): nothing half-written was left" in out, out[-3000:]  # the child's last line
    assert out.rstrip().endswith("launcher: interrupted"), out[-3000:]


def test_the_weights_fit_check_leaves_the_runs_randomness_alone(tmp_path):
    """The check builds a model to read shapes; it must not draw from the RNG that initialises the
    replaced classifier (it did once, and moved the smoke FastViT result from 80.49 % to 82.93 %)."""
    path = tmp_path / f"{TINY_MODEL}.safetensors"
    models.save_weights(timm.create_model(TINY_MODEL, num_classes=3), path, {})
    torch.manual_seed(0)
    ours = models.create(TINY_MODEL, 5, "pretrained", tmp_path, allow_hub=False)
    torch.manual_seed(0)
    plain = timm.create_model(
        TINY_MODEL, pretrained=True, num_classes=5, pretrained_cfg_overlay=dict(file=str(path), num_classes=3)
    )
    assert torch.equal(ours.classifier.weight, plain.classifier.weight)


def test_resume_after_a_change_names_what_differs_before_the_decode_pass(tmp_path, capsys):
    """--resume after changing --lr or adding a class folder started from epoch 1 under a new run id,
    the old checkpoints unmentioned; with --run-id it said "written by another run (fingerprint ...)"."""
    folder = make_image_folder(tmp_path / "d", {"a": 12, "b": 12, "c": 12})
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")]
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path, *ckpt, "--epochs", "2", "--run-id", "mine"))
    assert code == 0, err
    code, out, err = run_cli(
        capsys, *tiny_run_args(folder, tmp_path, *ckpt, "--epochs", "2")
    )  # the same case under its own run id
    assert code == 0, err
    interrupted = next(line.removeprefix("record: ") for line in out.splitlines() if line.startswith("record: "))
    Path(interrupted).unlink()  # as if it had been stopped before its record: a run to continue
    code, out, err = run_cli(
        capsys, *tiny_run_args(folder, tmp_path, *ckpt, "--epochs", "2", "--seed", "7", "--resume")
    )
    assert code == 0 and "no checkpoint of" in out, err  # another seed is another run: started fresh, not refused
    code, out, err = run_cli(
        capsys, *tiny_run_args(folder, tmp_path, *ckpt, "--epochs", "2", "--lr", "3e-3", "--resume")
    )
    assert_one_line_refusal(
        code,
        out,
        err,
        "(epoch 2) was trained with other settings: lr 0.0006 (now 0.003)",
        "resume it with the values it was trained with, or drop --resume",
    )
    make_image_folder(tmp_path / "more", {"g": 6})
    (tmp_path / "more" / "g").rename(folder / "g")
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path, *ckpt, "--epochs", "2", "--resume"))
    assert_one_line_refusal(code, out, err, "data 36 image files (now 42); classes added: g")
    assert "decoding" not in out  # refused before the new data's decode pass
    code, out, err = run_cli(
        capsys, *tiny_run_args(folder, tmp_path, *ckpt, "--epochs", "2", "--resume", "--run-id", "mine", "--lr", "3e-3")
    )
    assert_one_line_refusal(
        code,
        out,
        err,
        f"--resume: {tmp_path / 'ckpt' / 'mine'}",
        "lr 0.0006 (now 0.003); data 36 image files (now 42); classes added: g",
    )
