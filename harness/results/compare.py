"""The regression gate: current runs against a baseline, metric by metric, case by case.

Inputs are result folders (records) or pytest-benchmark JSON files (whose `extra_info` carries each
case's metrics). Cases are matched by spec id. A metric regresses when it moves the wrong way by
more than its tolerance: absolute for accuracy-like metrics, relative for loss and images/s. When
the baseline holds several runs of a case (several seeds), the allowed move widens to
SPREAD_FACTOR standard deviations of the baseline if that is larger, so noise does not fail the
night. Missing and new cases are reported, never crashed on.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.results.record import load_all
from harness.results.tables import Table
from harness.spec import BenchmarkSpec


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


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """`["acc=0.02", "images_per_s=0.1"]` over the defaults; the kind (absolute/relative) is the metric's."""
    tolerances = dict(DEFAULT_TOLERANCES)
    for item in items or ():
        name, _, value = item.partition("=")
        metric = ALIASES.get(name, name)
        if metric not in tolerances or not value:
            raise ValueError(f"--tolerance takes METRIC=VALUE with METRIC one of {', '.join(sorted(ALIASES))}; got {item!r}")
        base = tolerances[metric]
        tolerances[metric] = Tolerance(float(value), base.relative, base.higher_is_better)
    return tolerances


def _from_benchmark_json(path: Path) -> Observations:
    data = json.loads(path.read_text())
    out: Observations = defaultdict(list)
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        case = info.get("spec_id")
        if case:
            out[case].append({k: float(v) for k, v in info.items() if k in DEFAULT_TOLERANCES})
    return dict(out)


def _from_records(folder: Path) -> Observations:
    out: Observations = defaultdict(list)
    for record in load_all(folder):
        metrics = {k: v for k, v in record.test.items() if k in DEFAULT_TOLERANCES}
        metrics["train_images_per_s"] = record.train_images_per_s
        out[record.case_id].append(metrics)
    return dict(out)


def observations(path: Path) -> Observations:
    """Per-case metrics from a results folder, or from a pytest-benchmark JSON file (or a folder of them)."""
    path = Path(path)
    if path.is_file():
        return _from_benchmark_json(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a results folder nor a pytest-benchmark JSON file")
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

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regressed]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def table(self, only_regressions: bool = False) -> Table:
        shown = self.regressions if only_regressions else self.verdicts
        rows = tuple(
            (v.case, v.metric, f"{v.baseline:.4f}", f"{v.current:.4f}", f"{v.current - v.baseline:+.4f}", f"{v.allowed:.4f}", "REGRESSED" if v.regressed else "ok")
            for v in shown
        )
        return Table("Regressions" if only_regressions else "Baseline vs current", ("case", "metric", "baseline", "current", "change", "allowed move", "verdict"), rows)

    def render(self) -> str:
        lines = [self.table(only_regressions=not self.passed).markdown()]
        if self.missing:
            lines.append("Missing from current (in baseline only): " + ", ".join(self.missing))
        if self.new:
            lines.append("New in current (no baseline): " + ", ".join(self.new))
        lines.append("PASS: no regression" if self.passed else f"FAIL: {len(self.regressions)} regression(s)")
        return "\n".join(lines)


def compare(baseline: Mapping[str, list[dict[str, float]]], current: Mapping[str, list[dict[str, float]]], tolerances: Mapping[str, Tolerance] | None = None) -> Comparison:
    tolerances = tolerances or DEFAULT_TOLERANCES
    verdicts = []
    for case in sorted(set(baseline) & set(current)):
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
    return Comparison(verdicts, sorted(set(baseline) - set(current)), sorted(set(current) - set(baseline)))


def compare_paths(baseline: Path, current: Path, tolerances: Mapping[str, Tolerance] | None = None) -> Comparison:
    return compare(observations(baseline), observations(current), tolerances)
