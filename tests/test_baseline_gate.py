"""`pytest --baseline`: a benchmark session whose runs regressed against the baseline fails."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

# What a benchmark session imports as it trains and reports, imported here rather than first inside one: pytester
# takes away the modules an in-process session imported when it ends, and torch and matplotlib cannot be imported
# a second time into one process.
from harness import launch  # noqa: F401
from harness.results import report  # noqa: F401
from harness.settings import REPO_ROOT
from tests.conftest import tiny_spec

pytest_plugins = ["pytester"]

BENCHMARK = """
from tests.conftest import tiny_spec, make_image_folder

def test_tiny(run_book, tmp_path_factory, benchmark):
    folder = make_image_folder(tmp_path_factory.mktemp("d"), {k: 8 for k in "abcd"})
    run_book.settings = run_book.settings.replace(data_root=folder)
    record = benchmark.pedantic(run_book.get, args=(tiny_spec(),), rounds=1, iterations=1)
    assert record.test["test_acc"] >= 0
"""


TINY_ID = "test_efficientnet-tiny-poutyne-32true-1dev-random"


def write_baseline(path, spec_id: str, test_acc: float):
    info = {"spec_id": spec_id, "recipe": tiny_spec().recipe_fingerprint, "test_acc": test_acc}
    path.write_text(json.dumps({"benchmarks": [{"extra_info": info}]}))
    return path


def gate_session(results, baseline, narrowed: bool, *more: str) -> list[str]:
    """The pytest arguments of a benchmark session gated against `baseline`."""
    gate = ["--gate-metrics", "acc"] if narrowed else []
    return [
        "-p",
        "no:cacheprovider",
        "--wandb",
        "off",
        "--results-dir",
        str(results),
        "--baseline",
        str(baseline),
        *gate,
        *more,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[pytest.RunResult, Path]:
    """One real `pytest` session, in a process of its own (as `pytester.runpytest_subprocess` starts one), that trains
    the tiny case and gates it against a baseline it matches: its result, and the results folder it leaves."""
    folder = tmp_path_factory.mktemp("gate")
    (folder / "conftest.py").write_text((REPO_ROOT / "conftest.py").read_text())
    (folder / "test_tiny.py").write_text(BENCHMARK)
    baseline = write_baseline(folder / "baseline.json", TINY_ID, 0.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *gate_session(folder / "r", baseline, True), f"--basetemp={folder / 'tmp'}"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO_ROOT), "HOME": str(folder)},
        timeout=600,
    )
    outcome = pytest.RunResult(
        done.returncode, done.stdout.splitlines(), done.stderr.splitlines(), time.perf_counter() - start
    )
    return outcome, folder / "r"


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec_id, baseline_acc, verdict, narrowed",
    [
        (TINY_ID, 0.0, "pass", True),
        (TINY_ID, 1.0, "REGRESSION", True),
        ("another-case", 0.0, "ERROR", True),  # nothing in common: the gate never passes on nothing
        (TINY_ID, 0.0, "UNDECIDED", False),  # the baseline has accuracy only: the rest is not compared
    ],
)
def test_session_fails_on_regression_or_nothing_to_compare(pytester, trained, spec_id, baseline_acc, verdict, narrowed):
    """pass: the module's real session (`trained`, a pytest process that trains the case, then gates it). The other
    decisions: a pytest session each, in this process, over a copy of its results folder with --resume, so the case
    is its trained record rather than a second training; the gate is the same sessionfinish over the session's
    records."""
    result, results = trained
    if verdict != "pass":
        pytester.makeconftest((REPO_ROOT / "conftest.py").read_text())
        pytester.makepyfile(test_tiny=BENCHMARK)
        baseline = write_baseline(pytester.path / "baseline.json", spec_id, baseline_acc)
        copy = shutil.copytree(results, pytester.path / "r")
        resume = ["--resume", "--checkpoint-dir", str(pytester.path / "checkpoints")]
        result = pytester.runpytest_inprocess(*gate_session(copy, baseline, narrowed, *resume))
        assert len(list(copy.glob("*/result.json"))) == 1, "the trained record, not a second run"
    result.stdout.fnmatch_lines([f"*regression gate: {verdict}*"])
    if verdict == "UNDECIDED":
        result.stdout.fnmatch_lines(
            ["*test_loss (missing in baseline*", "*UNDECIDED: 4 gated metric(s) missing on one side*"]
        )
    if verdict == "ERROR":
        result.stdout.fnmatch_lines(["*no case in common*another-case@*this session: 1 case(s), 1 run(s)*"])
    assert result.ret == (0 if verdict == "pass" else 1)
    result.assert_outcomes(passed=1)


SEEDED_BENCHMARK = """
import pytest
from harness.pytest_plugin import record_in_benchmark, repeat_id, repeats
from tests.conftest import make_image_folder, tiny_spec


def pytest_generate_tests(metafunc):
    # learns the shapes: seeds spread ~2.5 points (92.5, 95, 97.5 %)
    specs = repeats(metafunc.config, tiny_spec().with_recipe(epochs=6, lr=2e-3))
    metafunc.parametrize("spec", [pytest.param(s, id=repeat_id(s, metafunc.config)) for s in specs])


def test_tiny(spec, run_book, tmp_path_factory, benchmark):
    folder = tmp_path_factory.getbasetemp() / "data"
    if not folder.exists():
        make_image_folder(folder, {k: 40 for k in "abcd"})  # 40 test images: one image is 2.5 points
    run_book.settings = run_book.settings.replace(data_root=folder)
    record = benchmark.pedantic(run_book.get, args=(spec,), rounds=1, iterations=1)
    record_in_benchmark(benchmark, record)
"""


@pytest.mark.slow
@pytest.mark.heavy  # the session gate on real sessions runs in make test: test_session_fails_on_regression_...
def test_two_sessions_of_identical_code_pass_the_gate_and_ten_points_less_accuracy_fails(pytester, monkeypatch):
    """Two real pytest sessions with --seeds 3 compared by `harness compare`: identical code passes
    (seeds reproduce every metric exactly); the same records with test accuracy lowered by 10 points
    fail, beyond two standard errors of the seeds' spread."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makeconftest((REPO_ROOT / "conftest.py").read_text())
    pytester.makepyfile(test_tiny=SEEDED_BENCHMARK)
    folders = []
    for night in ("first", "second"):
        folders.append(pytester.path / night)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--wandb", "off", "--seeds", "3", "--results-dir", str(folders[-1]), "-v"
        )
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines(["*test_tiny*-s42*PASSED*", "*test_tiny*-s44*PASSED*", "*Cases over seeds*"])
    # Speed is not asserted between two sessions of a shared 2-core machine (sub-second epochs moved
    # 20 % between sessions with nothing changed): accuracy, F1, top-k and loss decide here.
    compare = [sys.executable, "-m", "harness", "compare", str(folders[0]), str(folders[1]), "--tolerance", "speed=1.0"]
    same = subprocess.run(compare, cwd=REPO_ROOT, capture_output=True, text=True)
    assert same.returncode == 0 and "runs per case: baseline 3, current 3" in same.stdout, same.stdout + same.stderr
    for path in folders[1].glob("*/result.json"):
        edited = json.loads(path.read_text())
        edited["test"]["test_acc"] -= 0.10
        path.write_text(json.dumps(edited))
    worse = subprocess.run(compare, cwd=REPO_ROOT, capture_output=True, text=True)
    assert (
        worse.returncode == 1
        and "FAIL: 1 regression(s)" in worse.stdout
        and "test_acc" in worse.stdout.split("FAIL:")[1]
    ), worse.stdout
