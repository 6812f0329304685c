"""The night's plan: which benchmark cases run, and what each one asks of the cluster.

A case is one pytest node id of the night's suite (trainbench's `benchmarks/`, or the project's own
benchmarks given by `nightly --tests`). It runs whole on one node, so it asks for its
devices there: GPUs on a cluster that has them (with the CPUs that come with each GPU on the
poorest GPU node, for its loader workers), CPUs alone on a CPU-only cluster (one per training
process). Nothing here talks to Ray: the plan is data, so `--dry-run` and the tests read it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import NightlyError, PreflightError
from harness.hardware import Hardware, detect, loader_workers
from harness.settings import PYTEST_PREFIX, REPO_ROOT

_DEVICES = re.compile(r"-(\d+)dev\b")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Node:
    """One machine of the cluster as the scheduler sees it: its logical CPUs and GPUs."""

    name: str
    address: str
    cpus: float
    gpus: float

    def describe(self) -> str:
        return f"{self.name} ({self.address}): {self.cpus:g} CPU, {self.gpus:g} GPU"


@dataclass(frozen=True)
class Suite:
    """Where the night's benchmark cases live: `target` (a folder or file of pytest benchmarks) in `root`,
    the folder pytest runs in and its --rootdir, so that a case's node id names the same test on every node
    (the nodes hold the project at the same path, as they hold trainbench)."""

    root: Path = REPO_ROOT
    target: str = "benchmarks"


def suite_of(tests: Path | None, here: Path | None = None) -> Suite:
    """`--tests PATH`: the benchmarks at PATH in the project of the current folder `here`, its root; None: the
    `benchmarks/` folder there (trainbench's own, run from its checkout). A NightlyError when PATH is missing or
    outside `here`."""
    root = (here or Path.cwd()).resolve()
    path = (root / (tests or "benchmarks")).resolve()
    if not path.exists():
        raise NightlyError(
            f"--tests {tests}: no such file or folder as {path} (PATH is relative to the current folder); give the"
            " folder or file of your benchmarks"
            if tests
            else f"no benchmarks/ in the current folder {root}; run the nightly from your project, or give --tests PATH"
        )
    if not path.is_relative_to(root):
        raise NightlyError(
            f"--tests {tests} is outside the current folder {root}; run the nightly from the project that holds it"
        )
    return Suite(root, str(path.relative_to(root)))


@dataclass(frozen=True)
class Case:
    """One benchmark case and the resources its Ray task asks for; `root` is its suite's (Suite.root)."""

    node_id: str
    devices: int
    cpus: int
    gpus: int
    root: Path = REPO_ROOT

    @property
    def name(self) -> str:
        """A file-safe name: the readable id in brackets, after its test function."""
        test = self.node_id.split("::")[-1]
        return _UNSAFE.sub("_", test.replace("[", "-").rstrip("]"))

    @property
    def workers(self) -> int:
        """Loader workers per training process: the CPUs the task was given, shared by its
        processes (at most 16 each); none when it trains on CPUs (hardware.loader_workers)."""
        return loader_workers(
            self.devices, Hardware(gpus=self.gpus, gpu_name=None, gpu_bf16=False, cpu_cores=self.cpus)
        )

    def asks(self) -> str:
        return f"{self.gpus} GPU, {self.cpus} CPU" if self.gpus else f"{self.cpus} CPU"

    def fits(self, node: Node) -> bool:
        return node.cpus >= self.cpus and node.gpus >= self.gpus


def this_machine() -> list[Node]:
    """This machine as a one-node cluster (Ray embedded)."""
    hw = detect()
    return [Node("this machine", "local", float(hw.cpu_cores), float(hw.gpus))]


def devices_of(node_id: str) -> int:
    """Devices a case needs, from its readable id (`...-2dev-...`); cases without one need 1."""
    match = _DEVICES.search(node_id)
    return int(match.group(1)) if match else 1


def profile_for(nodes: Sequence[Node]) -> str:
    """The full profile where the cluster has GPUs; the smoke profile on CPUs alone."""
    return "full" if any(n.gpus for n in nodes) else "smoke"


def on_cpus(pytest_args: Sequence[str]) -> list[str]:
    """The pytest arguments with the `gpu`-marked cases left out (on a cluster without GPUs they
    would only start a pytest process each to be skipped); a user's own -m is kept and narrowed."""
    args = list(pytest_args)
    for i, arg in enumerate(args):
        if arg == "-m" and i + 1 < len(args):
            args[i + 1] = f"({args[i + 1]}) and not gpu"
            return args
        if arg.startswith("-m") and len(arg) > 2:
            args[i] = f"-m({arg[2:].lstrip('=')}) and not gpu"
            return args
    return [*args, "-m", "not gpu"]


def is_trainbench(pyproject: bytes | None) -> bool:
    """Whether a checkout whose pyproject.toml holds these bytes is trainbench itself (its own history, which bisect
    walks too), not a project that uses it."""
    return bool(pyproject) and re.search(rb'^name\s*=\s*"trainbench"', pyproject or b"", re.MULTILINE) is not None


def predates_plugin(root: Path) -> bool:
    """Whether the checkout at `root` is trainbench from before its pytest plugin shipped in the package (no
    `harness/pytest_plugin.py`, as bisect meets in older history)."""
    pyproject = root / "pyproject.toml"
    return (
        is_trainbench(pyproject.read_bytes() if pyproject.is_file() else None)
        and not (root / "harness" / "pytest_plugin.py").is_file()
    )


def spell(before_plugin: bool, *args: str, **values: object) -> list[str]:
    """`values` (`profile="smoke"`, `results_dir=...`) as options of trainbench's pytest plugin, `--trainbench-profile
    smoke`, then `args` (options given to pass through). A checkout from before the plugin spells them `--profile`
    in its own conftest (the pass-through options too), and the installed plugin, whose entry point would import
    that checkout's `harness`, is left out there (`-p no:trainbench`)."""
    if not before_plugin:
        return [*(a for name, v in values.items() for a in (PYTEST_PREFIX + name.replace("_", "-"), str(v))), *args]
    spelled = [a for name, v in values.items() for a in ("--" + name.replace("_", "-"), str(v))]
    return [*spelled, "-p", "no:trainbench", *(re.sub(f"^{PYTEST_PREFIX}", "--", arg) for arg in args)]


def spelled_options(root: Path, *args: str, **values: object) -> list[str]:
    """`spell` for the pytest sessions of the checkout at `root`."""
    return spell(predates_plugin(root), *args, **values)


def collect(
    profile: str,
    pytest_args: Sequence[str],
    root: Path = REPO_ROOT,
    python: str = sys.executable,
    target: str = "benchmarks",
) -> list[str]:
    """The benchmark node ids pytest would run (collection only) of `target` in the checkout at `root` with
    `python`, relative to `root`; none when nothing matches. A PreflightError, with pytest's last line, when
    pytest could not collect (an import error, an option its conftest does not know)."""
    out = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            target,
            "--rootdir",
            str(root),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *spelled_options(root, *pytest_args, profile=profile),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode not in (0, 5):  # 5: nothing collected, or every case deselected
        said = [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip()]
        raise PreflightError(
            f"pytest could not collect {target} in {root} (exit status {out.returncode}: {said[-1] if said else ''});"
            f" `python -m pytest {target} --collect-only` there says why"
        )
    return [line.strip() for line in out.stdout.splitlines() if "::" in line]


def plan(node_ids: Sequence[str], nodes: Sequence[Node], root: Path = REPO_ROOT) -> list[Case]:
    """One case per node id of the suite at `root`, the largest first (so many small ones never starve a
    multi-GPU case)."""
    gpu_nodes = [n for n in nodes if n.gpus]
    cpus_per_gpu = min(int(n.cpus // n.gpus) for n in gpu_nodes) if gpu_nodes else 0
    cases = []
    for node_id in node_ids:
        devices = devices_of(node_id)
        if gpu_nodes:
            cases.append(Case(node_id, devices, cpus=max(1, devices * cpus_per_gpu), gpus=devices, root=root))
        else:
            cases.append(Case(node_id, devices, cpus=devices, gpus=0, root=root))
    return sorted(cases, key=lambda c: (-c.gpus, -c.cpus))


def too_large(cases: Sequence[Case], nodes: Sequence[Node]) -> list[tuple[Case, str]]:
    """Each case that no node of the cluster can hold (Ray would wait for it forever), with why."""
    largest = max(nodes, key=lambda n: (n.gpus, n.cpus), default=None)
    return [
        (
            case,
            (
                f"asks for {case.asks()} on one node, and the largest node has {largest.cpus:g} CPU,"
                f" {largest.gpus:g} GPU"
                if largest
                else "the cluster has no live node"
            ),
        )
        for case in cases
        if not any(case.fits(n) for n in nodes)
    ]


def unplaceable(cases: Sequence[Case], nodes: Sequence[Node]) -> list[str]:
    """One line per case that no node can hold, with the fix: what `--strict` refuses the night for."""
    if not nodes:
        return ["the cluster has no live node"]
    return [
        f"{case.name} {why}; add a node that large or leave the case out with -k"
        for case, why in too_large(cases, nodes)
    ]
