"""After a night that regressed: the commit that did it (`nightly --bisect`).

For each regressed case, bisect runs between the baseline's commit and tonight's (records carry
`git_commit`) on the night's own Ray session, as many steps per round as its nodes hold, judged on
the metrics that regressed tonight, within `--bisect-budget`. Each bisection writes
`bisect/<case>/bisect.md` in the night's folder, and regression.md names the culprit. Where the
baseline and tonight ran the same commit there is nothing to bisect: the report says what differs
between the two sides' environments (package versions, device) instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import bisect
from harness.bisect.search import Budget
from harness.cluster.plan import Case
from harness.errors import HarnessError
from harness.results.compare import Comparison, Tolerance
from harness.results.observations import observations
from harness.results.record import RunResult
from harness.settings import REPO_ROOT


def without_selection(pytest_args: Sequence[str]) -> tuple[str, ...]:
    """The night's pytest arguments without -k and -m (bisect selects its one case itself)."""
    kept, skip = [], False
    for arg in pytest_args:
        if skip:
            skip = False
        elif arg in ("-k", "-m"):
            skip = True
        elif not (arg.startswith("-k") or arg.startswith("-m")):
            kept.append(arg)
    return tuple(kept)


def bisect_regressed(result: Comparison, baseline: Path, records: list[RunResult], out: Path, pytest_args: Sequence[str], profile: str,
                     budget: Budget, tolerances: Mapping[str, Tolerance]) -> list[str]:  # fmt: skip
    """The lines regression.md adds (none without a regression)."""
    metrics: dict[str, list[str]] = {}
    for verdict in result.regressions:
        metrics.setdefault(verdict.case, []).append(verdict.metric)
    if not metrics:
        return []
    before = observations(baseline)
    lines = []
    for key, regressed in metrics.items():
        record = next((r for r in records if r.gate_key == key), None)
        tonight = record.environment.get("git_commit") if record else None
        commits = sorted({run.context["git_commit"] for run in before.get(key, []) if run.context.get("git_commit")})
        case = record.case_id if record else key.split("@")[0]
        if not tonight or len(commits) != 1:
            lines.append(f"- {case}: not bisected: the baseline's records carry {len(commits)} git commits and tonight's {'one' if tonight else 'none'}; bisect needs one on each side")
            continue
        if commits[0] == tonight:
            changed = next(v.changed for v in result.regressions if v.case == key)
            lines.append(f"- {case}: baseline and tonight ran the same commit {tonight[:10]}, so no commit to blame; what differs between them: {changed}")
            continue
        folder = out / "bisect" / Case(case, 1, 1, 0).name
        request = bisect.Request(commits[0], tonight, case, without_selection(pytest_args), REPO_ROOT, folder, profile, parallel=0, budget=budget, tolerances=dict(tolerances), metrics=tuple(regressed))
        try:
            _, data = bisect.run(request)
        except HarnessError as error:
            lines.append(f"- {case}: not bisected ({error})")
            continue
        relative = (folder / "bisect.md").relative_to(out).as_posix()
        lines.append(f"- {case}: {data['summary']} ([bisect.md]({relative}), {data['measurements']} measurement(s) in {data['rounds']} round(s))")
    return ["", "", "## Culprits (bisect between the baseline's commit and tonight's)", "", *lines]
