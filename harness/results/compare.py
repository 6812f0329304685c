"""The regression gate: current runs against a baseline, metric by metric, case by case.

Inputs are result folders (records) or pytest-benchmark JSON files (whose `extra_info` carries each
case's metrics). Runs are matched by case id and recipe fingerprint (`case@1a2b3c4d`, the seed
left out), so only runs that trained the same recipe are compared, and a case's seeds are pooled. A
metric regresses when its mean moves the wrong way by more than the allowed move: the stated
tolerance (absolute for accuracy-like metrics, relative for loss and images/s), widened to
SPREAD_FACTOR standard errors of the difference of the means (from the pooled spread of the two
sides' repeats) when either side has repeats, so noise does not fail the night. With one run per side only the tolerance applies, and the
output says so. Speed is the steady-state figure (the warm-up epoch left out). Beside every
regression the output lists what differs between the two sides' environments. Missing and new
cases are reported, never crashed on.

The gate never passes on nothing: an empty or unreadable side, a file of the wrong kind, or no
case (or metric) in common is a `GateError` that says what each side held. Nor on what is not a
number: a run that diverged counts as nan in every gated metric, a metric that is null or nan on
either side is a regression of that metric ("non-finite"), never `ok`. Nor on less than it was
asked to compare: a gated metric that one side has for a case and the other lacks is named, and
the comparison is undecided (exit 2) unless the metrics were narrowed explicitly (`--metrics`).
pytest-benchmark JSON is read by the fields trainbench writes into `extra_info` (`spec_id`,
`recipe`, `status`, the test metrics and `steady_images_per_s`, or their short names: acc, f1,
top3, top5, loss, images_per_s); a file with none of them is refused in one line.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.results.record import RecordError, RunResult, load_all
from harness.results.stats import pooled_std
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
    "steady_images_per_s": Tolerance(0.07, relative=True, higher_is_better=True),  # -7 %
}
SPREAD_FACTOR = 2.0
ALIASES = {"acc": "test_acc", "f1": "test_f1", "top3": "test_top3", "top5": "test_top5", "loss": "test_loss",
           "images_per_s": "steady_images_per_s", "speed": "steady_images_per_s"}  # fmt: skip
CONTEXT_KEYS = ("git_commit", "device", "torch", "cuda", "timm", "lightning", "poutyne", "torchmetrics", "albumentations")


@dataclass(frozen=True)
class Run:
    """One run as the gate sees it: its metrics, and the context it ran in (environment, fingerprint)."""

    metrics: dict[str, float]
    context: dict[str, str] = field(default_factory=dict)


Observations = dict[str, list[Run]]  # case@recipe -> one Run per run


NOT_A_NUMBER = float("nan")


def _number(value: object) -> float:
    """A metric as the gate reads it: null (JSON's spelling of a non-finite value) becomes nan."""
    return NOT_A_NUMBER if value is None else float(value)


def _not_numbers(classes: int | None) -> dict[str, float]:
    """A diverged run's test metrics: each one a run over `classes` classes reports (top-k only where
    k < classes; all when unknown), as nan."""
    reported = [k for k in DEFAULT_TOLERANCES if k.startswith("test_") and (classes is None or not k.startswith("test_top") or int(k.removeprefix("test_top")) < classes)]
    return dict.fromkeys(reported, NOT_A_NUMBER)


def run_of(record: RunResult) -> Run:
    if record.ok:
        metrics = {k: _number(v) for k, v in record.test.items() if k in DEFAULT_TOLERANCES}
    else:
        metrics = _not_numbers(len(record.data.get("classes") or ()) or None)
    if record.steady_images_per_s is not None:
        metrics["steady_images_per_s"] = record.steady_images_per_s
    context = {k: str(record.environment[k]) for k in CONTEXT_KEYS if record.environment.get(k) is not None}
    context["fingerprint"] = record.fingerprint
    if record.loader:  # pixels come from the decoded cache or the files: results move by seed noise, speed does not
        cache = record.loader.get("decode_cache")
        context["decode_cache"] = f"shorter side {cache['short_side']}" if cache else "off"
        context["workers"] = str(record.loader.get("workers"))
    return Run(metrics, context)


class GateError(ValueError):
    """The gate cannot decide: a side is empty, unreadable or of the wrong kind, or nothing is in common."""


def parse_metrics(text: str | None) -> list[str] | None:
    """`--metrics acc,images_per_s`: the gated metrics, by their names or short names (None: all)."""
    if text is None:
        return None
    names = [ALIASES.get(name.strip(), name.strip()) for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DEFAULT_TOLERANCES]
    if unknown or not names:
        raise ValueError(f"--metrics {text!r}: {', '.join(unknown) or 'no name'} is not a gated metric; give a comma-separated list of {', '.join(sorted(ALIASES))}")
    return names


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
        info = bench.get("extra_info", {}) if isinstance(bench, dict) else {}
        case = info.get("spec_id")
        if case and info.get("recipe"):
            case = f"{case}@{info['recipe']}"
        if case:
            context = info.get("context") if isinstance(info.get("context"), dict) else {}
            metrics = {ALIASES.get(k, k): _number(v) for k, v in info.items() if ALIASES.get(k, k) in DEFAULT_TOLERANCES}
            if info.get("status", "ok") != "ok":
                metrics.update(_not_numbers(info.get("classes")))
            out[case].append(Run(metrics, context))
    if data["benchmarks"] and not out:
        raise GateError(
            f"{path} holds {len(data['benchmarks'])} pytest-benchmark result(s) (version {data.get('version', 'not given')}) without trainbench's fields "
            "(extra_info.spec_id and the test metrics): another tool's or another suite's output; give the --benchmark-json of a trainbench session or a results folder"
        )
    return dict(out)


def _from_records(folder: Path) -> Observations:
    out: Observations = defaultdict(list)
    try:
        records = load_all(folder)
    except RecordError as error:
        raise GateError(str(error)) from None
    for record in records:
        out[record.gate_key].append(run_of(record))
    return dict(out)


def observations(path: Path) -> Observations:
    """Per-case metrics from a results folder (or a nightly's folder), or from a pytest-benchmark JSON file (or a folder of them)."""
    path = Path(path)
    if path.is_file():
        return _from_benchmark_json(path)
    if not path.is_dir():
        raise GateError(f"{path} does not exist; give a results folder or a pytest-benchmark JSON file")
    found = _from_records(path)
    if not found and (path / "records").is_dir():  # a nightly's folder: its records are one level down
        found = _from_records(path / "records")
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
    baseline: float  # mean over the baseline's runs of the case
    current: float
    allowed: float
    basis: str  # what set the allowed move: "tolerance" or "2 x pooled std"
    runs: tuple[int, int]
    regressed: bool
    changed: str = ""  # what differs between the sides' environments, for a regression


@dataclass
class Comparison:
    verdicts: list[Verdict]
    missing: list[str]
    new: list[str]
    runs_per_case: tuple[str, str]  # baseline, current: "1" or "1-3"
    uncompared: list[str] = field(default_factory=list)  # "case metric (missing in current)": gated, on one side only

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regressed]

    @property
    def undecided(self) -> bool:
        """A gated metric could not be compared on some case: neither a pass nor a regression."""
        return bool(self.uncompared)

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.undecided

    def table(self) -> Table:
        rows = tuple(
            (v.case, v.metric, _shown(v.baseline), _shown(v.current), _shown(v.current - v.baseline, "+.4f"), _shown(v.allowed), v.basis,
             f"{v.runs[0]}/{v.runs[1]}", "REGRESSED" if v.regressed else "ok", v.changed if v.regressed else "")
            for v in self.verdicts
        )  # fmt: skip
        columns = ("case", "metric", "baseline", "current", "change", "allowed move", "allowed by", "runs (base/cur)", "verdict", "changed between sides")
        return Table("Baseline vs current", columns, rows)

    def render(self) -> str:
        cases, metrics = {v.case for v in self.verdicts}, {v.metric for v in self.verdicts}
        lines = [
            f"Compared {len(cases)} case(s), {len(metrics)} metric(s): {len(self.verdicts)} checks; "
            f"runs per case: baseline {self.runs_per_case[0]}, current {self.runs_per_case[1]}",
        ]
        if all(v.runs == (1, 1) for v in self.verdicts):
            lines.append("One run per side: the stated tolerances alone decide (no spread to measure noise with; repeat cases with --seeds N).")
        lines += [
            "",
            self.table().markdown(),
            "Missing from current (in baseline only): " + (", ".join(self.missing) or "none"),
            "New in current (no baseline): " + (", ".join(self.new) or "none"),
        ]
        if self.uncompared:
            lines.append("Not compared, a gated metric on one side only: " + ", ".join(self.uncompared))
        if self.regressions:
            lines.append(f"FAIL: {len(self.regressions)} regression(s): " + ", ".join(f"{v.case} {v.metric}" for v in self.regressions))
        elif self.undecided:
            lines.append(f"UNDECIDED: {len(self.uncompared)} gated metric(s) missing on one side; fix the side that lacks them, or gate fewer metrics with --metrics")
        else:
            lines.append("PASS: no regression")
        return "\n".join(lines)


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


def allowed_move(tol: Tolerance, base_values: Sequence[float], cur_values: Sequence[float]) -> tuple[float, str]:
    """The larger of the stated tolerance and SPREAD_FACTOR standard errors of the difference of the
    two means (the pooled standard deviation of the repeats x sqrt(1/n1 + 1/n2), when either side has
    repeats), and which one it was. More seeds narrow it: the gate sees smaller regressions."""
    base = statistics.fmean(base_values)
    stated = tol.value * abs(base) if tol.relative else tol.value
    spread = pooled_std([base_values, cur_values])
    if spread is not None:
        noise = SPREAD_FACTOR * spread * math.sqrt(1 / len(base_values) + 1 / len(cur_values))
        if noise > stated:
            return noise, f"{SPREAD_FACTOR:g} x std error"
    return stated, "tolerance"


def compare(
    baseline: Mapping[str, list[Run]],
    current: Mapping[str, list[Run]],
    tolerances: Mapping[str, Tolerance] | None = None,
    labels: tuple[str, str] = ("baseline", "current"),
    metrics: Sequence[str] | None = None,
) -> Comparison:
    """Verdicts per common case and metric (only `metrics` when given: the gate narrowed on
    purpose); a GateError when there is nothing to decide on."""
    tolerances = tolerances or DEFAULT_TOLERANCES
    if metrics is not None:
        tolerances = {m: tolerances[m] for m in metrics}
    uncompared = []
    sides = f"{labels[0]}: {describe(baseline)}; {labels[1]}: {describe(current)}"
    common = set(baseline) & set(current)
    if not baseline or not current or not common:
        raise GateError(f"nothing to compare, no case in common: {sides}")
    verdicts = []
    for case in sorted(common):
        changed = context_changes(baseline[case], current[case])
        for metric, tol in tolerances.items():
            base_values = [run.metrics[metric] for run in baseline[case] if metric in run.metrics]
            cur_values = [run.metrics[metric] for run in current[case] if metric in run.metrics]
            if not base_values or not cur_values:
                if base_values or cur_values:  # one side has it: the other lacks what the gate must compare
                    uncompared.append(f"{case} {metric} (missing in {labels[1] if base_values else labels[0]})")
                continue
            runs = (len(base_values), len(cur_values))
            if not all(math.isfinite(v) for v in (*base_values, *cur_values)):
                verdicts.append(Verdict(case, metric, _mean(base_values), _mean(cur_values), NOT_A_NUMBER, "non-finite value", runs, True, changed))
                continue
            base, cur = statistics.fmean(base_values), statistics.fmean(cur_values)
            allowed, basis = allowed_move(tol, base_values, cur_values)
            worse_by = (base - cur) if tol.higher_is_better else (cur - base)
            verdicts.append(Verdict(case, metric, base, cur, allowed, basis, runs, worse_by > allowed + 1e-12, changed))
    if not verdicts:
        raise GateError(f"nothing to compare, no metric in common for the common cases: {sides}")
    runs = (_runs_per_case(baseline, common), _runs_per_case(current, common))
    return Comparison(verdicts, sorted(set(baseline) - set(current)), sorted(set(current) - set(baseline)), runs, uncompared)


def _mean(values: Sequence[float]) -> float:
    """The mean of the finite values (nan when none is): what a side shows beside a non-finite verdict."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else NOT_A_NUMBER


def compare_paths(baseline: Path, current: Path, tolerances: Mapping[str, Tolerance] | None = None, metrics: Sequence[str] | None = None) -> Comparison:
    return compare(observations(baseline), observations(current), tolerances, labels=(f"baseline {baseline}", f"current {current}"), metrics=metrics)
