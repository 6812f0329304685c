"""`bisect`: from "it regressed" to "this commit".

Between a good and a bad revision of the repository that holds the harness and its recipes, each
step checks a revision out in a git worktree of its own and runs one benchmark case there through
the pytest layer (`measure`), in this environment or one built for the revision's dependency files
(`environments`). Both ends are measured first, in this session (never a stored number); the steps are judged by the
regression gate against the good end (`search`). Serially in this process, or K revisions per
round as Ray tasks (`--parallel K`, on Ray embedded here or the cluster at `--address`), so n
commits take about log_(K+1)(n) rounds. `report` writes bisect.md and bisect.json.

Exit status: 0 an answer (a culprit, or no (clear) regression between the ends), 1 no answer (an end where
the case ran nothing, or the budget spent first), 2 bad input.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from harness.bisect import environments, report, revisions
from harness.bisect.measure import Measurement, measure
from harness.bisect.search import ANSWERS, Bisection, Budget, MeasureRound
from harness.cluster import plan, session
from harness.errors import BisectError
from harness.results.compare import DEFAULT_TOLERANCES, Tolerance
from harness.settings import PYTEST_PREFIX, REPO_ROOT, default_cache_dir

if TYPE_CHECKING:  # Ray is an optional dependency, imported where work spreads over machines
    from ray import ObjectRef

OWN_OPTIONS = (
    "-k",
    "--benchmark-json",
    "--junitxml",
    "--junit-xml",
    *(
        spelling + name
        for name in ("seeds", "results-dir", "profile", "baseline")
        for spelling in ("--", PYTEST_PREFIX)
    ),
)


@dataclass(frozen=True)
class Request:
    """What one bisection was asked to do."""

    good: str
    bad: str
    case: str  # a pytest -k expression that selects one benchmark case
    pytest_args: tuple[str, ...] = ()
    repo: Path = REPO_ROOT
    out: Path | None = None  # default: REPO/results/bisect/<case>-<good>-<bad>-<time>
    profile: str = "smoke"
    seeds: int = 2
    max_seeds: int = 8
    parallel: int = 1  # steps per round; 0: as many as the cluster holds at once
    address: str | None = None  # a running Ray cluster; None: Ray embedded when parallel > 1
    budget: Budget = field(default_factory=Budget)
    tolerances: dict[str, Tolerance] | None = None
    metrics: tuple[str, ...] | None = None


def check_pytest_args(pytest_args: Sequence[str]) -> None:
    for arg in pytest_args:
        option = arg.split("=", 1)[0]
        if option in OWN_OPTIONS or re.fullmatch(r"-k.+", option):
            raise BisectError(
                f"{option} after -- is bisect's to set; give it to bisect itself (-k, --seeds, --out, --profile)"
                " before --"
            )


def select_case(request: Request, bad: str, scratch: Path) -> str:
    """The one benchmark node id `-k` selects at the bad revision (a BisectError when none or several)."""
    python, _ = environments.python_for(
        revisions.dependency_files(request.repo, bad), default_cache_dir(), request.repo
    )
    with revisions.worktree(request.repo, bad, scratch / "worktrees") as tree:
        found = plan.collect(request.profile, ["-k", request.case, *request.pytest_args], root=tree, python=python)
    return one_case(found, request, bad)


def one_case(found: Sequence[str], request: Request, bad: str) -> str:
    """The one node id of those `-k` collected at the bad revision (a BisectError when none or several)."""
    if not found:
        raise BisectError(
            f"-k {request.case!r} selects no benchmark case at {bad[:10]} in the {request.profile} profile; `python -m"
            f" pytest benchmarks --collect-only -q -k {request.case!r}` lists what it selects (check the options"
            " after --)"
        )
    if len(found) > 1:
        shown = ", ".join(node.split("::")[-1] for node in found[:4]) + (
            f", ... ({len(found) - 4} more)" if len(found) > 4 else ""
        )
        raise BisectError(
            f"-k {request.case!r} selects {len(found)} benchmark cases at {bad[:10]} ({shown}); bisect follows one:"
            " narrow -k to one case id"
        )
    return found[0]


def serial(request: Request, scratch: Path) -> MeasureRound:
    """Each step in this process, one after another."""

    def measure_round(batch: Sequence[tuple[revisions.Commit, int]]) -> list[Measurement]:
        return [
            measure(
                request.repo,
                c.sha,
                request.case,
                seeds,
                request.profile,
                request.pytest_args,
                scratch,
                default_cache_dir(),
                step_timeout(request),
            )
            for c, seeds in batch
        ]

    return measure_round


def on_ray(request: Request, node_id: str, scratch: Path) -> tuple[MeasureRound, int]:
    """Each step a Ray task asking for the case's devices (`cluster.plan`), a round's steps at once;
    and how many steps a round holds (`parallel`, or with 0 as many as the cluster's nodes hold at
    once). Joins the cluster at `address`, starts Ray here, or uses the session already open (the nightly's)."""
    ray = session.ray_module()
    address = request.address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        nodes, where = session.live_nodes(), "the open Ray session"
    else:
        where = f"the Ray cluster at {address}" if address else "this machine (Ray embedded)"
        nodes = session.connect(address) if address else plan.this_machine()
        if not address:
            session.start_embedded(nodes[0])
    (case,) = plan.plan([node_id], nodes)
    for _, why in plan.too_large([case], nodes):
        raise BisectError(
            f"the case {why}; bisect it on a larger cluster, or without --parallel on a machine that holds it"
        )
    parallel = request.parallel or max(
        1,
        sum(
            min(int(n.cpus // case.cpus) if case.cpus else 1 << 30, int(n.gpus // case.gpus) if case.gpus else 1 << 30)
            for n in nodes
        ),
    )
    print(f"bisect: {parallel} step(s) per round as Ray tasks on {where}, each asking for {case.asks()}")
    task = ray.remote(measure_on_node)

    def measure_round(batch: Sequence[tuple[revisions.Commit, int]]) -> list[Measurement]:
        refs = [
            task.options(num_cpus=case.cpus, num_gpus=case.gpus, name=f"bisect-{c.short}").remote(
                request.repo,
                c.sha,
                request.case,
                seeds,
                request.profile,
                request.pytest_args,
                scratch,
                step_timeout(request),
            )
            for c, seeds in batch
        ]
        return [_gathered(ray, ref, commit.sha, seeds) for ref, (commit, seeds) in zip(refs, batch, strict=True)]

    return measure_round, parallel


def _gathered(ray: ModuleType, ref: ObjectRef[Measurement], sha: str, seeds: int) -> Measurement:
    """A task's measurement; a task that failed (its node lost,
    its worker killed) is a step without a record, saying why."""
    try:
        measured: Measurement = ray.get(ref)
        return measured
    except Exception as error:
        return Measurement(
            sha,
            seeds,
            -1,
            0.0,
            {},
            f"the Ray task failed: {type(error).__name__}: {error}"[:2000],
            python="none",
            interpreter="",
            node="lost",
        )


def step_timeout(request: Request) -> float | None:
    """A step outlasting the whole minutes budget is stopped (a revision that hangs)."""
    return request.budget.minutes * 60 if request.budget.minutes else None


def measure_on_node(
    repo: Path,
    sha: str,
    case: str,
    seeds: int,
    profile: str,
    pytest_args: Sequence[str],
    scratch: Path,
    timeout_s: float | None,
) -> Measurement:
    """A Ray task's body: `measure` on the node Ray chose, which it names."""
    found = measure(repo, sha, case, seeds, profile, pytest_args, scratch, default_cache_dir(), timeout_s)
    found.node = session.ray_module().get_runtime_context().get_node_id()[:8]
    return found


def run(request: Request) -> tuple[int, dict[str, Any]]:
    """Bisect; (exit status, bisect.json's content). BisectError (and the gate's and Ray's errors) for bad input."""
    if request.parallel < 0 or request.seeds < 1 or request.max_seeds < request.seeds:
        raise BisectError("--parallel and --seeds take 1 or more, and --max-seeds at least --seeds")
    check_pytest_args(request.pytest_args)
    good = revisions.resolve(request.repo, request.good, "--good")
    bad = revisions.resolve(request.repo, request.bad, "--bad")
    commits = [revisions.commit(request.repo, good), *revisions.between(request.repo, good, bad)]
    print(
        f"bisect: {len(commits) - 1} commit(s) from {good[:10]} to {bad[:10]}; finding the case -k {request.case!r}"
        f" selects at {bad[:10]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="trainbench-bisect-") as scratch_dir:
        scratch = Path(scratch_dir)
        node_id = select_case(request, bad, scratch)
        name = node_id.split("[")[-1].rstrip("]") if "[" in node_id else node_id.split("::")[-1]
        out = (
            request.out
            or request.repo
            / "results"
            / "bisect"
            / f"{plan.Case(node_id, 1, 1, 0).name}-{good[:8]}-{bad[:8]}-{datetime.now():%Y%m%dT%H%M%S}"
        )
        print(f"bisect: {name}; results in {out}", flush=True)
        use_ray = request.parallel != 1 or request.address
        joined = use_ray and not session.ray_module().is_initialized()  # else the caller's session, left open
        try:
            measure_round, parallel = on_ray(request, node_id, scratch) if use_ray else (serial(request, scratch), 1)
            tolerances = request.tolerances or DEFAULT_TOLERANCES
            bisection = Bisection(
                commits,
                request.case,
                name,
                measure_round,
                out,
                tolerances,
                request.metrics,
                request.seeds,
                request.max_seeds,
                parallel,
                request.budget,
            )
            outcome = bisection.run()
        finally:
            if joined:
                session.disconnect()
    lo_hi = (
        bisection.interval() if outcome.startswith("culprit") or outcome == "budget spent" else (0, len(commits) - 1)
    )
    changes = revisions.dependency_changes(
        revisions.dependency_files(request.repo, commits[lo_hi[0]].sha),
        revisions.dependency_files(request.repo, commits[lo_hi[1]].sha),
    )
    data = report.write(bisection, out, request.repo, request.profile, list(request.pytest_args), changes)
    print(data["summary"])
    print(
        f"bisect: {data['measurements']} measurement(s) in {data['rounds']} round(s), {data['wall_s']:.0f} s;"
        f" {out / 'bisect.md'}"
    )
    return (0 if outcome in ANSWERS else 1), data
