"""SIGTERM, the way SLURM, Kubernetes and spot instances stop a job, taken as the first Ctrl-C.

`install` makes SIGTERM raise KeyboardInterrupt in the main thread, so a terminated run goes the
interrupt's one way: its MLflow run ends KILLED, the checkpoint being written is finished, the
uploads still queued are waited for, at most `TERM_WAIT_S` (those schedulers send SIGKILL 30 s
after SIGTERM by default), and what is still not in the bucket is named and written into
`.not-uploaded.json` for the next run. The process exits 143 (128 + 15) after a SIGTERM and 130
after a Ctrl-C. A second SIGTERM changes nothing (a second Ctrl-C leaves the uploads local at
once); a launcher passes a SIGTERM on to its children (`pass_on`). Torch-free: `python -m harness`
and the pytest layer install it first.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

# the uploads' wait after a SIGTERM, inside the 30 s SLURM's KillWait and Kubernetes' grace period give
TERM_WAIT_S = 20.0
_received: list[int] = []  # the signals taken as an interrupt in this process, in order


def install() -> None:
    """SIGTERM raises KeyboardInterrupt from now on (signal handlers live in the main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # a SIGTERM again (a scheduler signalling every process, a launcher passing it on): the wait goes on
    if terminated():
        return
    _received.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def pass_on(processes: Sequence[subprocess.Popen[Any]]) -> None:
    """After a SIGTERM here: the same to each child still running, so each ends the way this process does."""
    if terminated():
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)


def terminated() -> bool:
    """Whether the interrupt this process is handling came as a SIGTERM."""
    return signal.SIGTERM in _received


def what() -> str:
    """How the messages after an interrupt begin."""
    return "terminated (SIGTERM)" if terminated() else "interrupted"


def exit_status() -> int:
    """The conventional status: 128 + the signal's number."""
    return 128 + (signal.SIGTERM if terminated() else signal.SIGINT)
