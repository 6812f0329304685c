"""The Ray side of the nightly: connecting to a cluster (or starting one here), what its nodes
have, and one Ray task per benchmark case.

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
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from harness.errors import ClusterError
from harness.nightly.plan import Case, Node
from harness.settings import REPO_ROOT

RETRIES = 3  # runs of a task after its node or worker process died
SCRATCH = "trainbench-nightly"  # under the node's temporary folder: the night's run folders and local checkpoints
JUNIT = "junit.xml"  # pytest's report of the case, in its scratch folder: what was skipped and why
REPORT_FILES = frozenset({"summary.md", "summary.csv", "cases.csv", "report.html"})  # the driver writes them for the whole night
CONNECT_TIMEOUT_S = 10.0


@dataclass
class CaseOutcome:
    """What a case's task sends back to the driver."""

    case: str
    node: str  # the Ray node id it ran on (short)
    address: str
    returncode: int  # pytest's exit status
    seconds: float  # the pytest process, start to end
    files: dict[str, bytes]  # relative to the night folder: records/<run id>/..., benchmark/<case>.json
    log: str
    skipped: str | None = None  # why pytest skipped the case (exit status 0, no record), else None


def ray_module():
    """Ray, imported only for the nightly (an optional dependency: `pip install 'trainbench[nightly]'`)."""
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed, and the nightly runs its cases as Ray tasks; pip install 'trainbench[nightly]' (or ray)") from None
    return ray


def _reachable(address: str) -> None:
    """A refused or silent HEAD:PORT is one line within seconds, not Ray's long retries."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address!r} is not HOST:PORT (the head's GCS port, 6379 by default, as `ray start --head` prints)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ClusterError(f"no Ray cluster answers at {address} ({error}); start one with `ray start --head`, or drop --address (and RAY_ADDRESS) to run on this machine") from None


def connect(address: str) -> list[Node]:
    """Join the running cluster at `address`; return its live nodes."""
    ray = ray_module()
    _reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except Exception as error:  # a wrong or missing auth token, another Ray version, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterError(f"could not join the Ray cluster at {address}: {reason}; the nightly's Ray and Python must match the cluster's, with its token in RAY_AUTH_TOKEN if it uses one") from None
    return live_nodes()


def start_embedded(machine: Node) -> None:
    """Ray on this machine alone, with its CPUs and GPUs; it stops with `disconnect`."""
    ray_module().init(num_cpus=int(machine.cpus), num_gpus=int(machine.gpus), include_dashboard=False, log_to_driver=False, logging_level="ERROR")


def disconnect() -> None:
    """Leave the cluster, if joined; an embedded Ray stops with its processes."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def live_nodes() -> list[Node]:
    ray = ray_module()
    return [
        Node(n["NodeID"][:8], n["NodeManagerAddress"], n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
        for n in ray.nodes()
        if n["Alive"]
    ]


def submit(case: Case, profile: str, pytest_args: Sequence[str], night: str, bucket: str | None):
    """Start `case` as a Ray task asking for its CPUs and GPUs; returns its object ref."""
    ray = ray_module()
    task = ray.remote(run_case).options(num_cpus=case.cpus, num_gpus=case.gpus, max_retries=RETRIES, retry_exceptions=False, name=case.name)
    return task.remote(case, profile, list(pytest_args), night, bucket)


def case_command(case: Case, scratch: Path, profile: str, pytest_args: Sequence[str], night: str, bucket: str | None) -> list[str]:
    """The pytest command of one case on its node."""
    command = [
        sys.executable, "-m", "pytest", case.node_id, "--profile", profile, "--results-dir", str(scratch / "records"),
        f"--benchmark-json={scratch / 'benchmark.json'}", f"--junitxml={scratch / JUNIT}", "-p", "no:cacheprovider", *pytest_args,
    ]  # fmt: skip
    if bucket:
        command += ["--gcs-bucket", f"{bucket.rstrip('/')}/{night}", "--resume"]
    return command


def run_case(case: Case, profile: str, pytest_args: list[str], night: str, bucket: str | None) -> CaseOutcome:
    """The task body, on the node Ray chose: run the case, gather what the night keeps."""
    ray = ray_module()
    scratch = Path(tempfile.gettempdir()) / SCRATCH / night / case.name
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("TRAINBENCH_WORKERS", str(case.workers))  # from the CPUs Ray gave this task, not the whole node's
    log = scratch / "pytest.log"
    started = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(case_command(case, scratch, profile, pytest_args, night, bucket), cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - started
    context = ray.get_runtime_context()
    node = context.get_node_id()
    address = next((n.address for n in live_nodes() if node.startswith(n.name)), "?")
    return CaseOutcome(case.name, node[:8], address, done.returncode, seconds, kept_files(scratch, case.name), log.read_text(errors="replace"), skip_reason(scratch / JUNIT))


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
    return skips[0].get("message") or "skipped"


def kept_files(scratch: Path, name: str) -> dict[str, bytes]:
    """The run folders (records, history, curves, wandb runs) without checkpoints, which stay on the
    node and in the bucket; and the case's pytest-benchmark JSON."""
    files = {}
    records = scratch / "records"
    for path in sorted(records.rglob("*")) if records.is_dir() else ():
        relative = path.relative_to(records)
        if path.is_file() and "checkpoints" not in relative.parts and not (len(relative.parts) == 1 and relative.name in REPORT_FILES):
            files[f"records/{relative.as_posix()}"] = path.read_bytes()
    benchmark = scratch / "benchmark.json"
    if benchmark.is_file():
        files[f"benchmark/{name}.json"] = benchmark.read_bytes()
    return files
