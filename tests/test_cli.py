"""`python -m harness run`: help, a real run on an ImageFolder, and bad input as exit 2 with a message."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.settings import REPO_ROOT
from tests.conftest import harness_cli
from tests.test_fail_fast import run_cli


def harness(*args, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True)


def test_help_documents_every_option():
    out = harness("run", "--help").stdout
    for option in (
        "--model",
        "--data",
        "--engine",
        "--weights",
        "--epochs",
        "--image-size",
        "--batch-size",
        "--optimizer",
        "--lr",
        "--weight-decay",
        "--precision",
        "--devices",
        "--seed",
        "--results-dir",
        "--num-nodes",
    ):
        assert option in out


@pytest.mark.slow
def test_run_on_any_image_folder_prints_metrics_and_writes_the_record(tiny_folder, tmp_path):
    """In this process (the entry point's own exit status and a terminal's bars are checked in processes of their
    own: test_bad_input_exits_2_with_the_problem_named, tests/test_progress.py)."""
    done = harness_cli(
        "run",
        "--model",
        "test_efficientnet",
        "--data",
        str(tiny_folder),
        "--engine",
        "poutyne",
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
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--weight-decay",
        "0",
        "--precision",
        "32-true",
        "--devices",
        "1",
        "--seed",
        "3",
        "--results-dir",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stderr
    assert "test_acc=" in done.stdout
    # not a terminal (captured): an epoch line, no batch bars
    assert "%|" not in done.stdout + done.stderr and "img/s]" not in done.stderr
    (epoch,) = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert epoch.startswith("epoch 1/1 train_loss=") and "img/s)" in epoch, epoch
    (path,) = [line.removeprefix("record: ") for line in done.stdout.splitlines() if line.startswith("record: ")]
    assert path.startswith(str(tmp_path / "r" / "test_efficientnet-tiny-poutyne-32true-1dev-random-"))
    record = json.loads(Path(path).read_text())
    assert record["spec"]["recipe"]["optimizer"] == "sgd" and record["spec"]["recipe"]["seed"] == 3


def test_bad_input_exits_2_with_the_problem_named(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "run", "--data", str(tmp_path / "missing"), "--weights", "random", "--results-dir", str(tmp_path)
    )  # in this process: same code path
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code, _, err = run_cli(
        capsys,
        "run",
        "--model",
        "no_such_net",
        "--data",
        "synthetic",
        "--weights",
        "random",
        "--results-dir",
        str(tmp_path),
    )
    assert code == 2 and "unknown timm model 'no_such_net'" in err
    done = harness("run", "--precision", "fp8")  # the entry point's own exit status, once through a real process
    assert done.returncode == 2 and "invalid choice: 'fp8'" in done.stderr


@pytest.mark.slow
def test_seeds_run_one_record_per_seed_and_print_the_spread(tiny_folder, tmp_path, capsys):
    args = (
        "run",
        "--recipe",
        "efficientnetv2",
        "--model",
        "test_efficientnet",
        "--data",
        str(tiny_folder),
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
        "--seed",
        "3",
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "r"),
    )
    code, out, err = run_cli(
        capsys, *args, "--seeds", "2"
    )  # in this process: the same code path as `python -m harness`
    assert code == 0, err
    seeds = sorted(json.loads(p.read_text())["spec"]["recipe"]["seed"] for p in (tmp_path / "r").glob("*/result.json"))
    assert seeds == [3, 4] and "### Cases over seeds" in out and "(n=2)" in out
    code, _, err = run_cli(capsys, *args, "--seeds", "2", "--run-id", "mine")
    assert code == 2 and "--run-id names one run, --seeds 2 makes 2" in err
    assert harness(*args, "--seeds", "0").returncode == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["compare", "--help"],
        ["report", "--help"],
        ["recipes"],
        ["compare", "{empty}", "{empty}"],
        ["report", "{empty}"],
    ],
    ids=" ".join,
)
def test_commands_that_train_nothing_import_neither_torch_nor_lightning(command, tmp_path):
    args = [a.format(empty=tmp_path) for a in command]
    probe = (
        f"import runpy, sys\nsys.argv = ['harness', *{args!r}]\ntry:\n    runpy.run_module('harness',"
        " run_name='__main__')\nexcept SystemExit:\n    pass\nprint('heavy:', sorted(m for m in sys.modules if"
        " m.split('.')[0] in ('torch', 'lightning', 'timm', 'albumentations')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "heavy: []" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
