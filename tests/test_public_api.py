"""The public surface: `harness.api` (build a case, run it, assert on its record) and the pytest plugin that the
installed package registers (`pytest11`), used from a project that has no conftest and no trainbench checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import harness
from harness import api
from harness.cluster.plan import spelled_options
from harness.pytest_plugin import PREFIX, plugin_options
from harness.results.record import RunResult
from harness.settings import REPO_ROOT, Environment, RunSettings
from tests.conftest import make_image_folder, tiny_spec


def test_the_public_names_are_few_and_each_is_documented():
    page = (REPO_ROOT / "docs" / "your-own-benchmarks.md").read_text()
    assert len(api.__all__) <= 10 and {"BenchmarkSpec", "run", "assert_thresholds"} <= set(api.__all__)
    for name in api.__all__:
        assert getattr(api, name).__doc__, f"harness.api.{name} has no docstring"
        assert f"`{name}`" in page or f"`harness.api.{name}" in page, f"{name} is not in docs/your-own-benchmarks.md"


def test_the_plugin_is_registered_by_the_installed_package_and_every_option_carries_the_prefix():
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "trainbench"]
    assert plugin.value == "harness.pytest_plugin"
    names = [name for name, _ in plugin_options(Environment())]
    assert len(names) == len(set(names)) and "profile" in names and "results-dir" in names
    assert all(kwargs["dest"].startswith("trainbench_") for _, kwargs in plugin_options(Environment()))
    assert PREFIX == "--trainbench-"


def test_results_default_to_the_working_directory_never_the_install_location(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert RunSettings().results_dir == tmp_path / "results"


def test_a_revision_from_before_the_plugin_is_spelled_as_it_was(tmp_path):
    """bisect meets trainbench's older history, whose conftest spelled the options `--profile`; the installed
    plugin would import that revision's `harness`, which has no `pytest_plugin`. A project of its own `harness/`
    is not trainbench."""
    old, new, project = tmp_path / "old", tmp_path / "new", tmp_path / "project"
    for folder in (old, new, project):
        (folder / "harness").mkdir(parents=True)
    for folder in (old, new):
        (folder / "pyproject.toml").write_text('[project]\nname = "trainbench"\n')
    (new / "harness" / "pytest_plugin.py").touch()
    passed = ("--trainbench-data-root", "/d", "-k", "x")
    assert spelled_options(old, *passed, profile="smoke", seeds=2) == [
        *("--profile", "smoke", "--seeds", "2", "-p", "no:trainbench"),
        *("--data-root", "/d", "-k", "x"),
    ]
    assert spelled_options(new, results_dir="r") == ["--trainbench-results-dir", "r"]
    assert spelled_options(project, *passed, profile="full") == ["--trainbench-profile", "full", *passed]


@pytest.mark.slow
def test_run_returns_the_record_and_assert_thresholds_names_each_miss(tiny_folder, tmp_path):
    spec = tiny_spec(thresholds=(api.Threshold("test_acc", "at_least", 1.01, why="impossible"),))
    record = api.run(spec, RunSettings(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", data_root=tiny_folder))
    assert record.ok and set(record.test) >= {"test_acc", "test_loss"}
    assert (tmp_path / "r" / record.run_id / "result.json").is_file()
    with pytest.raises(AssertionError, match=r"missed its thresholds: test_acc .*1\.01.*: got 0\.\d{4}"):
        api.assert_thresholds(spec, record)


PROJECT_BENCHMARK = """
import pytest

from harness.api import assert_thresholds
from harness.pytest_plugin import record_in_benchmark
from tests.conftest import tiny_spec

SPECS = [tiny_spec().with_recipe(lr=lr) for lr in (1e-3, 2e-3)]


@pytest.mark.parametrize("spec", SPECS, ids=[f"lr{s.recipe.lr:g}" for s in SPECS])
def test_tiny(spec, run_book, benchmark):
    record = benchmark.pedantic(run_book.get, args=(spec,), rounds=1, iterations=1)
    record_in_benchmark(benchmark, record)
    assert_thresholds(spec, record)


def test_the_same_case_is_trained_once(run_book):
    assert run_book.get(SPECS[0]) is run_book.get(SPECS[0])
"""


@pytest.mark.slow
def test_a_project_with_no_conftest_runs_its_benchmarks_through_the_installed_plugin(tmp_path):
    project = tmp_path / "project"
    (project / "benchmarks").mkdir(parents=True)
    (project / "benchmarks" / "test_tiny.py").write_text(PROJECT_BENCHMARK)
    make_image_folder(project / "data", dict.fromkeys("abcdef", 12))
    git(project, "init", "-q")
    git(project, "add", "benchmarks")
    git(project, "-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "-qm", "benchmarks")
    repo_root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBENCH_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks",
            "-p",
            "no:cacheprovider",
            "--trainbench-data-root",
            "data",
            "--trainbench-wandb",
            "off",
            "--trainbench-mlflow",
            "off",
            "--trainbench-cache-dir",
            str(tmp_path / "cache"),
            "--benchmark-json=results/benchmark.json",
        ],
        cwd=project,
        env={**env, "PYTHONPATH": str(repo_root)},  # tests.conftest's tiny spec; the plugin comes from the install
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout and "trainbench summary" in done.stdout
    assert len(list((project / "results").glob("*/result.json"))) == 2, "each case trained once"
    assert (project / "results" / "summary.md").is_file() and (project / "results" / "benchmark.json").is_file()
    assert f"records and tables: {project / 'results'}" in done.stdout
    (record, _) = (RunResult.load(path) for path in (project / "results").glob("*/result.json"))
    assert record.environment["project"] == "project" and record.environment["project_dirty"] is False
    assert record.environment["project_commit"] == git(project, "rev-parse", "HEAD")  # the user's, not ours
    assert record.environment["git_commit"] == git(repo_root, "rev-parse", "HEAD")  # trainbench's, beside it
    assert record.environment["trainbench"] == harness.__version__
    summary = (project / "results" / "summary.md").read_text()
    assert f"- **project_commit**: {record.environment['project_commit']}" in summary


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()
