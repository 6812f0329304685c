"""Running a spec in its own process tree, for callers that cannot host DDP themselves.

Lightning's `ddp` strategy re-launches `sys.argv` in every child; inside pytest that would re-run
pytest. So multi-process cases go through the harness's own entry point: the caller writes the
spec and settings to files and starts `python -m harness run --spec ... --settings ...`, whose
argv Lightning can safely re-launch. Datasets and weights are prepared once in the caller first,
so ranks never race to generate them. A failing child fails the caller with its output shown; a
diverged run's record comes back like any other, and its status says so. A SIGTERM to the caller
goes on to the children, which end the way a terminated run does (`harness.interrupts`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness import interrupts, runner
from harness.artifacts import tracking
from harness.errors import LaunchError
from harness.identity import RunIdentity
from harness.results.record import RESULT_FILE, RunResult
from harness.settings import SOURCE_PATH, RunSettings
from harness.spec import BenchmarkSpec

OUTPUT_TAIL = 6000


def needs_own_processes(spec: BenchmarkSpec) -> bool:
    return spec.processes > 1


def command(spec_file: Path, settings_file: Path, run_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--spec",
        str(spec_file),
        "--settings",
        str(settings_file),
        "--run-id",
        run_id,
    ]


@contextmanager
def _prepared(
    spec: BenchmarkSpec, settings: RunSettings, identity: RunIdentity, run_id: str | None
) -> Iterator[tuple[Path, Path, str, dict[str, str]]]:
    """Dataset and weights made once here (`identity`: `runner.prepare`'s), the run id decided once here
    and its attempt held here while the children run (every rank and node writes under it), then
    (spec file, settings file, run id, child environment)."""
    if identity.weights["kind"] == "hub":
        runner.obtain_model(
            spec, settings, num_classes=2
        )  # fills the hub cache before the ranks start; this head is thrown away
    with tempfile.TemporaryDirectory(prefix="trainbench-launch-") as tmp, ExitStack() as claim:
        spec_file, settings_file = Path(tmp) / "spec.json", Path(tmp) / "settings.json"
        spec_file.write_text(spec.to_json())
        settings_file.write_text(settings.to_json())
        child_env = {
            **os.environ,
            # the project's folder first (the children also start in it, as the parent's session did): its
            # extensions (`package.module:attribute`) resolve to the same code in every child as in the parent
            # (`extensions.importable`), before trainbench's own folder in a source checkout
            "PYTHONPATH": os.pathsep.join(
                dict.fromkeys(filter(None, [str(settings.project_dir), *SOURCE_PATH, os.environ.get("PYTHONPATH")]))
            ),
        }
        yield (
            spec_file,
            settings_file,
            run_id or claim.enter_context(identity.claimed_attempt(settings.results_dir)),
            child_env,
        )


def run_in_subprocess(spec: BenchmarkSpec, settings: RunSettings, run_id: str | None = None) -> RunResult:
    """Run `spec` through `python -m harness run` and return the record rank 0 wrote."""
    started = time.time()
    identity = runner.prepare(spec, settings, run_id)
    if (done := runner.finished_record(spec, settings, identity, run_id)) is not None:
        return done  # under --resume, as for one process: the children would train a new attempt
    with _prepared(spec, settings, identity, run_id) as (spec_file, settings_file, run_id, child_env):
        child = subprocess.Popen(
            command(spec_file, settings_file, run_id),
            cwd=settings.project_dir,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = _streamed(child)
    tail = output[-OUTPUT_TAIL:]
    failure = f"{spec.id}: `python -m harness run` exited with {child.returncode}; end of its output:\n{tail}"
    return _record(settings, run_id, started, None if child.returncode == 0 else failure)


def _streamed(child: subprocess.Popen) -> str:
    """The child's output, each line shown here as it comes (a notebook's cell shows the run's progress as it
    trains: off a terminal, the children print a line per epoch and phase), and all of it once it ended.
    Interrupted, as `_outputs`."""
    assert child.stdout is not None  # started with stdout=PIPE
    lines = []
    try:
        for line in child.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        child.wait()
    except KeyboardInterrupt:
        interrupts.pass_on([child])
        print(child.communicate()[0][-OUTPUT_TAIL:])
        raise
    return "".join(lines)


def _outputs(children: list[subprocess.Popen]) -> list[str]:
    """Each child's output once it ended. Interrupted here, the children are waited for, not killed:
    they see to their uploads or name them (`harness.interrupts`), and their output is shown; then
    the interrupt goes on. A SIGTERM is passed on to them; a Ctrl-C at a terminal reached them already."""
    try:
        return [child.communicate()[0] for child in children]
    except KeyboardInterrupt:
        interrupts.pass_on(children)
        for child in children:
            print(child.communicate()[0][-OUTPUT_TAIL:])
        raise


def _record(settings: RunSettings, run_id: str, started: float, failure: str | None) -> RunResult:
    """The record the children wrote; a failure is a LaunchError unless the record is a diverged run's
    (`python -m harness run` exits 1 after writing it, and the caller judges it by its status) and
    was written by these children (an older record under a reused --run-id is not theirs)."""
    path = settings.results_dir / run_id / RESULT_FILE
    written_now = path.is_file() and path.stat().st_mtime >= started
    if failure is not None and not (written_now and not RunResult.load(path).ok):
        raise LaunchError(failure)
    return RunResult.load(path)


def torchrun_command(
    spec_file: Path,
    settings_file: Path,
    run_id: str,
    *,
    nodes: int,
    node_rank: int,
    procs_per_node: int,
    master_port: int,
    rendezvous_timeout_s: float,
    master_addr: str = "127.0.0.1",
) -> list[str]:
    """One node's `torchrun` line; Lightning detects torchrun's environment and does not re-launch.
    torchrun's own rendezvous of the nodes gives up after `rendezvous_timeout_s` too."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        f"--nproc-per-node={procs_per_node}",
        f"--node-rank={node_rank}",
        f"--master-addr={master_addr}",
        f"--master-port={master_port}",
        f"--rdzv-conf=timeout={max(1, round(rendezvous_timeout_s))}",
        "-m",
        "harness",
        "run",
        "--spec",
        str(spec_file),
        "--settings",
        str(settings_file),
        "--run-id",
        run_id,
    ]


def run_nodes_on_loopback(
    spec: BenchmarkSpec, settings: RunSettings, master_port: int, run_id: str | None = None
) -> RunResult:
    """All `spec.num_nodes` nodes as separate torchrun launches on this machine (proves the multi-node path)."""
    started = time.time()
    identity = runner.prepare(spec, settings, run_id)
    if (done := runner.finished_record(spec, settings, identity, run_id)) is not None:
        return done
    with _prepared(spec, settings, identity, run_id) as (spec_file, settings_file, run_id, child_env):
        nodes = [
            subprocess.Popen(
                torchrun_command(
                    spec_file,
                    settings_file,
                    run_id,
                    nodes=spec.num_nodes,
                    node_rank=rank,
                    procs_per_node=spec.devices,
                    master_port=master_port,
                    rendezvous_timeout_s=settings.rendezvous_timeout_s,
                ),
                cwd=settings.project_dir,
                env=child_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for rank in range(spec.num_nodes)
        ]
        outputs = _outputs(nodes)
    failed = [(rank, node.returncode) for rank, node in enumerate(nodes) if node.returncode != 0]
    return _record(
        settings,
        run_id,
        started,
        (
            f"{spec.id}: node(s) {failed} failed; end of their output:\n" + "\n".join(o[-OUTPUT_TAIL:] for o in outputs)
            if failed
            else None
        ),
    )


def run(spec: BenchmarkSpec, settings: RunSettings, run_id: str | None = None) -> RunResult:
    """In this process when it can host the run, else in a child process tree."""
    if needs_own_processes(spec):
        return run_in_subprocess(spec, tracking.settle(settings), run_id)
    record = runner.run(spec, settings, run_id)
    assert record is not None  # a single process is always rank 0
    return record
