"""The nightly's Ray tasks: one per benchmark case.

A task runs its case through the pytest layer on whatever node Ray chose, with the GPUs Ray
assigned (Ray sets CUDA_VISIBLE_DEVICES in the task), into a scratch folder on that node. Nodes
share no filesystem, so the task returns what the night keeps (the run folders without their
checkpoints, the pytest-benchmark JSON, the pytest output) and the driver writes it into one
folder. A task whose node dies is run again elsewhere by Ray (`RETRIES`); a case that fails its
assertions returns normally with pytest's exit status, so it is a failure, never a retry. With a
bucket, every case runs with `--resume` under the night's prefix: a retried case continues from
its last checkpoint there, and a first attempt finds none and starts at epoch 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from harness.cluster.plan import Case
from harness.cluster.session import live_nodes, ray_module
from harness.settings import PYTEST_PREFIX, SOURCE_PATH

if TYPE_CHECKING:  # Ray is an optional dependency, imported where work spreads over machines
    from ray import ObjectRef

RETRIES = 3  # runs of a task after its node or worker process died
SCRATCH = "trainbench-nightly"  # under the node's temporary folder: the night's run folders and local checkpoints
JUNIT = "junit.xml"  # pytest's report of the case, in its scratch folder: what was skipped and why
REPORT_FILES = frozenset(
    {"summary.md", "summary.csv", "cases.csv", "report.html"}
)  # the driver writes them for the whole night


@dataclass
class CaseOutcome:
    """What a case's task sends back to the driver."""

    case: str
    node: str  # the Ray node id it ran on (short)
    address: str
    returncode: int  # pytest's exit status; negative: killed by that signal
    seconds: float  # the pytest process, start to end
    files: dict[str, bytes]  # relative to the night folder: records/<run id>/..., benchmark/<case>.json
    log: str
    skipped: str | None = None  # why pytest skipped the case (exit status 0, no record), else None


def submit(
    case: Case, profile: str, pytest_args: Sequence[str], night: str, bucket: str | None
) -> ObjectRef[CaseOutcome]:
    """Start `case` as a Ray task asking for its CPUs and GPUs; returns its object ref."""
    task = (
        ray_module()
        .remote(run_case)
        .options(num_cpus=case.cpus, num_gpus=case.gpus, max_retries=RETRIES, retry_exceptions=False, name=case.name)
    )
    ref: ObjectRef[CaseOutcome] = task.remote(case, profile, list(pytest_args), night, bucket)
    return ref


def case_command(
    case: Case, scratch: Path, profile: str, pytest_args: Sequence[str], night: str, bucket: str | None
) -> list[str]:
    """The pytest command of one case on its node."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        case.node_id,
        "--rootdir",
        str(case.root),
        f"{PYTEST_PREFIX}profile",
        profile,
        f"{PYTEST_PREFIX}results-dir",
        str(scratch / "records"),
        f"--benchmark-json={scratch / 'benchmark.json'}",
        f"--junitxml={scratch / JUNIT}",
        "-p",
        "no:cacheprovider",
        f"{PYTEST_PREFIX}mlflow",
        "off",
        *pytest_args,
    ]
    if bucket:
        command += [f"{PYTEST_PREFIX}gcs-bucket", f"{bucket.rstrip('/')}/{night}", f"{PYTEST_PREFIX}resume"]
    return command


def run_case(case: Case, profile: str, pytest_args: list[str], night: str, bucket: str | None) -> CaseOutcome:
    """The task body, on the node Ray chose: run the case, gather what the night keeps, say where it ran."""
    outcome = run_here(case, profile, pytest_args, night, bucket)
    node = ray_module().get_runtime_context().get_node_id()
    address = next((n.address for n in live_nodes() if node.startswith(n.name)), "?")
    return replace(outcome, node=node[:8], address=address)


def run_here(case: Case, profile: str, pytest_args: list[str], night: str, bucket: str | None) -> CaseOutcome:
    """Run the case on this machine in a scratch folder of its own; what the night keeps of it (no node named yet)."""
    scratch = scratch_folder(night, case.name)
    if not case.root.is_dir():  # a node of a cluster without the project: pytest could not even start there
        said = (
            f"trainbench nightly: this node has no folder {case.root}; every node needs the project at the path the"
            " nightly was started from\n"
        )
        return CaseOutcome(case.name, "", "", 4, 0.0, {}, said)
    path = [str(case.root), *SOURCE_PATH, os.environ.get("PYTHONPATH")]  # the project's modules, then trainbench's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(filter(None, path)))}
    env.setdefault("TRAINBENCH_WORKERS", str(case.workers))  # from the CPUs Ray gave this task, not the whole node's
    log = scratch / "pytest.log"
    started = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(
            case_command(case, scratch, profile, pytest_args, night, bucket),
            cwd=case.root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - started
    files, text = kept_files(scratch, case.name), log.read_text(errors="replace")
    return CaseOutcome(case.name, "", "", done.returncode, seconds, files, text, skip_reason(scratch / JUNIT))


def scratch_folder(night: str, name: str) -> Path:
    """A new, empty folder for this run of the case, under `$TMPDIR/trainbench-nightly/<night>/<case>/`:
    never one an earlier run wrote into (a night of the same name in another --out, a retry on this
    node), so no record or benchmark JSON of an earlier run can be returned as this run's."""
    parent = Path(tempfile.gettempdir()) / SCRATCH / night / name
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=parent))


def skip_reason(junit: Path) -> str | None:
    """Why pytest skipped every test of a case, read from its JUnit XML; None when one ran (or
    there is no readable report). pytest exits 0 on a skip, so the exit status alone would call a
    case that ran nothing "passed"."""
    try:
        tests = list(ElementTree.parse(junit).getroot().iter("testcase"))
    except (OSError, ElementTree.ParseError):
        return None
    skips = [test.find("skipped") for test in tests]
    if not tests or any(skip is None or skip.get("type") == "pytest.xfail" for skip in skips):  # an xfail ran
        return None
    first = skips[0]
    assert first is not None  # every test was skipped (above)
    return first.get("message") or "skipped"


def kept_files(scratch: Path, name: str) -> dict[str, bytes]:
    """The run folders (records, history, curves, wandb runs) without checkpoints, which stay on the
    node and in the bucket; and the case's pytest-benchmark JSON."""
    files = {}
    records = scratch / "records"
    for path in sorted(records.rglob("*")) if records.is_dir() else ():
        relative = path.relative_to(records)
        if (
            path.is_file()
            and "checkpoints" not in relative.parts
            and not (len(relative.parts) == 1 and relative.name in REPORT_FILES)
        ):
            files[f"records/{relative.as_posix()}"] = path.read_bytes()
    benchmark = scratch / "benchmark.json"
    if benchmark.is_file():
        files[f"benchmark/{name}.json"] = benchmark.read_bytes()
    return files
