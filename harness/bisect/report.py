"""bisect.md and bisect.json: the outcome, every step's figures and verdict, the dependency changes
between the culprit and the last good commit, and the command that reproduces the culprit's run."""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

from harness.atomic import written_atomically
from harness.bisect import revisions
from harness.bisect.search import BAD, GOOD, Bisection, Step
from harness.cluster.plan import spell
from harness.results.record import json_safe
from harness.results.table import Table

SHOWN = {
    "test_acc": "acc",
    "test_f1": "F1",
    "test_top3": "top-3",
    "test_top5": "top-5",
    "test_loss": "loss",
    "steady_images_per_s": "images/s",
    "joules_per_image": "J/image",
}


def predates_plugin(repo: Path, sha: str) -> bool:
    """`plan.predates_plugin` of revision `sha` of `repo`, read from git."""
    has = [
        revisions.file_at(repo, sha, name) is not None for name in ("harness/__init__.py", "harness/pytest_plugin.py")
    ]
    return has == [True, False]


def reproduce(bisection: Bisection, step: Step, repo: Path, profile: str, pytest_args: list[str]) -> str:
    """One shell line: the revision in a worktree of its own, its case through pytest as bisect ran it."""
    python = step.measurement.interpreter  # the interpreter it ran with: this environment's, or the layer built for it
    folder = f"/tmp/trainbench-{step.commit.short}"
    pytest = [
        python,
        "-m",
        "pytest",
        "benchmarks",
        "-k",
        bisection.case,
        *spell(predates_plugin(repo, step.commit.sha), *pytest_args, profile=profile, seeds=step.seeds),
    ]
    return (
        f"git -C {shlex.quote(str(repo))} worktree add --detach {folder} {step.commit.sha} && cd {folder} &&"
        f" PYTHONPATH=. {shlex.join(pytest)}"
    )


def summary(bisection: Bisection) -> str:
    """The one-paragraph answer."""
    b = bisection
    if b.outcome == "no regression":
        again = (
            " (the good end measured again after the bad one, pooled: the first difference was the machine's drift)"
            if b.good.pooled
            else ""
        )
        return (
            f"No regression between the ends: {b.commits[-1].short} is within the gate's tolerance and seed noise of"
            f" {b.commits[0].short}{again}; no culprit named."
        )
    if b.outcome == "no clear regression":
        bad = b.steps[b.bad_index]
        assert bad.comparison is not None  # the bad end was compared with the good one (no unmeasured end here)
        moved = "; ".join(
            f"{SHOWN.get(v.metric, v.metric)} {_shown(v.baseline)} -> {_shown(v.current)} (allowed {_shown(v.allowed)})"
            for v in bad.comparison.regressions
        )
        bound = (
            f"the seed bound, --max-seeds {b.max_seeds}"
            if bad.seeds >= b.max_seeds
            else f"the budget, {b.budget.describe()}"
        )
        return (
            f"No clear regression between the ends: after {bad.seeds} seeds each ({bound}), {moved} is still within one"
            " standard error of the gate's threshold, where seed noise alone decides the verdict; no culprit named."
            " More seeds (--max-seeds, --budget) or a wider tolerance decide it."
        )
    if b.outcome == "unmeasured end":
        ends = [s for s in (b.steps.get(0), b.steps.get(b.bad_index)) if s and not s.runs]
        why = "; ".join(f"{s.commit.short}: {s.why_unmeasured()}" for s in ends) or "the ends share no gated metric"
        return f"Could not measure an end, so nothing was bisected ({why})."
    lo, hi = b.interval()
    first, last = b.commits[hi], b.commits[lo]
    if b.outcome == "budget spent":
        return (
            f"Budget spent ({b.budget.describe()}): the first bad commit is one of {hi - lo} between {last.short}"
            f" (good) and {first.short} (bad)."
        )
    lines = [f'First bad commit: {first.sha} "{first.subject}" ({first.date}); last good: {last.sha} "{last.subject}".']
    if b.outcome == "culprit among unmeasured":
        lines.append(
            "Commits between them where the case ran nothing could be the culprit too: "
            + ", ".join(b.commits[i].short for i in b.unmeasured_between())
            + "."
        )
    return " ".join(lines)


def steps_table(bisection: Bisection) -> Table:
    metrics = [m for m in SHOWN if any(m in s.figures() for s in bisection.steps.values())]
    rows = []
    for index in sorted(bisection.steps):
        step = bisection.steps[index]
        figures = step.figures()
        role = "good end" if index == 0 else "bad end" if index == bisection.bad_index else ""
        verdict = step.verdict + (
            " (within noise at the seed bound)" if step.within_noise and step.verdict in (GOOD, BAD) and index else ""
        )
        rows.append(
            (
                str(step.round),
                f"{index}/{bisection.bad_index}",
                step.commit.short,
                step.commit.subject[:60],
                role,
                str(step.seeds),
                *(_shown(figures.get(m)) for m in metrics),
                verdict,
                f"{step.measurement.seconds:.0f}",
                step.measurement.node,
                step.measurement.python,
            )
        )
    columns = (
        "round",
        "position",
        "commit",
        "subject",
        "end",
        "seeds",
        *(SHOWN[m] for m in metrics),
        "verdict",
        "s",
        "node",
        "python",
    )
    return Table("Steps", columns, tuple(rows))


def _shown(value: float | None) -> str:
    return "" if value is None else "nan" if not math.isfinite(value) else f"{value:.4g}"


def as_dict(
    bisection: Bisection, repo: Path, profile: str, pytest_args: list[str], dependency_changes: list[str]
) -> dict[str, Any]:
    b = bisection
    found = b.outcome in ("culprit", "culprit among unmeasured", "budget spent")
    bounds = b.interval() if found else None  # (last good, first bad)
    culprit = b.steps.get(bounds[1]) if bounds is not None else None
    data: dict[str, Any] = json_safe(
        {
            "repo": str(repo),
            "case": b.label,
            "k": b.case,
            "profile": profile,
            "pytest_args": pytest_args,
            "good": b.commits[0].to_dict(),
            "bad": b.commits[-1].to_dict(),
            "commits_in_range": b.bad_index,
            "parallel": b.parallel,
            "seeds": b.seeds,
            "max_seeds": b.max_seeds,
            "budget": b.budget.describe(),
            "outcome": b.outcome,
            "summary": summary(b),
            "regressed_between_ends": b.regressed,
            "within_noise_at_ends": b.not_followed,
            "first_bad": b.commits[bounds[1]].to_dict() if bounds is not None and b.outcome != "budget spent" else None,
            "last_good": b.commits[bounds[0]].to_dict() if bounds is not None and b.outcome != "budget spent" else None,
            "remaining": (
                [b.commits[i].sha for i in range(bounds[0] + 1, bounds[1] + 1)]
                if bounds is not None and b.outcome == "budget spent"  # spent: found, so bounds were taken
                else []
            ),
            "unmeasured_between": [b.commits[i].sha for i in b.unmeasured_between()] if found else [],
            "not_monotonic": [{"bad": b.commits[i].sha, "later_good": b.commits[j].sha} for i, j in b.not_monotonic()],
            "dependency_changes": dependency_changes,
            "reproduce": (
                reproduce(b, culprit, repo, profile, pytest_args) if culprit and b.outcome != "budget spent" else None
            ),
            "rounds": b.rounds,
            "measurements": b.measurements(),
            "wall_s": round(time.perf_counter() - b.started, 1),
            "steps": [
                {
                    "index": i,
                    **s.commit.to_dict(),
                    "round": s.round,
                    "seeds": s.seeds,
                    "measured": s.measured,
                    "verdict": s.verdict,
                    "within_noise": s.within_noise,
                    "figures": s.figures(),
                    "regressions": [v.metric for v in s.comparison.regressions] if s.comparison else [],
                    "seconds": round(s.measurement.seconds, 1),
                    "node": s.measurement.node,
                    "python": s.measurement.python,
                    "interpreter": s.measurement.interpreter,
                    "pytest_exit": s.measurement.returncode,
                }
                for i, s in sorted(b.steps.items())
            ],
        }
    )
    return data


def markdown(bisection: Bisection, data: dict[str, Any]) -> str:
    b = bisection
    lines = [
        f"# bisect {b.label}",
        "",
        (
            f"Good {b.commits[0].short} to bad {b.commits[-1].short}: {b.bad_index} commit(s); {b.parallel} step(s) per"
            f" round, {b.seeds} seed(s) per step (up to {b.max_seeds} in the noise band)."
        ),
        "",
        f"**{data['summary']}**",
        "",
    ]
    bad_end = b.steps.get(b.bad_index)
    if bad_end and bad_end.comparison:
        lines += [
            "The ends, by the regression gate (good end as baseline):",
            "",
            bad_end.comparison.table().markdown(),
            "",
        ]
    if b.regressed:
        lines += [
            f"The steps are judged on {', '.join(b.regressed)}"
            + (
                f"; within the noise band at the ends, not followed: {', '.join(b.not_followed)}."
                if b.not_followed
                else "."
            ),
            "",
        ]
    if data["first_bad"]:
        lines += [
            f"Files changed by {data['first_bad']['sha'][:10]}: " + (", ".join(data["first_bad"]["files"]) or "none"),
            "",
        ]
    if b.not_monotonic():
        pairs = ", ".join(f"{b.commits[j].short} good after {b.commits[i].short} bad" for i, j in b.not_monotonic())
        lines += [
            (
                f"Not monotonic: {pairs}. The culprit named is the first bad commit after the last good one before the"
                " first bad verdict; the regression may have been fixed and reintroduced."
            ),
            "",
        ]
    lines += [steps_table(b).markdown(), ""]
    lines += [f"{data['measurements']} measurement(s) in {data['rounds']} round(s), {data['wall_s']:.0f} s.", ""]
    compared = (
        " (first bad against last good)"
        if data["first_bad"]
        else " (the last good against the last bad measured)"
        if data["remaining"]
        else " (bad end against good end)"
    )
    lines += ["## Dependency changes" + compared, ""]
    lines += [f"- {change}" for change in data["dependency_changes"]] or [
        "none: pyproject.toml and constraints.txt are the same"
    ]
    if data["reproduce"]:
        lines += ["", "## Reproduce the culprit's run", "", "```", data["reproduce"], "```"]
    return "\n".join(lines) + "\n"


def write(
    bisection: Bisection, out: Path, repo: Path, profile: str, pytest_args: list[str], dependency_changes: list[str]
) -> dict[str, Any]:
    data = as_dict(bisection, repo, profile, pytest_args, dependency_changes)
    with written_atomically(out / "bisect.json") as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    with written_atomically(out / "bisect.md") as tmp:
        tmp.write_text(markdown(bisection, data))
    return data
