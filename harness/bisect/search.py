"""The bisection: both ends measured first, then rounds of K evenly spaced revisions until the first
bad commit is next to the last good one.

Every step is judged by the regression gate (`results.compare`) against the good end, on the
metrics that clearly regressed between the ends (those within the noise band beside a clear one are
named, not followed). A step with a clear regression is bad; one without, whose difference from the
good end lies within one standard error of the gate's threshold in some metric (the band where seed
noise alone could flip the verdict; the spread of the two sides' seeds, pooled), is
measured again with twice the seeds, up to `max_seeds`, before it is called good or bad. The ends
likewise, except that ends the gate still calls a regression within the band, once `max_seeds` or
the budget stops the re-measuring, are not bisected: "no clear regression", since a culprit would
be named on noise. A timed metric (images/s, J/image) varies between runs of one seed and drifts
with the machine's load, so where the good end was measured before the bad one (serially), it is
measured again after it, and a timed regression between the ends must hold against the two
measurements pooled (an A-B-A design: a machine that slowed down between the ends is not a
regression). That guards the decision to bisect at all; the steps that follow are judged against
that good end, so drift during them can still move the culprit named (`--parallel` measures the
ends at the same time, and each round's steps together). A revision where the case ran nothing is
left out of the search (as `git bisect skip` does) and named if the culprit could be it. A good
verdict after a bad one is reported as a regression that is not monotonic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.atomic import written_atomically
from harness.bisect.measure import Measurement
from harness.bisect.revisions import Commit
from harness.errors import GateError
from harness.results.compare import Comparison, Tolerance, compare
from harness.results.observations import GATED_METRICS, TIMED_METRICS, Run, observations

MeasureRound = Callable[[Sequence[tuple[Commit, int]]], list[Measurement]]  # (revision, seeds) each, measured at once
GOOD, BAD, UNMEASURED = "good", "bad", "unmeasured"
WITHIN_NOISE = "within noise"  # the bad end's verdict when the ends stay within the noise band at the bound
ANSWERS = (
    "culprit",
    "culprit among unmeasured",
    "no regression",
    "no clear regression",
)  # the outcomes that answer; the others: "unmeasured end", "budget spent"


@dataclass(frozen=True)
class Budget:
    """At most `steps` measurements and `minutes` of bisection (None: no bound)."""

    steps: int | None = None
    minutes: float | None = None

    def describe(self) -> str:
        return (
            " and ".join(
                filter(
                    None,
                    [f"{self.steps} step(s)" if self.steps else "", f"{self.minutes:g} min" if self.minutes else ""],
                )
            )
            or "none"
        )


def parse_budget(text: str | None) -> Budget:
    """`12` (steps) or `30m` / `30min` (minutes)."""
    if not text:
        return Budget()
    value = text.strip().lower()
    for suffix in ("min", "m"):
        if (
            value.endswith(suffix)
            and value[: -len(suffix)].replace(".", "", 1).isdigit()
            and float(value[: -len(suffix)]) > 0
        ):
            return Budget(minutes=float(value[: -len(suffix)]))
    if value.isdigit() and int(value) >= 2:
        return Budget(steps=int(value))
    raise ValueError(f"budget {text!r} is neither a number of steps (2 or more: the ends are two) nor minutes like 30m")


@dataclass
class Step:
    """One revision as the bisection saw it: where it sits, its latest measurement, its verdict."""

    commit: Commit
    index: int  # 0: the good end; len(range): the bad end
    round: int
    seeds: int
    runs: list[Run]
    measurement: Measurement
    verdict: str = ""  # good, bad or unmeasured
    within_noise: bool = False  # still within the noise band at max_seeds: decided at the bound
    comparison: Comparison | None = None  # against the good end
    measured: int = 1  # times measured (more seeds each time)
    pooled: bool = False  # the good end: its timed metrics pooled over a measurement before the bad end and one after

    def figures(self) -> dict[str, float]:
        """The mean of each gated metric over the step's runs."""
        values: dict[str, list[float]] = {}
        for run in self.runs:
            for metric, value in run.metrics.items():
                values.setdefault(metric, []).append(value)
        custom = sorted({m for run in self.runs for m in run.directions})  # the runs' own metrics, after the built-in
        return {m: math.fsum(v) / len(v) for m in (*GATED_METRICS, *custom) if (v := values.get(m))}

    def why_unmeasured(self) -> str:
        lines = [line for line in self.measurement.log.strip().splitlines() if line.strip()]
        return (lines[-1] if lines else f"pytest exit status {self.measurement.returncode}")[:300]


@dataclass
class Bisection:
    """The state and the loop; `run` returns the outcome (ANSWERS, "unmeasured end" or "budget spent")."""

    commits: list[Commit]  # the good end first, the bad end last
    case: str  # the -k expression that selects the case
    label: str  # the case's readable id, in tables
    measure_round: MeasureRound
    out: Path
    tolerances: Mapping[str, Tolerance]
    metrics: Sequence[str] | None = None  # None: every gated metric, at the ends
    seeds: int = 2
    max_seeds: int = 8
    parallel: int = 1
    budget: Budget = field(default_factory=Budget)
    steps: dict[int, Step] = field(default_factory=dict)
    rounds: int = 0
    regressed: list[str] = field(
        default_factory=list
    )  # the metrics that regressed between the ends, which the steps are judged on
    not_followed: list[str] = field(
        default_factory=list
    )  # within the noise band at the ends beside a clear regression: not judged on
    outcome: str = ""
    started: float = field(default_factory=time.perf_counter)

    @property
    def good(self) -> Step:
        return self.steps[0]

    @property
    def bad_index(self) -> int:
        return len(self.commits) - 1

    def measurements(self) -> int:
        return sum(step.measured for step in self.steps.values())

    def _round(self, wanted: Sequence[tuple[int, int]]) -> None:
        """Measure (index, seeds) pairs, K at a time; each batch is one round."""
        for start in range(0, len(wanted), self.parallel):
            batch = wanted[start : start + self.parallel]
            self.rounds += 1
            for (index, seeds), measurement in zip(
                batch, self.measure_round([(self.commits[i], s) for i, s in batch]), strict=True
            ):
                folder = self.out / "steps" / f"r{self.rounds:02d}-{index:03d}-{self.commits[index].short}-s{seeds}"
                for relative, content in measurement.records.items():
                    with written_atomically(folder / relative) as tmp:
                        tmp.write_bytes(content)
                with written_atomically(folder / "pytest.log") as tmp:
                    tmp.write_text(measurement.log)
                found = observations(folder) if measurement.records else {}
                # -k selected several cases at this revision: nothing to compare
                if len({key.split("@")[0] for key in found}) > 1:
                    measurement.log += (
                        f"\n-k selected {len(found)} cases at this revision ({', '.join(sorted(found))}); bisect"
                        " follows one"
                    )
                    found = {}
                runs = [run for group in found.values() for run in group]
                before = self.steps.get(index)
                self.steps[index] = Step(
                    self.commits[index],
                    index,
                    self.rounds,
                    seeds,
                    runs,
                    measurement,
                    measured=(before.measured + 1) if before else 1,
                )
                print(
                    f"bisect: round {self.rounds}: {self.commits[index].short} {self.commits[index].subject[:60]!r}"
                    f" measured with {seeds} seed(s) in {measurement.seconds:.0f} s"
                )

    def _borderline(self, comparison: Comparison) -> set[str]:
        """The metrics whose difference from the good end (`comparison`, a step's) lies within one standard
        error of the gate's threshold (the spread pooled over the two sides' seeds)."""
        found = set()
        for verdict in comparison.verdicts:
            if verdict.std_error is None or not (math.isfinite(verdict.baseline) and math.isfinite(verdict.current)):
                continue
            worse_by = (
                (verdict.baseline - verdict.current)
                if verdict.higher_is_better
                else (verdict.current - verdict.baseline)
            )
            if abs(worse_by - verdict.allowed) < verdict.std_error:
                found.add(verdict.metric)
        return found

    def _compare(self, step: Step, metrics: Sequence[str] | None) -> Comparison:
        return compare(
            {self.label: self.good.runs},
            {self.label: step.runs},
            self.tolerances,
            labels=("good end", step.commit.short),
            metrics=metrics,
        )

    def _judge(self, indices: Sequence[int], metrics: Sequence[str] | None) -> None:
        """Verdicts for the steps at `indices`; those within the noise band measured again with more seeds first."""
        pending = list(indices)
        while pending:
            again = []
            for index in pending:
                step = self.steps[index]
                if not step.runs:
                    step.verdict = UNMEASURED
                    continue
                try:
                    step.comparison = self._compare(step, metrics)
                except (
                    GateError
                ) as error:  # the step's record lacks the case or every metric: it measured nothing comparable
                    step.verdict, step.comparison = UNMEASURED, None
                    print(f"bisect: {step.commit.short}: {error}")
                    continue
                # a followed metric missing: good on the others says nothing
                if step.comparison.uncompared and not step.comparison.regressions:
                    step.verdict = UNMEASURED
                    continue
                step.verdict = BAD if step.comparison.regressions else GOOD
                borderline = self._borderline(step.comparison)
                step.within_noise = bool(borderline) and all(
                    v.metric in borderline for v in step.comparison.regressions
                )  # no clear regression to decide on
                if step.within_noise and step.seeds < self.max_seeds and not self._over_budget():
                    again.append((index, min(2 * step.seeds, self.max_seeds)))
            if again:
                print(
                    f"bisect: {', '.join(self.commits[i].short for i, _ in again)} within the noise band; measuring"
                    " again with more seeds"
                )
                self._round(again)
            pending = [index for index, _ in again]

    def _over_budget(self) -> bool:
        minutes = (time.perf_counter() - self.started) / 60
        return bool(
            (self.budget.steps and self.measurements() >= self.budget.steps)
            or (self.budget.minutes and minutes >= self.budget.minutes)
        )

    def _ends(self) -> bool:
        """Measure both ends; False when there is nothing to bisect (an end unmeasured, or no regression)."""
        self._round([(0, self.seeds), (self.bad_index, self.seeds)])
        while True:
            good, bad = self.good, self.steps[self.bad_index]
            if not good.runs or not bad.runs:
                for step in (good, bad):
                    step.verdict = GOOD if step.runs and step.index == 0 else UNMEASURED if not step.runs else ""
                self.outcome = "unmeasured end"
                return False
            good.verdict = GOOD
            try:
                bad.comparison = self._compare(bad, self.metrics)
            except GateError as error:
                print(f"bisect: the ends cannot be compared: {error}")
                bad.verdict, self.outcome = UNMEASURED, "unmeasured end"
                return False
            borderline = self._borderline(bad.comparison)
            clear = [v.metric for v in bad.comparison.regressions if v.metric not in borderline]
            bad.within_noise = bool(borderline) and not clear
            # nothing clearly regressed, something might have
            if bad.within_noise and bad.seeds < self.max_seeds and not self._over_budget():
                seeds = min(2 * bad.seeds, self.max_seeds)
                print(
                    f"bisect: the ends differ within the noise band ({', '.join(sorted(borderline))}); measuring both"
                    f" again with {seeds} seeds"
                )
                self._round([(0, seeds), (self.bad_index, seeds)])
                continue
            # at the seed bound the gate's verdict is still a coin toss: no culprit on it
            if bad.within_noise and bad.comparison.regressions:
                self.not_followed = sorted(v.metric for v in bad.comparison.regressions)
                bad.verdict, self.outcome = WITHIN_NOISE, "no clear regression"
                return False
            # one after the other: the machine may have drifted
            if any(m in TIMED_METRICS for m in clear) and good.round < bad.round and not self._over_budget():
                print(
                    f"bisect: {', '.join(m for m in clear if m in TIMED_METRICS)} regressed between the ends; measuring"
                    " the good end again, after the bad one (a machine that slowed down meanwhile is no regression)"
                )
                self._round([(0, good.seeds)])
                again = self.steps[0]
                if again.runs:  # else the good end is unmeasured now: a timed regression cannot be told from drift
                    again.runs = good.runs + [
                        Run({m: v for m, v in run.metrics.items() if m in TIMED_METRICS}, run.context)
                        for run in again.runs
                    ]
                    again.pooled = True
                continue
            order = [v.metric for v in bad.comparison.verdicts] if bad.comparison else []  # the gate's order
            self.regressed = sorted(clear, key=lambda m: order.index(m) if m in order else len(order))
            self.not_followed = sorted(borderline - set(clear))
            bad.verdict = BAD if self.regressed else GOOD
            if not self.regressed:
                self.outcome = "no regression"
                return False
            return True

    def interval(self) -> tuple[int, int]:
        """(last good, first bad) on the good-then-bad reading: the first bad verdict, and the last good before it."""
        first_bad = min(i for i, s in self.steps.items() if s.verdict == BAD)
        return max(i for i, s in self.steps.items() if s.verdict == GOOD and i < first_bad), first_bad

    def candidates(self) -> list[int]:
        """Revisions between the last good and the first bad that are still to measure."""
        lo, hi = self.interval()
        return [i for i in range(lo + 1, hi) if i not in self.steps]

    def unmeasured_between(self) -> list[int]:
        lo, hi = self.interval()
        return [i for i in range(lo + 1, hi) if self.steps.get(i) and self.steps[i].verdict == UNMEASURED]

    def not_monotonic(self) -> list[tuple[int, int]]:
        """(bad index, later good index) pairs: a revision judged good after one judged bad."""
        judged = sorted((i, s.verdict) for i, s in self.steps.items() if s.verdict in (GOOD, BAD))
        return [(i, j) for i, vi in judged if vi == BAD for j, vj in judged if vj == GOOD and j > i]

    def run(self) -> str:
        if not self._ends():
            return self.outcome
        while open_ := self.candidates():
            if self._over_budget():
                self.outcome = "budget spent"
                return self.outcome
            picks = evenly_spaced(open_, self.parallel)
            self._round([(i, self.seeds) for i in picks])
            self._judge(picks, self.regressed)
        self.outcome = "culprit" if not self.unmeasured_between() else "culprit among unmeasured"
        return self.outcome


def evenly_spaced(candidates: Sequence[int], k: int) -> list[int]:
    """K of the candidates that cut them into K+1 near-equal parts (all of them when there are K or fewer)."""
    if len(candidates) <= k:
        return list(candidates)
    m = len(candidates)
    return sorted({candidates[min(m - 1, max(0, round((j + 1) * (m + 1) / (k + 1)) - 1))] for j in range(k)})
