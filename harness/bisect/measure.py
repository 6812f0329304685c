"""One measurement of bisect: a revision checked out in a worktree of its own, its case run there
through the pytest layer with N seeds, the records sent back.

It runs where it is called: in this process for a serial bisection, or as a Ray task on the node
Ray chose (`--parallel`; the repository must be at the same path there, as the nightly's checkout
is). Nodes share no filesystem, so it returns the records' bytes and the driver writes them. A case
that misses its thresholds still leaves its record, and is measured like any other; a revision
where the case ran nothing (a crash, an import error, a skip) returns no record, and its log says why.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bisect import environments, revisions
from harness.cluster.plan import spelled_options
from harness.errors import BisectError

LOG_CHARS = 20_000
RESULTS = "bisect-results"  # in the worktree, removed with it once its records are read


@dataclass
class Measurement:
    """What one run of the case at one revision sent back."""

    sha: str
    seeds: int
    returncode: int  # pytest's exit status (1 when the case missed its thresholds: its record still counts)
    seconds: float  # checkout, environment and pytest, start to end
    records: dict[str, bytes]  # "<run folder>/result.json" -> the record's bytes
    log: str  # pytest's output, its last LOG_CHARS characters
    python: str  # "current", or "built <hash>" (environments)
    interpreter: str  # its path
    node: str = "this machine"


def step_command(
    python: str, case: str, seeds: int, profile: str, results: Path, pytest_args: Sequence[str], tree: Path
) -> list[str]:
    """The pytest command of one measurement, run in the revision's worktree `tree`: only options every
    revision of the pytest layer knows, spelled as that revision spells them (`plan.spelled_options`)."""
    return [
        python,
        "-m",
        "pytest",
        "benchmarks",
        "-k",
        case,
        "-p",
        "no:cacheprovider",
        "-q",
        *spelled_options(tree, *pytest_args, profile=profile, seeds=seeds, results_dir=results),
    ]


def measure(
    repo: Path,
    sha: str,
    case: str,
    seeds: int,
    profile: str,
    pytest_args: Sequence[str],
    scratch: Path,
    cache_dir: Path,
    timeout_s: float | None = None,
) -> Measurement:
    """Run `case` at revision `sha` of `repo` with `seeds` seeds. The revision's own code is imported
    (its worktree first on PYTHONPATH), with the Python `environments.python_for` gives it. A revision
    whose environment cannot be built, or whose run outlasts `timeout_s`, returns no record, with why."""
    started = time.perf_counter()
    try:
        python, label = environments.python_for(revisions.dependency_files(repo, sha), cache_dir, repo)
    except BisectError as error:
        return Measurement(sha, seeds, -1, time.perf_counter() - started, {}, str(error), python="none", interpreter="")
    with revisions.worktree(repo, sha, Path(scratch) / "worktrees") as tree:
        results = tree / RESULTS
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])),
            "TRAINBENCH_WANDB": os.environ.get("TRAINBENCH_WANDB", "off"),
            "TRAINBENCH_MLFLOW": "off",
        }  # a measurement, not a tracked run
        try:
            done = subprocess.run(
                step_command(python, case, seeds, profile, results, pytest_args, tree),
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout_s,
            )
            returncode, log = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            output = (expired.stdout or b"") + (expired.stderr or b"")
            returncode, log = (
                -1,
                (output.decode(errors="replace") if isinstance(output, bytes) else output)
                + f"\nthe step ran past {timeout_s:.0f} s and was stopped",
            )
        records = (
            {path.relative_to(results).as_posix(): path.read_bytes() for path in sorted(results.glob("*/result.json"))}
            if returncode != -1
            else {}
        )
    return Measurement(
        sha,
        seeds,
        returncode,
        time.perf_counter() - started,
        records,
        log[-LOG_CHARS:],
        python=label,
        interpreter=python,
    )
