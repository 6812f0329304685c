"""Small real inputs for the tests: generated ImageFolders and a tiny-model spec.

The runs here track nothing in MLflow unless a test asks (`--mlflow`, tests/test_mlflow.py): the
default `auto` would give every test's results folder a store of its own, about 2 s each."""

from __future__ import annotations

import io
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.data.synthetic import render
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, Recipe, Split, aug

os.environ.setdefault("TRAINBENCH_MLFLOW", "off")  # inherited by the runs, launchers and servers the tests start
# Under pytest-xdist (`make test` runs two workers), the pytest sessions a test starts are sessions of their own, not
# workers of this one: pytest-benchmark reads PYTEST_XDIST_WORKER, and where it finds it, it writes no JSON.
for _variable in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
    os.environ.pop(_variable, None)

TINY_MODEL = "test_efficientnet"


def harness_cli(*args: object) -> subprocess.CompletedProcess[str]:
    """`python -m harness ARGS` run in this process: the same `cli.main`, without an interpreter's start-up and
    imports (seconds each). Its exit status, standard output and standard error, as `subprocess.run` gives them.
    What a process of each command imports is checked in its own process (tests/test_cli.py)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(arg) for arg in args])
    return subprocess.CompletedProcess(["harness", *map(str, args)], code, out.getvalue(), err.getvalue())


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


# The longest tests of `make test` (`--durations`), started first: one of them left for the end keeps one worker busy
# long after the others have finished.
LONGEST_FIRST = (
    "tests/test_nightly_cluster.py::",
    "tests/test_bisect.py::test_bisect_names_the_commit_that_wrecked_accuracy",
    "tests/test_lightning_engine.py::test_two_nodes_on_loopback_equal_one_node_with_two_processes",
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the group (`--dist loadgroup`, make test)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first. Tests that share a module-scoped fixture (one trained session, one dry run, one
    server) run on one xdist worker, so it is made once; every other test goes to whichever worker is free."""
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable: the rest keep their order
    for item in items:
        infos = getattr(item, "_fixtureinfo", None)
        if infos and any(d.scope == "module" for defs in infos.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))
