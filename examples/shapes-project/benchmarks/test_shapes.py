"""This project's benchmarks: a small timm model on its shapes dataset, trained through trainbench.

A 2 learning rates x 2 precisions matrix in one process, and one case on 2 processes (DDP) of this project's own
model and metric (`shapes_project`, by import path) with a warm-up + cosine schedule; each holds a threshold on test
accuracy, and `--trainbench-seeds N` runs each with N seeds. The data root comes from the session
(`--trainbench-data-root data/shapes` or TRAINBENCH_DATA_ROOT).
"""

from __future__ import annotations

import pytest

from harness.api import BenchmarkSpec, Recipe, Split, Threshold, assert_thresholds, aug, metric
from harness.pytest_plugin import parametrize, record_in_benchmark

LR = 3e-3
RECIPE = Recipe(
    optimizer="adam",
    lr=LR,
    weight_decay=0.0,
    batch_size=8,
    epochs=4,
    image_size=32,
    workers=0,
    split=Split(0.5, 0.25, 0.25),
    train_augmentations=(aug("HorizontalFlip", p=0.5),),
)
BASE = BenchmarkSpec(
    model="test_efficientnet",  # timm's smallest EfficientNet, made for tests
    dataset="shapes",
    engine="lightning",
    weights="random",
    precision="32-true",
    devices=1,
    recipe=RECIPE,
    thresholds=(Threshold("test_acc", "at_least", 0.4, why="above chance (0.25 for 4 shapes)"),),
)
MATRIX = [BASE.replace(precision=p).with_recipe(lr=x * LR) for x in (1, 2) for p in ("32-true", "bf16-mixed")]
OWN = BASE.replace(
    model="shapes_project.nets:tiny_convnet",  # not in timm: (num_classes) -> nn.Module
    devices=2,
    metrics=(metric("balanced_acc", "shapes_project.metrics:BalancedAccuracy"),),  # gated by name, as acc is
).with_recipe(scheduler="cosine", warmup_epochs=1)
CASES = [*MATRIX, OWN]
IDS = [f"{s.id}-lr{s.recipe.lr / LR:g}x" for s in CASES]  # test_efficientnet-shapes-lightning-32true-1dev-random-lr1x


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "spec" in metafunc.fixturenames:  # each case once per seed of the session (--trainbench-seeds N)
        parametrize(metafunc, CASES, IDS)


def test_shapes(spec, run_book, benchmark):
    record = benchmark.pedantic(run_book.get, args=(spec,), rounds=1, iterations=1)
    record_in_benchmark(benchmark, record)
    assert_thresholds(spec, record)
