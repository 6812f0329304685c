"""The regression gate: current runs against a baseline, metric by metric, case by case.

Inputs are result folders (records) or pytest-benchmark JSON files (whose `extra_info` carries each
case's metrics). Runs are matched by case id and recipe fingerprint (`case@1a2b3c4d`), so only runs
that trained the same recipe are compared or averaged. A metric regresses when it moves the wrong way by
more than its tolerance: absolute for accuracy-like metrics, relative for loss and images/s. When
the baseline holds several runs of a case (several seeds), the allowed move widens to
SPREAD_FACTOR standard deviations of the baseline if that is larger, so noise does not fail the
night. Missing and new cases are reported, never crashed on.

The gate never passes on nothing: an empty or unreadable side, a file of the wrong kind, or no
case (or metric) in common is a `GateError` that says what each side held.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.results.record import RecordError, load_all
from harness.results.tables import Table


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool
    higher_is_better: bool


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "test_acc": Tolerance(0.01, relative=False, higher_is_better=True),  # 1 point
    "test_f1": Tolerance(0.01, relative=False, higher_is_better=True),
    "test_top3": Tolerance(0.01, relative=False, higher_is_better=True),
    "test_top5": Tolerance(0.01, relative=False, higher_is_better=True),
    "test_loss": Tolerance(0.10, relative=True, higher_is_better=False),  # +10 %
    "train_images_per_s": Tolerance(0.07, relative=True, higher_is_better=True),  # -7 %
}
SPREAD_FACTOR = 2.0
ALIASES = {"acc": "test_acc", "f1": "test_f1", "top3": "test_top3", "top5": "test_top5", "loss": "test_loss", "images_per_s": "train_images_per_s", "speed": "train_images_per_s"}

Observations = dict[str, list[dict[str, float]]]  # case id -> one metrics dict per run


class GateError(ValueError):
    """The gate cannot decide: a side is empty, unreadable or of the wrong kind, or nothing is in common."""


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """`["acc=0.02", "images_per_s=0.1"]` over the defaults; the kind (absolute/relative) is the metric's."""
    tolerances = dict(DEFAULT_TOLERANCES)
    for item in items or ():
        name, _, value = item.partition("=")
        metric = ALIASES.get(name, name)
        if metric not in tolerances or not value:
            raise ValueError(f"--tolerance takes METRIC=VALUE with METRIC one of {', '.join(sorted(ALIASES))}; got {item!r}")
        try:
            allowed = float(value)
        except ValueError:
            allowed = -1.0
        if not allowed >= 0:  # also refuses nan
            raise ValueError(f"--tolerance {item}: {value!r} is not a number of 0 or more; e.g. --tolerance {name}=0.02")
        base = tolerances[metric]
        tolerances[metric] = Tolerance(allowed, base.relative, base.higher_is_better)
    return tolerances


def _from_benchmark_json(path: Path) -> Observations:
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GateError(f"{path} is not a pytest-benchmark JSON file ({type(error).__name__}: {error}); give a results folder or --benchmark-json output") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise GateError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list); give a results folder or --benchmark-json output")
    out: Observations = defaultdict(list)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        case = info.get("spec_id")
        if case and info.get("recipe"):
            case = f"{case}@{info['recipe']}"
        if case:
            out[case].append({k: float(v) for k, v in info.items() if k in DEFAULT_TOLERANCES})
    return dict(out)


def _from_records(folder: Path) -> Observations:
    out: Observations = defaultdict(list)
    try:
        records = load_all(folder)
    except RecordError as error:
        raise GateError(str(error)) from None
    for record in records:
        metrics = {k: v for k, v in record.test.items() if k in DEFAULT_TOLERANCES}
        metrics["train_images_per_s"] = record.train_images_per_s
        out[record.gate_key].append(metrics)
    return dict(out)


def observations(path: Path) -> Observations:
    """Per-case metrics from a results folder, or from a pytest-benchmark JSON file (or a folder of them)."""
    path = Path(path)
    if path.is_file():
        return _from_benchmark_json(path)
    if not path.is_dir():
        raise GateError(f"{path} does not exist; give a results folder or a pytest-benchmark JSON file")
    found = _from_records(path)
    if not found:
        for json_file in sorted(path.rglob("*.json")):
            if json_file.name != "result.json":
                for case, runs in _from_benchmark_json(json_file).items():
                    found.setdefault(case, []).extend(runs)
    return found


@dataclass(frozen=True)
class Verdict:
    case: str
    metric: str
    baseline: float
    current: float
    allowed: float
    regressed: bool


@dataclass
class Comparison:
    verdicts: list[Verdict]
    missing: list[str]
    new: list[str]
    runs_per_case: tuple[str, str]  # baseline, current: "1" or "1-3"

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regressed]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def table(self) -> Table:
        rows = tuple(
            (v.case, v.metric, f"{v.baseline:.4f}", f"{v.current:.4f}", f"{v.current - v.baseline:+.4f}", f"{v.allowed:.4f}", "REGRESSED" if v.regressed else "ok")
            for v in self.verdicts
        )
        return Table("Baseline vs current", ("case", "metric", "baseline", "current", "change", "allowed move", "verdict"), rows)

    def render(self) -> str:
        cases, metrics = {v.case for v in self.verdicts}, {v.metric for v in self.verdicts}
        lines = [
            f"Compared {len(cases)} case(s), {len(metrics)} metric(s): {len(self.verdicts)} checks; "
            f"runs per case: baseline {self.runs_per_case[0]}, current {self.runs_per_case[1]}",
            "",
            self.table().markdown(),
            "Missing from current (in baseline only): " + (", ".join(self.missing) or "none"),
            "New in current (no baseline): " + (", ".join(self.new) or "none"),
            "PASS: no regression" if self.passed else f"FAIL: {len(self.regressions)} regression(s): " + ", ".join(f"{v.case} {v.metric}" for v in self.regressions),
        ]
        return "\n".join(lines)


def describe(side: Mapping[str, list[dict[str, float]]]) -> str:
    """`2 case(s), 3 run(s) (a, b)` or `no runs`: what one side of the gate holds."""
    if not side:
        return "no runs"
    names = sorted(side)
    shown = ", ".join(names[:4]) + (f", ... ({len(names) - 4} more)" if len(names) > 4 else "")
    return f"{len(names)} case(s), {sum(len(runs) for runs in side.values())} run(s) ({shown})"


def _runs_per_case(side: Mapping[str, list[dict[str, float]]], cases: set[str]) -> str:
    counts = [len(side[c]) for c in cases]
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def compare(
    baseline: Mapping[str, list[dict[str, float]]],
    current: Mapping[str, list[dict[str, float]]],
    tolerances: Mapping[str, Tolerance] | None = None,
    labels: tuple[str, str] = ("baseline", "current"),
) -> Comparison:
    """Verdicts per common case and metric; a GateError when there is nothing to decide on."""
    tolerances = tolerances or DEFAULT_TOLERANCES
    sides = f"{labels[0]}: {describe(baseline)}; {labels[1]}: {describe(current)}"
    common = set(baseline) & set(current)
    if not baseline or not current or not common:
        raise GateError(f"nothing to compare, no case in common: {sides}")
    verdicts = []
    for case in sorted(common):
        for metric, tol in tolerances.items():
            base_values = [m[metric] for m in baseline[case] if metric in m]
            cur_values = [m[metric] for m in current[case] if metric in m]
            if not base_values or not cur_values:
                continue
            base, cur = statistics.fmean(base_values), statistics.fmean(cur_values)
            allowed = tol.value * abs(base) if tol.relative else tol.value
            if len(base_values) > 1:
                allowed = max(allowed, SPREAD_FACTOR * statistics.stdev(base_values))
            worse_by = (base - cur) if tol.higher_is_better else (cur - base)
            verdicts.append(Verdict(case, metric, base, cur, allowed, worse_by > allowed + 1e-12))
    if not verdicts:
        raise GateError(f"nothing to compare, no metric in common for the common cases: {sides}")
    runs = (_runs_per_case(baseline, common), _runs_per_case(current, common))
    return Comparison(verdicts, sorted(set(baseline) - set(current)), sorted(set(current) - set(baseline)), runs)


def compare_paths(baseline: Path, current: Path, tolerances: Mapping[str, Tolerance] | None = None) -> Comparison:
    return compare(observations(baseline), observations(current), tolerances, labels=(f"baseline {baseline}", f"current {current}"))
