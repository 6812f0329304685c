"""The nightly job: the benchmark matrix as Ray tasks, one folder per night, reports with trends, the gate.

On one machine Ray starts embedded and the cases spread over its GPUs (or CPUs); with `--address`
(or RAY_ADDRESS) the same plan spreads over every node of a running cluster. Each case is one Ray
task that runs it through the pytest layer (`tasks.run_case`), so assertions, skips and the
pytest-benchmark JSON stay the one source of truth. The driver writes what every task returns into
`<nights>/<night>/`, then the reports (with the trend over the last nights), the regression gate
against `--baseline`, and the exit status: 0 pass, 1 a failed case or a regression, 2 bad input.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.atomic import check_writable, written_atomically
from harness.bisect.search import Budget, parse_budget
from harness.cluster import session
from harness.cluster.plan import (
    Case,
    Node,
    Suite,
    collect,
    on_cpus,
    plan,
    profile_for,
    suite_of,
    this_machine,
    too_large,
    unplaceable,
)
from harness.errors import ClusterError, GateError, NightlyError, PreflightError
from harness.nightly import tasks
from harness.nightly.culprits import bisect_regressed
from harness.nightly.profiling import profile_regressed
from harness.nightly.tasks import CaseOutcome
from harness.results import mlflow_runs, report, trend
from harness.results.compare import Comparison, Tolerance, compare_paths, gated, parse_tolerances
from harness.results.observations import observations
from harness.results.record import load_readable
from harness.settings import PYTEST_PREFIX, REPO_ROOT

if TYPE_CHECKING:  # Ray is an optional dependency, imported where work spreads over machines
    from ray import ObjectRef

NIGHTS_DIR = Path("results") / "nightly"  # under the suite's root: trainbench's, or the project's of --tests
MANIFEST = "nightly.json"
PYTEST_EXITS = {1: "a test failed", 2: "interrupted", 3: "pytest's internal error", 4: "a usage error"}
OOM_HINT = " (the OOM killer sends this when memory runs out)"
# Where results and checkpoints go is the nightly's to decide, per night; given to pytest they would be lost or shared.
OWN_OPTIONS = {
    "--benchmark-json": "--out",
    "--junitxml": "--out",
    "--junit-xml": "--out",
    **{
        spelling + name: ours
        for name, ours in {
            "mlflow": "--mlflow",
            "results-dir": "--out",
            "gcs-bucket": "--gcs-bucket",
            "resume": "--gcs-bucket",
        }.items()
        for spelling in ("--", PYTEST_PREFIX)  # the plugin's, and this repository's (conftest.py)
    },
}


def check_pytest_args(pytest_args: Sequence[str]) -> None:
    for arg in pytest_args:
        option = arg.split("=", 1)[0]
        if option in OWN_OPTIONS:
            raise NightlyError(
                f"{option} after -- is the nightly's to set; give {OWN_OPTIONS[option]} to nightly itself (before --), "
                "which keeps each night's results and checkpoints apart"
            )


def new_night_id(out: Path) -> str:
    """`<night>-<8 hex>`: this invocation's own name for its scratch folders and bucket prefix. A night
    of the same name in another `--out` (or run again) gets another, so its cases never resume from,
    nor report, checkpoints another night left in the bucket; Ray's retries within the night share it."""
    return f"{out.name}-{secrets.token_hex(4)}"


def print_plan(cases: Sequence[Case], nodes: Sequence[Node], profile: str, where: str) -> None:
    print(f"nightly: {len(cases)} case(s), {profile} profile, on {where}")
    for node in nodes:
        print(f"  node {node.describe()}")
    for case in cases:
        print(f"  case {case.name}: {case.asks()}")


def write_outcome(outcome: CaseOutcome, out: Path) -> None:
    """A task's files into the night folder (atomically: a reader never sees half a record)."""
    for relative, content in sorted(outcome.files.items()):
        with written_atomically(out / relative) as tmp:
            tmp.write_bytes(content)
    with written_atomically(out / "logs" / f"{outcome.case}.log") as tmp:
        tmp.write_text(outcome.log)


def case_status(outcome: CaseOutcome) -> str:
    """passed, skipped (ran nothing, with pytest's reason in the row), nothing collected, or failed."""
    if outcome.returncode == 0 and outcome.skipped:
        return "skipped"
    return {0: "passed", 5: "nothing collected"}.get(outcome.returncode, "failed")


def failure(outcome: CaseOutcome) -> str | None:
    """Why a failed case failed, in words: the signal that killed its pytest process, or pytest's
    exit status; None unless it failed."""
    if case_status(outcome) != "failed":
        return None
    if outcome.returncode < 0:  # subprocess's way of saying a signal ended the process
        try:
            name = signal.Signals(-outcome.returncode).name
        except ValueError:
            name = f"signal {-outcome.returncode}"
        return f"killed by {name}{OOM_HINT if -outcome.returncode == signal.SIGKILL else ''}"
    meaning = PYTEST_EXITS.get(outcome.returncode)
    return f"failed (pytest exit status {outcome.returncode}{f': {meaning}' if meaning else ''})"


def gather(pending: dict[ObjectRef[CaseOutcome], Case], out: Path) -> list[dict[str, Any]]:
    """Wait for every task; write each outcome as it arrives; one manifest row per case."""
    ray = session.ray_module()
    rows: list[dict[str, Any]] = []
    while pending:
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        case = pending.pop(ready)
        try:
            outcome: CaseOutcome = ray.get(ready)
        except Exception as error:  # its node or worker died RETRIES + 1 times
            print(
                f"nightly: {case.name} LOST: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            )
            rows.append(
                {
                    "case": case.name,
                    "node_id": case.node_id,
                    "status": "lost",
                    "error": f"{type(error).__name__}: {error}"[:2000],
                }
            )
            continue
        write_outcome(outcome, out)
        status, why = case_status(outcome), failure(outcome)
        said = why or (f"{status} ({outcome.skipped})" if status == "skipped" else status)
        took = f"{'after' if outcome.returncode < 0 else 'in'} {outcome.seconds:.1f} s"
        print(f"nightly: {case.name} {said} on node {outcome.node} ({outcome.address}) {took}")
        row = {k: v for k, v in asdict(outcome).items() if k not in ("files", "log")}
        rows.append({**row, "node_id": case.node_id, "status": status, "failure": why, "asked": case.asks()})
    return rows


@dataclass(frozen=True)
class Night:
    """What one nightly invocation was asked to do."""

    out: Path
    pytest_args: list[str]
    baseline: Path | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=lambda: parse_tolerances(None))
    address: str | None = None  # a running cluster's HEAD:PORT; None: Ray embedded on this machine
    bucket: str | None = None
    nights: int = trend.NIGHTS
    strict: bool = False  # refuse the night when a case fits no node (else it is skipped, with why)
    bisect: Budget | None = None  # after a regression, bisect each regressed case within this budget; None: don't
    mlflow: str = "off"  # where the driver imports the night's records: auto (<nights>/mlflow.db), off, or a URI
    bisect_max_seeds: int = 8  # a bisect step within the noise band is measured again, up to this many seeds
    suite: Suite = field(default_factory=Suite)  # where the cases live: trainbench's benchmarks/ or --tests PATH


def run(
    out: Path | None,
    baseline: Path | None,
    tolerances: list[str] | None,
    pytest_args: list[str],
    dry_run: bool = False,
    address: str | None = None,
    bucket: str | None = None,
    nights: int = trend.NIGHTS,
    strict: bool = False,
    bisect: str | None = None,
    mlflow: str = "off",
    bisect_max_seeds: int = 8,
    tests: Path | None = None,
) -> int:
    """`bisect`: None (no bisection), "" (no budget) or a budget, `12` steps or `30m`. `tests`: the project's own
    benchmarks (a folder or file under the current folder, `--tests`); None: `benchmarks/` there."""
    started = time.perf_counter()
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:  # everything the end of the night needs is checked before its first case
        check_pytest_args(pytest_args)
        budget = None if bisect is None else parse_budget(bisect)
        suite = suite_of(tests)
        night = Night(
            out or suite.root / NIGHTS_DIR / date.today().isoformat(),
            pytest_args,
            baseline,
            parse_tolerances(tolerances),
            address,
            bucket,
            nights,
            strict,
            budget,
            mlflow,
            bisect_max_seeds,
            suite,
        )
        if budget is not None and suite.root != REPO_ROOT:
            raise NightlyError(
                f"--bisect walks trainbench's own history and cannot yet bisect a project's ({suite.root}); leave out"
                " --bisect, and run `trainbench bisect` from the project"
            )
        mlflow_runs.check(mlflow, night.out.parent)
        if budget is not None and baseline is None:
            raise NightlyError("--bisect needs --baseline: it bisects between the baseline's commit and tonight's")
        if baseline is not None:
            found = observations(baseline)
            if not found:
                raise GateError(f"--baseline {baseline} holds no runs; give last night's results folder")
            gated(night.tolerances, None, (found,))  # a misspelt --tolerance metric, before the night trains
        check_writable(night.out, "nightly folder", "--out", make=not dry_run)  # a dry run writes nothing
        if not dry_run:
            session.ray_module()
        nodes = session.connect(address) if address else this_machine()
    except (GateError, PreflightError, NightlyError, ClusterError, ValueError) as error:
        print(f"nightly: {error}")
        return 2
    try:
        return _run(night, nodes, dry_run, started)
    finally:
        session.disconnect()


def _run(night: Night, nodes: list[Node], dry_run: bool, started: float) -> int:
    profile = profile_for(nodes)
    pytest_args = night.pytest_args if profile == "full" else on_cpus(night.pytest_args)
    suite = night.suite
    try:
        node_ids = collect(profile, pytest_args, root=suite.root, target=suite.target)
    except PreflightError as error:
        print(f"nightly: {error}")
        return 2
    cases = plan(node_ids, nodes, root=suite.root)
    if not cases:
        print(
            f"nightly: no benchmark case in {suite.target} matches the pytest arguments"
            f" {' '.join(night.pytest_args) or '(none)'} in the {profile} profile; nothing ran (check -k / -m)"
        )
        return 2
    if profile == "smoke":
        print("nightly: no GPU in the cluster; running the smoke profile on CPUs instead (cases marked gpu left out)")
    where = f"the Ray cluster at {night.address}" if night.address else "this machine (Ray embedded)"
    print_plan(cases, nodes, profile, where)
    if night.strict or not nodes:
        problems = unplaceable(cases, nodes)
        for problem in problems:
            print(f"nightly: {problem}")
        if problems:
            return 2
    held_back = too_large(cases, nodes)
    for case, why in held_back:
        print(f"nightly: skipped {case.name}: {why} (--strict refuses the night instead)")
    cases = [case for case in cases if case.name not in {c.name for c, _ in held_back}]
    if held_back:
        print(f"nightly: {len(held_back)} case(s) skipped, no node holds them; {len(cases)} to run")
    if not cases:
        print("nightly: no case fits a node of this cluster; add a larger node or select cases that fit with -k")
        return 2
    if dry_run:
        return 0
    if not night.address:
        session.start_embedded(nodes[0])
    night_id = new_night_id(night.out)
    if night.bucket:
        print(f"nightly: checkpoints under {night.bucket.rstrip('/')}/{night_id}/ (this night's own prefix)")
    pending = {tasks.submit(case, profile, pytest_args, night_id, night.bucket): case for case in cases}
    rows = gather(pending, night.out) + [
        {
            "case": case.name,
            "node_id": case.node_id,
            "status": "skipped",
            "skipped": why,
            "asked": case.asks(),
            "node": None,
        }
        for case, why in held_back
    ]
    wall_s = time.perf_counter() - started
    manifest = {
        "night": night.out.name,
        "night_id": night_id,
        "address": night.address or "embedded",
        "profile": profile,
        "pytest_args": night.pytest_args,
        "nodes": [asdict(n) for n in nodes],
        "wall_s": round(wall_s, 1),
        "cases": rows,
    }
    with written_atomically(night.out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    failed = any(row["status"] not in ("passed", "skipped", "nothing collected") for row in rows)
    return finish(night, failed, wall_s, profile)


def tonight_lines(result: Comparison, trends: Sequence[trend.CaseTrend]) -> list[str]:
    """Per regressed case and metric: a step that began on an earlier night (its size),
    or a single-night outlier so far."""
    by_case = {t.case: t for t in trends}
    lines = [
        f"- {v.case} {v.metric}: {by_case[v.case].tonight(v.metric)}" for v in result.regressions if v.case in by_case
    ]
    return ["", "", f"## Tonight against the last {len(trends[0].nights)} night(s)", "", *lines] if lines else []


def track(night: Night, out: Path) -> None:
    """The night's records into MLflow, imported here on the driver: the tasks log nothing there, so
    no two processes on two nodes ever write one SQLite store at once."""
    uri = mlflow_runs.tracking_uri(night.mlflow, out.parent)
    if uri is None:
        return
    try:
        added, present, _ = mlflow_runs.import_records(out / "records", uri)
    except Exception as error:  # a view of the records: failing it never fails the night
        print(f"nightly: the records could not be imported into MLflow at {uri}: {type(error).__name__}: {error}"[:600])
        return
    print(f"nightly: {len(added)} run(s) imported into MLflow at {uri} ({len(present)} already there)")


def finish(night: Night, failed: bool, wall_s: float, profile: str = "smoke") -> int:
    """The reports (with the trend over the last nights), the gate, the exit status."""
    out = night.out
    records, problems = load_readable(out / "records")
    for problem in problems:
        print(f"nightly: skipped {problem}")
    trends = trend.of_nights(out.parent, night.nights, night.baseline) if records else []
    track(night, out)
    if records:
        report.write(records, out / "records", trend=trends)
    if night.baseline is not None:
        try:
            result = compare_paths(night.baseline, out / "records", night.tolerances)
        except GateError as error:
            print(f"nightly: the regression gate could not decide: {error}")
            return 1
        added = tonight_lines(result, trends) + profile_regressed(
            result, records, out
        )  # step or outlier; the slow cases' traces
        if night.bisect is not None:
            added += bisect_regressed(
                result,
                night.baseline,
                records,
                out,
                night.pytest_args,
                profile,
                night.bisect,
                night.tolerances,
                night.bisect_max_seeds,
            )
        (out / "regression.md").write_text(result.render() + "\n".join(added) + ("\n" if added else ""))
        print(result.render() + "\n".join(added))
        failed |= not result.passed
    print(f"nightly: {'FAILED' if failed else 'passed'} in {wall_s:.0f} s; results in {out}")
    return 1 if failed else 0
