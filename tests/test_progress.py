"""What a user sees while a run trains: the start-up lines at once, per-batch bars on a terminal,
epoch lines elsewhere, the same in both engines, and no third-party banners."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import pytest

from harness.settings import REPO_ROOT
from tests.conftest import ENGINES_SECOND_HEAVY, TINY_MODEL

pytestmark = pytest.mark.slow  # every test here trains or starts a process (make test-fast leaves them out)


def run_args(folder, results, engine: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--recipe",
        "efficientnetv2",
        "--model",
        TINY_MODEL,
        "--data",
        str(folder),
        "--engine",
        engine,
        "--weights",
        "random",
        "--epochs",
        "2",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--wandb",
        "offline",
        "--results-dir",
        str(results),
    ]


def on_terminal(args: list[str], timeout_s: float = 240) -> tuple[int, str]:
    """Run `args` with stdout and stderr on a pseudo-terminal of 120 columns; (exit status, everything it wrote)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, cwd=REPO_ROOT)
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the follower side closed: the process is done
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=timeout_s), output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)


def lines(output: str) -> list[str]:
    return [line.strip() for line in output.replace("\r", "\n").splitlines() if line.strip()]


@pytest.mark.parametrize("engine", ENGINES_SECOND_HEAVY)
def test_terminal_shows_the_start_up_line_first_then_batch_bars_with_speed_and_eta(engine, tiny_folder, tmp_path):
    status, output = on_terminal(run_args(tiny_folder, tmp_path / "r", engine))
    assert status == 0, output[-3000:]
    shown = lines(output)
    assert shown[0].startswith(
        f"[trainbench] {TINY_MODEL}-tiny-{engine}-32true-1dev-random: the efficientnetv2 recipe (smoke profile),"
        f" {engine} on CPU"
    )
    assert any(
        line.startswith(
            "[trainbench] data: 48 train / 12 val / 12 test images, 6 classes; weights: random; batches loaded in the"
            " training process"
        )
        for line in shown[:3]
    )
    for phase in ("epoch 1/2 train", "epoch 1/2 val", "epoch 2/2 train", "test"):
        assert any(line.startswith(f"{phase}:") and "img/s]" in line and "<" in line for line in shown), (
            f"no {phase} bar with img/s and ETA"
        )
    assert [line.split(" train_loss=")[0] for line in shown if " train_loss=" in line] == ["epoch 1/2", "epoch 2/2"]
    for banner in ("GPU available", "LeafSpec", "wandb:", "Tip:", "does not have many workers"):
        assert banner not in output


@pytest.mark.heavy  # make test: Poutyne's lines off a terminal in tests/test_cli.py (a captured `run`)
def test_output_that_is_not_a_terminal_has_epoch_lines_and_no_bars(tiny_folder, tmp_path):
    done = subprocess.run(
        run_args(tiny_folder, tmp_path / "r", "lightning"), cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "%|" not in done.stdout + done.stderr and "img/s]" not in done.stderr
    epochs = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and epochs[1].startswith("epoch 2/2 train_loss=") and "img/s)" in epochs[1]
    test_line = next(line for line in done.stdout.splitlines() if " test_loss=" in line)
    assert (
        test_line.index("test_loss=") < test_line.index("test_acc=") < test_line.index("test_f1=")
    )  # one order in both engines
