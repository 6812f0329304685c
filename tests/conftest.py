"""Small real inputs for the tests: generated ImageFolders and a tiny-model spec.

The runs here track nothing in MLflow unless a test asks (`--mlflow`, tests/test_mlflow.py): the
default `auto` would give every test's results folder a store of its own, about 2 s each."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.data.synthetic import render
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, Recipe, Split, aug

os.environ.setdefault("TRAINBENCH_MLFLOW", "off")  # inherited by the runs, launchers and servers the tests start

TINY_MODEL = "test_efficientnet"


def make_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (40, 40)) -> Path:
    """An ImageFolder with `classes[name]` real PNG images per class."""
    rng = np.random.default_rng(0)
    shapes = ("circle", "square", "triangle", "ring", "cross", "hbars", "star", "diamond")
    for k, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            render(shapes[k % len(shapes)], size, rng, hue=k / len(classes)).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "tiny", {"a": 12, "b": 12, "c": 12, "d": 12, "e": 12, "f": 12})


@pytest.fixture
def settings(tmp_path: Path) -> RunSettings:
    return RunSettings(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", weights_dir=tmp_path / "weights")


# Both engines, the second (Lightning) in the heavy tier: where both engines run the same path end to end
# (interrupts, uploads, resume, compile), `make test` runs it through Poutyne and `make test-heavy` through Lightning.
ENGINES_SECOND_HEAVY = ["poutyne", pytest.param("lightning", marks=pytest.mark.heavy)]


def tiny_spec(dataset: str = "tiny", **changes) -> BenchmarkSpec:
    recipe = Recipe(
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        batch_size=8,
        epochs=1,
        image_size=32,
        workers=0,
        split=Split(0.5, 0.25, 0.25),
        train_augmentations=(aug("HorizontalFlip", p=0.5),),
    )
    spec = BenchmarkSpec(
        model=TINY_MODEL,
        dataset=dataset,
        engine="poutyne",
        weights="random",
        precision="32-true",
        devices=1,
        recipe=recipe,
    )
    return spec.replace(**changes)
