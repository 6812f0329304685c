"""The nightly job: the full matrix on every GPU present, reports, and the regression gate.

Independent one-GPU cases are spread over the GPUs, one pytest process per CUDA_VISIBLE_DEVICES
slot running in parallel (not pytest-xdist: pytest-benchmark turns itself off under it); then the
multi-GPU cases run on all GPUs. Each process writes its records and pytest-benchmark JSON into one
folder; then come the reports and the comparison with the baseline. The exit status says pass (0)
or failure/regression (1). Without a GPU it says so and runs the smoke profile instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from harness.hardware import detect
from harness.results import report
from harness.preflight import PreflightError, check_writable
from harness.results.compare import GateError, compare_paths, observations, parse_tolerances
from harness.results.record import load_readable
from harness.settings import REPO_ROOT

_DEVICES = re.compile(r"-(\d+)dev\b")


@dataclass(frozen=True)
class Shard:
    """One pytest process: the GPUs it sees and the test node ids it runs."""

    gpus: tuple[int, ...]
    node_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return "gpu" + "-".join(map(str, self.gpus)) if self.gpus else "cpu"


def devices_of(node_id: str) -> int:
    """Devices a case needs, from its readable id (`...-2dev-...`); cases without one need 1."""
    match = _DEVICES.search(node_id)
    return int(match.group(1)) if match else 1


def plan(node_ids: list[str], gpus: int) -> list[list[Shard]]:
    """Phases of shards: first the one-GPU cases round-robin over the GPUs (in parallel), then the
    multi-GPU cases, each phase of shards running at the same time."""
    single = [n for n in node_ids if devices_of(n) == 1]
    multi = [n for n in node_ids if devices_of(n) > 1]
    phases = []
    parallel = [Shard((g,), tuple(single[g::gpus])) for g in range(gpus) if single[g::gpus]]
    if parallel:
        phases.append(parallel)
    if multi:
        phases.append([Shard(tuple(range(gpus)), tuple(multi))])
    return phases


def collect(profile: str, pytest_args: list[str]) -> list[str]:
    """The benchmark node ids pytest would run (collection only)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "--profile", profile, *pytest_args],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return [line.strip() for line in out.stdout.splitlines() if "::" in line]


def shard_command(shard: Shard, out: Path, profile: str, pytest_args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *shard.node_ids, "--profile", profile, "--results-dir", str(out / "records"),
        f"--benchmark-json={out / f'benchmark-{shard.name}.json'}", *pytest_args,
    ]  # fmt: skip


def run(out: Path | None, baseline: Path | None, tolerances: list[str] | None, pytest_args: list[str], dry_run: bool = False) -> int:
    hw = detect()
    out = out or REPO_ROOT / "results" / f"nightly-{date.today().isoformat()}"
    try:  # everything the end of the night needs is checked before its first case
        parsed_tolerances = parse_tolerances(tolerances)
        if baseline is not None and not observations(baseline):
            raise GateError(f"--baseline {baseline} holds no runs; give last night's results folder")
        check_writable(out, "nightly folder", "--out")
    except (GateError, PreflightError, ValueError) as error:
        print(f"nightly: {error}")
        return 2
    profile = "full" if hw.gpus else "smoke"
    cases = collect(profile, pytest_args)
    if not cases:
        print(f"nightly: no benchmark case matches the pytest arguments {' '.join(pytest_args) or '(none)'} in the {profile} profile; nothing ran (check -k / -m)")
        return 2
    if hw.gpus:
        phases = plan(cases, hw.gpus)
        print(f"nightly: {hw.gpus} x {hw.gpu_name}, full profile, {sum(len(s.node_ids) for p in phases for s in p)} cases in {len(phases)} phase(s)")
    else:
        phases = [[Shard((), ("benchmarks",))]]
        print("nightly: no GPU on this machine; running the smoke profile instead")
    failed = False
    for number, phase in enumerate(phases, 1):
        for shard in phase:
            print(f"phase {number} {shard.name}: CUDA_VISIBLE_DEVICES={','.join(map(str, shard.gpus))} " + " ".join(shard_command(shard, out, profile, pytest_args)))
        if dry_run:
            continue
        procs = []
        for shard in phase:
            env = {**os.environ}
            if shard.gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, shard.gpus))
            procs.append(subprocess.Popen(shard_command(shard, out, profile, pytest_args), cwd=REPO_ROOT, env=env))
        failed |= any(p.wait() not in (0, 5) for p in procs)  # 5: nothing collected in a shard
    if dry_run:
        return 0
    records, problems = load_readable(out / "records")
    for problem in problems:
        print(f"nightly: skipped {problem}")
    if records:
        report.write(records, out / "records")
    if baseline is not None:
        try:
            result = compare_paths(baseline, out / "records", parsed_tolerances)
        except GateError as error:
            print(f"nightly: the regression gate could not decide: {error}")
            return 1
        (out / "regression.md").write_text(result.render())
        print(result.render())
        failed |= not result.passed
    print(f"nightly: {'FAILED' if failed else 'passed'}; results in {out}")
    return 1 if failed else 0
