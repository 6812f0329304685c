"""What the gate and the trend read: per case, one `Run` (metrics and context) per run, from a
results folder (records), a nightly's folder, or pytest-benchmark JSON (whose `extra_info` carries
each case's metrics).

Runs are keyed by case id and recipe fingerprint (`case@1a2b3c4d`, the seed left out). A diverged
run counts as nan in every gated metric it would report; null (JSON's spelling of a non-finite
value) reads as nan. pytest-benchmark JSON is read by the fields trainbench writes into
`extra_info` (`spec_id`, `recipe`, `status`, the test metrics, `steady_images_per_s` and
`joules_per_image`, or their short names: acc, f1, top3, top5, loss, images_per_s, j_per_image); a
file with none of them is refused in one line. A record's custom metrics (spec.metrics) are read
with their direction, which the record states.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import GateError, RecordError
from harness.results.mlflow_runs import in_artifact_store
from harness.results.record import RESULT_FILE, RunResult, load_all

GATED_METRICS: tuple[str, ...] = (
    "test_acc",
    "test_f1",
    "test_top3",
    "test_top5",
    "test_loss",
    "steady_images_per_s",
    "joules_per_image",
)
TIMED_METRICS: tuple[str, ...] = (
    "steady_images_per_s",
    "joules_per_image",
)  # measured on a clock: they vary between runs of one seed, with the machine's load
ALIASES = {
    "acc": "test_acc",
    "f1": "test_f1",
    "top3": "test_top3",
    "top5": "test_top5",
    "loss": "test_loss",
    "images_per_s": "steady_images_per_s",
    "speed": "steady_images_per_s",
    "j_per_image": "joules_per_image",
    "energy": "joules_per_image",
}
CONTEXT_KEYS = (
    "project_commit",
    "git_commit",
    "device",
    "torch",
    "cuda",
    "timm",
    "lightning",
    "poutyne",
    "torchmetrics",
    "albumentations",
)


@dataclass(frozen=True)
class Run:
    """One run as the gate sees it: its metrics, and the context it ran in (environment, fingerprint)."""

    metrics: dict[str, float]
    context: dict[str, str] = field(default_factory=dict)
    seed: int | None = None  # the recipe's seed (None where not given): a seed's runs pair up (results.noise)
    directions: dict[str, bool] = field(default_factory=dict)  # custom metric (test_<name>) -> higher is better


Observations = dict[str, list[Run]]  # case@recipe -> one Run per run


NOT_A_NUMBER = float("nan")


def _number(value: float | None) -> float:
    """A metric as the gate reads it: null (JSON's spelling of a non-finite value) becomes nan."""
    return NOT_A_NUMBER if value is None else float(value)


def _not_numbers(classes: int | None) -> dict[str, float]:
    """A diverged run's test metrics: each one a run over `classes` classes reports (top-k only where
    k < classes; all when unknown), as nan."""
    reported = [
        k
        for k in GATED_METRICS
        if k.startswith("test_")
        and (classes is None or not k.startswith("test_top") or int(k.removeprefix("test_top")) < classes)
    ]
    return dict.fromkeys(reported, NOT_A_NUMBER)


def run_of(record: RunResult) -> Run:
    directions = {f"test_{m['name']}": bool(m["higher_is_better"]) for m in record.spec.get("metrics", ())}
    if record.ok:
        metrics = {k: _number(v) for k, v in record.test.items() if k in GATED_METRICS or k in directions}
    else:
        metrics = _not_numbers(len(record.data.get("classes") or ()) or None) | dict.fromkeys(directions, NOT_A_NUMBER)
    if record.steady_images_per_s is not None:
        metrics["steady_images_per_s"] = record.steady_images_per_s
    joules_per_image = (record.energy or {}).get("joules_per_image")
    if joules_per_image is not None:
        metrics["joules_per_image"] = joules_per_image
    context = {k: str(record.environment[k]) for k in CONTEXT_KEYS if record.environment.get(k) is not None}
    context["fingerprint"] = record.fingerprint
    if record.loader:  # pixels come from the decoded cache or the files: results move by seed noise, speed does not
        cache = record.loader.get("decode_cache")
        context["decode_cache"] = f"shorter side {cache['short_side']}" if cache else "off"
        context["workers"] = str(record.loader.get("workers"))
    return Run(metrics, context, record.spec["recipe"].get("seed"), directions)


def _metric(value: object, where: str) -> float:
    """A metric from pytest-benchmark JSON: a number, or null (nan); anything else a GateError naming `where`."""
    if value is None:
        return NOT_A_NUMBER
    if type(value) is bool or not isinstance(value, (int, float)):
        raise GateError(f"{where} is {value!r}, not a number; write a number or null")
    return _number(value)


def _benchmark_runs(bench: dict[str, Any], where: str) -> tuple[str, Run] | None:
    """The case and its run from one pytest-benchmark result (None: none of trainbench's fields)."""
    info = bench.get("extra_info")
    if info is not None and not isinstance(info, dict):
        kind = type(info).__name__
        raise GateError(f"{where} field extra_info is a {kind}, not an object; write an object of its fields or null")
    info = info or {}
    case = info.get("spec_id")
    if not case:
        return None
    if info.get("recipe"):
        case = f"{case}@{info['recipe']}"
    context = info.get("context")
    if not isinstance(context, dict):
        context = {}
    stated = info.get("metric_directions")  # a case's own metrics: {"test_auroc": "higher"}, as the plugin writes
    directions = {k: v == "higher" for k, v in stated.items()} if isinstance(stated, dict) else {}
    gated = {k: v for k, v in info.items() if ALIASES.get(k, k) in GATED_METRICS or k in directions}
    metrics = {ALIASES.get(k, k): _metric(v, f"{where} field extra_info.{k}") for k, v in gated.items()}
    if info.get("status", "ok") != "ok":
        classes = info.get("classes")
        if classes is not None and type(classes) is not int:
            what = f"{where} field extra_info.classes is {classes!r}"
            raise GateError(f"{what}, not a whole number; write the number of classes or null")
        metrics.update(_not_numbers(classes) | dict.fromkeys(directions, NOT_A_NUMBER))
    seed = info.get("seed") if type(info.get("seed")) is int else None
    return str(case), Run(metrics, context, seed, directions)


def _from_benchmark_json(path: Path) -> Observations:
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GateError(
            f"{path} is not a pytest-benchmark JSON file ({type(error).__name__}: {error}); give a results folder or"
            " --benchmark-json output"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise GateError(
            f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list); give a results folder or"
            " --benchmark-json output"
        )
    out: Observations = defaultdict(list)
    benchmarks = [bench for bench in data["benchmarks"] if isinstance(bench, dict)]
    for number, bench in enumerate(benchmarks):
        name = bench.get("fullname") or bench.get("name") or f"#{number + 1}"
        found = _benchmark_runs(bench, f"{path}: benchmark {name!r}")
        if found:
            out[found[0]].append(found[1])
    if data["benchmarks"] and not out:
        empty = sum(bench.get("extra_info") is None for bench in benchmarks)
        held = f"{len(data['benchmarks'])} pytest-benchmark result(s) (version {data.get('version', 'not given')})"
        nulls = f'; {empty} with "extra_info": null, no metrics recorded' if empty else ""
        fields = f"extra_info.spec_id and the test metrics{nulls}"
        raise GateError(
            f"{path} holds {held} without trainbench's fields ({fields}): another tool's or another suite's output; "
            "give the --benchmark-json of a trainbench session or a results folder"
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
    """Per-case metrics from a results folder (or a nightly's folder), or from a pytest-benchmark JSON file
    (or a folder of them)."""
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
            if json_file.name != RESULT_FILE and not in_artifact_store(json_file, path):
                for case, runs in _from_benchmark_json(json_file).items():
                    found.setdefault(case, []).extend(runs)
    return found
