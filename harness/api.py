"""trainbench's public API for tests, scripts and notebooks: build a case, run it, assert on its record.

    from harness.api import BenchmarkSpec, Recipe, RunSettings, Split, Threshold, aug, run

    spec = BenchmarkSpec(
        model="resnet18",                  # a timm model name, or your own: "package.module:factory"
        dataset="flowers",                 # a generated dataset's name, "kvasir", or any name for --data-root's folder
        engine="lightning",                # or "poutyne"
        weights="random",                  # or "pretrained" (a local file, the hub cache, or a generated stand-in)
        precision="32-true",               # "bf16-mixed", "16-mixed" (Lightning's names)
        devices=1,                         # training processes (DDP when more than one)
        recipe=Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.05, batch_size=32, epochs=3, image_size=64,
                      workers=0, split=Split(0.7, 0.15, 0.15), train_augmentations=(aug("HorizontalFlip", p=0.5),)),
        thresholds=(Threshold("test_acc", "at_least", 0.5, why="above chance"),),
        metrics=(metric("auroc", "torchmetrics.classification:MulticlassAUROC"),),  # your own, gated by name
    )
    record = run(spec, RunSettings(data_root="data/flowers"))
    assert_thresholds(spec, record)

In a pytest session, the plugin's `run_book` fixture runs a spec once per session and records it in the session's
tables and pytest-benchmark JSON (`harness.pytest_plugin`). Everything outside this module and that plugin is
internal and may change between versions.
"""

from __future__ import annotations

from harness.results.record import RunResult
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, CustomMetric, Recipe, Split, Threshold, aug

__all__ = [
    "BenchmarkSpec",
    "Recipe",
    "RunResult",
    "RunSettings",
    "Split",
    "Threshold",
    "assert_thresholds",
    "aug",
    "metric",
    "run",
]


def run(spec: BenchmarkSpec, settings: RunSettings | None = None) -> RunResult:
    """Train and evaluate `spec` and return its record (also written to `settings.results_dir/<run id>/result.json`).

    One device trains in this process; several, or several nodes, in fresh processes started through trainbench's
    own entry point (never a fork of this one, so a notebook's kernel is safe). `settings` defaults to
    `RunSettings()`: results under `./results`, caches under `~/.cache/trainbench`, no tracking. Bad input
    (an unknown model, a missing dataset, a recipe the data cannot satisfy) raises a `harness.errors.HarnessError`
    naming the problem and its fix before any training; a run that fails while training returns a record whose
    `status` and `failure` say so (`record.ok` is False)."""
    from harness import launch

    return launch.run(spec, settings or RunSettings())


def metric(name: str, path: str) -> CustomMetric:
    """A metric of your own for `BenchmarkSpec(metrics=...)`: `path` (`package.module:attribute`) builds a
    torchmetrics `Metric` as `path(num_classes)`, updated with logits `(N, C)` and integer targets `(N,)` and
    computing one number, recorded as `train_<name>`, `val_<name>`, `test_<name>` and gated by `name`. Its direction
    is its class's `higher_is_better`. An `harness.errors.ExtensionError` names the fix when `path` does not import
    or says no direction."""
    from harness.metrics import custom_metric

    return custom_metric(name, path)


def assert_thresholds(spec: BenchmarkSpec, record: RunResult) -> None:
    """Raise AssertionError listing every threshold of `spec` the record missed, each with the value it got, or why
    the run did not finish."""
    if not record.ok:
        raise AssertionError(f"{spec.id}: {record.failure}")
    failed = spec.missed(record.test)
    if failed:  # raised, not asserted: `python -O` keeps the check
        raise AssertionError(f"{spec.id} missed its thresholds: " + "; ".join(failed))
