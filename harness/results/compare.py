"""The regression gate: current runs against a baseline, metric by metric, case by case.

Inputs are result folders (records) or pytest-benchmark JSON files (whose `extra_info` carries each
case's metrics). Runs are matched by case id and recipe fingerprint (`case@1a2b3c4d`, the seed
left out), so only runs that trained the same recipe are compared, and a case's seeds are pooled. A
metric regresses when its mean moves the wrong way by more than the allowed move: the stated
tolerance (absolute for accuracy-like metrics, relative for loss and images/s), or the noise band,
SPREAD_FACTOR standard errors of the difference of the means, where that is wider (`noise`: seed by
seed where both sides ran the same seeds on one device, for the metrics computed from the weights;
else from the pooled spread of the repeats). A move within a band wider than the tolerance is
undecided (exit 2), with the seeds a side that would resolve a move of the tolerance, never a pass,
unless even the band's far end stays within the tolerance (a clear improvement). With one run per
side only the tolerance applies, and the output says so. Speed is the steady-state figure (the
warm-up epoch left out); speed and energy of sides that ran on different devices are not gated
(like with unlike) unless asked (`across_devices`), and the output says so in one line. Beside
every regression the output lists what differs between the two sides' environments. Missing and
new cases are reported, never crashed on.

The gate never passes on nothing: an empty or unreadable side, a file of the wrong kind, or no
case (or metric) in common is a `GateError` that says what each side held. Nor on what is not a
number: a run that diverged counts as nan in every gated metric, a metric that is null or nan on
either side is a regression of that metric ("non-finite"), never `ok`. Nor on less than it was
asked to compare: a gated metric that one side has for a case and the other lacks is named, and
the comparison is undecided (exit 2) unless the metrics were narrowed explicitly (`--metrics`).
What each side holds is read by `observations`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import GateError
from harness.results.noise import SPREAD_FACTOR, noise
from harness.results.observations import (
    ALIASES,
    NOT_A_NUMBER,
    TIMED_METRICS,
    Run,
    observations,
)
from harness.results.table import Table


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool
    higher_is_better: bool | None  # None: a custom metric's, which its records state (Run.directions)


CUSTOM_TOLERANCE = 0.01  # a custom metric's allowed move, absolute, unless --tolerance gives one


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "test_acc": Tolerance(0.01, relative=False, higher_is_better=True),  # 1 point
    "test_f1": Tolerance(0.01, relative=False, higher_is_better=True),
    "test_top3": Tolerance(0.01, relative=False, higher_is_better=True),
    "test_top5": Tolerance(0.01, relative=False, higher_is_better=True),
    "test_loss": Tolerance(0.10, relative=True, higher_is_better=False),  # +10 %
    "steady_images_per_s": Tolerance(0.07, relative=True, higher_is_better=True),  # -7 %
    "joules_per_image": Tolerance(0.07, relative=True, higher_is_better=False),  # +7 %
}
# Gated only where both sides have it (GPU runs with an energy counter): one side without it is not undecided.
WHERE_BOTH_HAVE_IT = frozenset({"joules_per_image"})
OK, REGRESSED, UNDECIDED, NOT_COMPARABLE = "ok", "REGRESSED", "undecided", "not comparable"


def metric_key(name: str) -> str:
    """The key a gated metric has in the runs: a built-in's (`acc` -> `test_acc`), else a custom
    metric's (`auroc` -> `test_auroc`), whose records say whether they hold it (`compare`)."""
    name = ALIASES.get(name, name)
    return name if name in DEFAULT_TOLERANCES or name.startswith("test_") else f"test_{name}"


def parse_metrics(text: str | None) -> list[str] | None:
    """`--metrics acc,images_per_s,auroc`: the gated metrics, by their names or short names, custom
    ones too (None: all)."""
    if text is None:
        return None
    names = [metric_key(name.strip()) for name in text.split(",") if name.strip()]
    unknown = [name for name in names if not name.removeprefix("test_").isidentifier()]
    if unknown or not names:
        raise ValueError(
            f"--metrics {text!r}: {', '.join(unknown) or 'no name'} is not a metric name; give a comma-separated list"
            f" of {', '.join(sorted(ALIASES))} or your own metrics' names"
        )
    return names


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """`["acc=0.02", "images_per_s=0.1"]` over the defaults; the kind (absolute/relative) is the metric's."""
    tolerances = dict(DEFAULT_TOLERANCES)
    for item in items or ():
        name, _, value = item.partition("=")
        metric = metric_key(name)
        if not metric.removeprefix("test_").isidentifier() or not value:
            raise ValueError(
                f"--tolerance takes METRIC=VALUE with METRIC one of {', '.join(sorted(ALIASES))} or your own"
                f" metric's name; got {item!r}"
            )
        try:
            allowed = float(value)
        except ValueError:
            allowed = -1.0
        if not allowed >= 0:  # also refuses nan
            raise ValueError(
                f"--tolerance {item}: {value!r} is not a number of 0 or more; e.g. --tolerance {name}=0.02"
            )
        base = tolerances.get(metric, Tolerance(CUSTOM_TOLERANCE, relative=False, higher_is_better=None))
        tolerances[metric] = Tolerance(allowed, base.relative, base.higher_is_better)
    return tolerances


def gated(
    tolerances: Mapping[str, Tolerance], metrics: Sequence[str] | None, sides: Sequence[Mapping[str, list[Run]]]
) -> dict[str, Tolerance]:
    """The gated metrics and their tolerances: `tolerances` with every custom metric the runs of `sides` report
    (CUSTOM_TOLERANCE unless given), each in the direction its records state, narrowed to `metrics` when given.
    A GateError names a tolerance or a metric that is neither built-in nor reported by a run (a misspelt name,
    refused before a session trains: the plugin checks it against the baseline)."""
    directions = {k: v for side in sides for runs in side.values() for run in runs for k, v in run.directions.items()}
    out = dict(tolerances)
    for metric, higher in directions.items():
        given = out.get(metric, Tolerance(CUSTOM_TOLERANCE, relative=False, higher_is_better=None))
        out[metric] = Tolerance(given.value, given.relative, higher)
    unknown = [m for m, tol in out.items() if tol.higher_is_better is None]
    unknown += [m for m in metrics or () if m not in out]
    if unknown:
        raise GateError(
            f"{', '.join(m.removeprefix('test_') for m in unknown)}: no run on either side reports such a metric;"
            f" the built-in ones are {', '.join(sorted(ALIASES))}, and the runs' own are"
            f" {', '.join(m.removeprefix('test_') for m in directions) or 'none'}"
        )
    return out if metrics is None else {m: out[m] for m in metrics}


@dataclass(frozen=True)
class Verdict:
    case: str
    metric: str
    baseline: float  # mean over the baseline's runs of the case
    current: float
    allowed: float
    basis: str  # what set the allowed move: "tolerance", "2 x std error", "non-finite value" or "devices differ"
    runs: tuple[int, int]
    outcome: str  # OK, REGRESSED, UNDECIDED (a band wider than the tolerance), NOT_COMPARABLE (timed, across devices)
    changed: str = ""  # what differs between the sides' environments, for a regression
    std_error: float | None = None  # of the difference of the means (results.noise); None without repeats or numbers
    paired: bool = False  # compared seed by seed (results.noise)
    note: str = ""  # why undecided or not comparable, in a few words
    higher_is_better: bool = True  # the metric's direction

    @property
    def regressed(self) -> bool:
        return self.outcome == REGRESSED


@dataclass
class Comparison:
    verdicts: list[Verdict]
    missing: list[str]
    new: list[str]
    runs_per_case: tuple[str, str]  # baseline, current: "1" or "1-3"
    uncompared: list[str] = field(default_factory=list)  # "case metric (missing in current)": gated, on one side only
    devices: str = ""  # one line where the sides ran on different devices

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regressed]

    @property
    def within_noise(self) -> list[Verdict]:
        """The verdicts the noise decides: a move within a noise band wider than the metric's tolerance."""
        return [v for v in self.verdicts if v.outcome == UNDECIDED]

    @property
    def nothing_gated(self) -> bool:
        """Every verdict is a timed metric of sides on different devices."""
        return all(v.outcome == NOT_COMPARABLE for v in self.verdicts)

    @property
    def undecided(self) -> bool:
        """Neither a pass nor a regression: a gated metric on one side only, a move the noise decides, or
        nothing gated."""
        return bool(self.uncompared or self.within_noise or self.nothing_gated)

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.undecided

    def table(self) -> Table:
        rows = tuple(
            (
                v.case,
                v.metric,
                _shown(v.baseline),
                _shown(v.current),
                _shown(v.current - v.baseline, "+.4f"),
                _shown(v.allowed),
                v.basis,
                f"{v.runs[0]}/{v.runs[1]}" + (" paired" if v.paired else ""),
                v.outcome + (f" ({v.note})" if v.note else ""),
                v.changed if v.regressed else "",
            )
            for v in self.verdicts
        )
        columns = (
            "case",
            "metric",
            "baseline",
            "current",
            "change",
            "allowed move",
            "allowed by",
            "runs (base/cur)",
            "verdict",
            "changed between sides",
        )
        return Table("Baseline vs current", columns, rows)

    def render(self) -> str:
        cases, metrics = {v.case for v in self.verdicts}, {v.metric for v in self.verdicts}
        lines = [
            (
                f"Compared {len(cases)} case(s), {len(metrics)} metric(s): {len(self.verdicts)} checks; "
                f"runs per case: baseline {self.runs_per_case[0]}, current {self.runs_per_case[1]}"
            ),
        ]
        if all(v.runs == (1, 1) for v in self.verdicts):
            lines.append(
                "One run per side: the stated tolerances alone decide (no spread to measure noise with; repeat cases"
                " with --seeds N)."
            )
        if self.devices:
            lines.append(self.devices)
        lines += [
            "",
            self.table().markdown(),
            "Missing from current (in baseline only): " + (", ".join(self.missing) or "none"),
            "New in current (no baseline): " + (", ".join(self.new) or "none"),
        ]
        if self.uncompared:
            lines.append("Not compared, a gated metric on one side only: " + ", ".join(self.uncompared))
        if self.regressions:
            lines.append(
                f"FAIL: {len(self.regressions)} regression(s): "
                + ", ".join(f"{v.case} {v.metric}" for v in self.regressions)
            )
        elif self.undecided:
            lines.append("UNDECIDED: " + "; ".join(self._undecided_because()))
        else:
            lines.append("PASS: no regression")
        return "\n".join(lines)

    def _undecided_because(self) -> list[str]:
        because = []
        if self.uncompared:
            because.append(
                f"{len(self.uncompared)} gated metric(s) missing on one side; "
                "fix the side that lacks them, or gate fewer metrics with --metrics"
            )
        if self.within_noise:
            which = ", ".join(f"{v.case} {v.metric}: {v.note}" for v in self.within_noise)
            because.append(
                f"{len(self.within_noise)} metric(s) within a noise band wider than their tolerance "
                f"({which}); repeat both sides with that many seeds (--seeds N), "
                "or allow a wider move with --tolerance"
            )
        if self.nothing_gated:
            because.append(
                "every compared metric is timed and the devices differ; "
                "compare runs of one device, or gate them anyway with --across-devices"
            )
        return because


def _shown(value: float, form: str = ".4f") -> str:
    return format(value, form) if math.isfinite(value) else "nan"


def describe(side: Mapping[str, list[Run]]) -> str:
    """`2 case(s), 3 run(s) (a, b)` or `no runs`: what one side of the gate holds."""
    if not side:
        return "no runs"
    names = sorted(side)
    shown = ", ".join(names[:4]) + (f", ... ({len(names) - 4} more)" if len(names) > 4 else "")
    return f"{len(names)} case(s), {sum(len(runs) for runs in side.values())} run(s) ({shown})"


def _runs_per_case(side: Mapping[str, list[Run]], cases: set[str]) -> str:
    counts = [len(side[c]) for c in cases]
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def context_changes(baseline: Sequence[Run], current: Sequence[Run]) -> str:
    """`torch 2.13.0 -> 2.14.1; git_commit abc -> def`: context values that differ between the sides."""
    changes = []
    for key in dict.fromkeys(k for run in (*baseline, *current) for k in run.context):
        before = sorted({run.context.get(key, "?") for run in baseline})
        after = sorted({run.context.get(key, "?") for run in current})
        if before != after:
            changes.append(f"{key} {'/'.join(before)} -> {'/'.join(after)}")
    return "; ".join(changes) or "nothing recorded differs"


def devices(runs: Sequence[Run]) -> str:
    """The devices a side ran on, as its records name them ("" where none says)."""
    return "/".join(sorted({run.context["device"] for run in runs if run.context.get("device")}))


def verdict(
    case: str,
    metric: str,
    tol: Tolerance,
    baseline: Sequence[Run],
    current: Sequence[Run],
    changed: str,
    across_devices: bool,
) -> Verdict:
    """One metric of one case: a regression where its mean moves the wrong way by more than the allowed
    move, the larger of the stated tolerance and the noise band (SPREAD_FACTOR standard errors of the
    difference); undecided where the band is the wider and the move lies within it without excluding a
    move of the tolerance."""
    base_values = [run.metrics[metric] for run in baseline if metric in run.metrics]
    cur_values = [run.metrics[metric] for run in current if metric in run.metrics]
    runs = (len(base_values), len(cur_values))
    if not all(math.isfinite(v) for v in (*base_values, *cur_values)):
        base, cur = _mean(base_values), _mean(cur_values)
        return Verdict(case, metric, base, cur, NOT_A_NUMBER, "non-finite value", runs, REGRESSED, changed)
    base, cur = statistics.fmean(base_values), statistics.fmean(cur_values)
    stated = tol.value * abs(base) if tol.relative else tol.value
    before, after = devices(baseline), devices(current)
    if metric in TIMED_METRICS and before and after and before != after and not across_devices:
        basis = "devices differ"
        return Verdict(case, metric, base, cur, stated, basis, runs, NOT_COMPARABLE, changed, note=basis)
    measured = noise(baseline, current, metric, same_device=before == after)
    error, paired = (measured.std_error, measured.paired) if measured else (None, False)
    worse_by = (base - cur) if tol.higher_is_better else (cur - base)
    if measured is None or measured.band <= stated:
        outcome = REGRESSED if worse_by > stated + 1e-12 else OK
        return Verdict(case, metric, base, cur, stated, "tolerance", runs, outcome, changed, error, paired)
    band, basis = measured.band, f"{SPREAD_FACTOR:g} x std error"
    if worse_by > band + 1e-12:
        return Verdict(case, metric, base, cur, band, basis, runs, REGRESSED, changed, error, paired)
    if worse_by + band <= stated:  # even the band's far end moves less than the tolerance: no regression of that size
        return Verdict(case, metric, base, cur, band, basis, runs, OK, changed, error, paired)
    seeds = measured.seeds_to_resolve(stated)
    note = f"{seeds} seeds a side would resolve a move of {stated:.4f}" if seeds else "no seeds resolve a move of 0"
    return Verdict(case, metric, base, cur, band, basis, runs, UNDECIDED, changed, error, paired, note)


def devices_line(
    baseline: Mapping[str, list[Run]], current: Mapping[str, list[Run]], cases: Sequence[str], across_devices: bool
) -> str:
    """One line where the sides ran on different devices: speed and energy are then like with unlike."""
    pairs = dict.fromkeys((devices(baseline[c]), devices(current[c])) for c in cases)
    differ = [f"baseline on {old}, current on {new}" for old, new in pairs if old and new and old != new]
    if not differ:
        return ""
    what = (
        "compared anyway (--across-devices)"
        if across_devices
        else "images/s and J/image not gated (like with unlike); --across-devices gates them"
    )
    return f"Devices differ: {'; '.join(differ)}: {what}"


def compare(
    baseline: Mapping[str, list[Run]],
    current: Mapping[str, list[Run]],
    tolerances: Mapping[str, Tolerance] | None = None,
    labels: tuple[str, str] = ("baseline", "current"),
    metrics: Sequence[str] | None = None,
    across_devices: bool = False,
) -> Comparison:
    """Verdicts per common case and metric (only `metrics` when given: the gate narrowed on
    purpose); a GateError when there is nothing to decide on. Timed metrics of sides that ran on
    different devices are not gated unless `across_devices`."""
    asked = {m for m in (tolerances or {}) if m not in DEFAULT_TOLERANCES} | set(metrics or ())  # named on purpose
    tolerances = gated(tolerances or DEFAULT_TOLERANCES, metrics, (baseline, current))
    uncompared = []
    sides = f"{labels[0]}: {describe(baseline)}; {labels[1]}: {describe(current)}"
    common = set(baseline) & set(current)
    if not baseline or not current or not common:
        raise GateError(f"nothing to compare, no case in common: {sides}")
    verdicts = []
    for case in sorted(common):
        changed = context_changes(baseline[case], current[case])
        for metric, tol in tolerances.items():
            on_base, on_cur = (any(metric in run.metrics for run in side[case]) for side in (baseline, current))
            if not on_base or not on_cur:
                # the other side lacks a gated metric; a custom one that a case added or dropped is gated where both
                # sides have it, unless asked for by name
                own = metric not in DEFAULT_TOLERANCES and metric not in asked
                if (on_base or on_cur) and metric not in WHERE_BOTH_HAVE_IT and not own:
                    uncompared.append(f"{case} {metric} (missing in {labels[1] if on_base else labels[0]})")
                continue
            judged = verdict(case, metric, tol, baseline[case], current[case], changed, across_devices)
            verdicts.append(dataclasses.replace(judged, higher_is_better=bool(tol.higher_is_better)))
    if not verdicts:
        raise GateError(f"nothing to compare, no metric in common for the common cases: {sides}")
    runs = (_runs_per_case(baseline, common), _runs_per_case(current, common))
    missing, new = sorted(set(baseline) - set(current)), sorted(set(current) - set(baseline))
    line = devices_line(baseline, current, sorted(common), across_devices)
    return Comparison(verdicts, missing, new, runs, uncompared, line)


def _mean(values: Sequence[float]) -> float:
    """The mean of the finite values (nan when none is): what a side shows beside a non-finite verdict."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else NOT_A_NUMBER


def compare_paths(
    baseline: Path,
    current: Path,
    tolerances: Mapping[str, Tolerance] | None = None,
    metrics: Sequence[str] | None = None,
    across_devices: bool = False,
) -> Comparison:
    labels = (f"baseline {baseline}", f"current {current}")
    return compare(observations(baseline), observations(current), tolerances, labels, metrics, across_devices)
