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
from harness.settings import PYTEST_PREFIX, REPO_ROOT

SEEDS = ("--seeds", f"{PYTEST_PREFIX}seeds")  # this repository's spelling (conftest.py) and the plugin's


def step_args(pytest_args: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """The night's pytest arguments for bisect's steps: -k and -m left out (bisect selects its one
    case), --seeds N taken out and returned (bisect's own seeds: at least 2, so the noise is there to read)."""
    kept, seeds, skip = [], 1, None
    for arg in pytest_args:
        if skip:
            if skip in SEEDS and arg.isdigit():
                seeds = int(arg)
            skip = None
        elif arg in ("-k", "-m", *SEEDS):
            skip = arg
        elif arg.startswith(tuple(f"{seeds_option}=" for seeds_option in SEEDS)):
            seeds = int(arg.split("=", 1)[1]) if arg.split("=", 1)[1].isdigit() else seeds
        elif not arg.startswith(("-k", "-m")):
            kept.append(arg)
    return tuple(kept), max(2, seeds)


def bisect_regressed(
    result: Comparison,
    baseline: Path,
    records: list[RunResult],
    out: Path,
    pytest_args: Sequence[str],
    profile: str,
    budget: Budget,
    tolerances: Mapping[str, Tolerance],
    max_seeds: int = 8,
) -> list[str]:
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
            lines.append(
                f"- {case}: not bisected: the baseline's records carry {len(commits)} git commits and tonight's"
                f" {'one' if tonight else 'none'}; bisect needs one on each side"
            )
            continue
        if commits[0] == tonight:
            changed = next(v.changed for v in result.regressions if v.case == key)
            lines.append(
                f"- {case}: baseline and tonight ran the same commit {tonight[:10]}, so no commit to blame; what"
                f" differs between them: {changed}"
            )
            continue
        folder = out / "bisect" / Case(case, 1, 1, 0).name
        args, seeds = step_args(pytest_args)
        request = bisect.Request(
            commits[0],
            tonight,
            case,
            args,
            REPO_ROOT,
            folder,
            profile,
            seeds=seeds,
            max_seeds=max(max_seeds, seeds),
            parallel=0,
            budget=budget,
            tolerances=dict(tolerances),
            metrics=tuple(regressed),
        )
        try:
            _, data = bisect.run(request)
        except HarnessError as error:
            lines.append(f"- {case}: not bisected ({error})")
            continue
        except Exception as error:  # the night's report is written whatever a bisection meets
            lines.append(f"- {case}: not bisected ({type(error).__name__}: {str(error).strip()[:300]})")
            continue
        relative = (folder / "bisect.md").relative_to(out).as_posix()
        lines.append(
            f"- {case}: {data['summary']} ([bisect.md]({relative}), {data['measurements']} measurement(s) in"
            f" {data['rounds']} round(s))"
        )
    return ["", "", "## Culprits (bisect between the baseline's commit and tonight's)", "", *lines]
