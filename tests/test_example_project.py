"""examples/shapes-project as a user meets it: copied outside this checkout, a git repository of its own, trainbench
installed from its built wheel into a fresh virtual environment (this environment's packages beneath it), no
conftest and no PYTHONPATH. Two pytest sessions with the gate between them, the nightly's dry run, and a bisect
that names the commit of the project's history that wrecked its learning rate. Nothing is written under the
installed package."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness.results.record import RunResult
from harness.settings import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # a wheel, a venv, two sessions and a bisect: 5 minutes here

EXAMPLE = REPO_ROOT / "examples" / "shapes-project"
CASE = "lightning-32true-1dev-random-lr1x"
TIMEOUT_S = 900


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def git(project: Path, *args: str) -> str:
    identity = ["-c", "user.name=u", "-c", "user.email=u@example.com"]
    return subprocess.run(
        ["git", "-C", str(project), *identity, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv holding trainbench's wheel (built from a copy of the sources), over this environment's
    packages; its python and its site-packages."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(REPO_ROOT / "harness", source / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp), "."],
        source,
        env,
    )
    (wheel,) = tmp.glob("trainbench-*.whl")
    run([sys.executable, "-m", "venv", str(tmp / "venv")], tmp, env)
    python = tmp / "venv" / "bin" / "python"
    (installed,) = (tmp / "venv" / "lib").glob("python*/site-packages")
    (installed / "this-environments-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp, env)
    return python, installed


def test_a_users_repository_runs_gates_plans_and_bisects_its_own_benchmarks(venv, tmp_path):
    python, installed = venv
    before = files_under(installed)
    project = tmp_path / "shapes-project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "data", "results"))
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-qm", "shapes benchmarks")
    good = git(project, "rev-parse", "HEAD")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRAINBENCH_", "PYTHONPATH", "VIRTUAL_ENV"))},
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
        "TRAINBENCH_CACHE_DIR": str(tmp_path / "cache"),
        "TRAINBENCH_WANDB": "off",
        "TRAINBENCH_MLFLOW": "off",
    }
    run([str(python), "make_data.py", "data/shapes"], project, env)
    session = [str(python), "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "--trainbench-data-root"]

    first = run([*session, "data/shapes", "-rs", "--benchmark-json=results/benchmark.json"], project, env)
    assert "trainbench summary" in first.stdout, first.stdout[-3000:]
    records = [RunResult.load(p) for p in sorted((project / "results").glob("*/result.json"))]
    reasons = [line for line in first.stdout.splitlines() if line.startswith("SKIPPED")]
    skipped = int(match.group(1)) if (match := re.search(r"(\d+) skipped", first.stdout)) else 0
    # bf16 where this CPU computes it (on a CPU without bf16 units the matrix skips it, saying why)
    # 5 cases of test_shapes.py and 2 of own_model.trainbench.yaml, an experiment file
    assert len(records) + skipped == 7 and all("bf16" in line for line in reasons), first.stdout[-3000:]
    assert f"{len(records)} passed" in first.stdout and {r.spec["devices"] for r in records} == {1, 2}
    own = [r for r in records if r.spec["model"] == "shapes_project.nets:tiny_convnet"]  # the project's own model
    assert len(own) == 3 and {r.spec["benchmark"] for r in own} == {"adhoc", "own_model"}
    assert all(0 <= r.test["test_balanced_acc"] <= 1 and r.spec["recipe"]["scheduler"] == "cosine" for r in own)
    for record in records:
        assert record.environment["project_commit"] == good and record.environment["project"] == "shapes-project"
        assert record.environment["trainbench"] == harness.__version__
        assert record.environment["git_commit"] is None  # a wheel: no trainbench checkout to name
    assert json.loads((project / "results" / "benchmark.json").read_text())["benchmarks"]

    # speed: a shared CPU's; balanced_acc: the project's own metric, gated by its name
    gate = ["--trainbench-baseline", "results", "--trainbench-gate-metrics", "acc,loss,balanced_acc"]
    second = run([*session, "data/shapes", "--trainbench-results-dir", "tonight", *gate], project, env)
    assert "regression gate: pass" in second.stdout and "test_balanced_acc" in second.stdout, second.stdout[-3000:]

    plan = run(["trainbench", "nightly", "--dry-run", "--tests", "benchmarks"], project, env)
    assert "nightly: 7 case(s), smoke profile" in plan.stdout, plan.stdout
    assert not (project / "results" / "nightly").exists(), "--dry-run writes nothing"

    (project / "README.md").write_text((project / "README.md").read_text() + "\nA note.\n")
    git(project, "commit", "-qam", "README: a note")
    test_file = project / "benchmarks" / "test_shapes.py"
    test_file.write_text(test_file.read_text().replace("LR = 3e-3", "LR = 3.0"))
    git(project, "commit", "-qam", "recipe: lr 3.0")
    wrecked = git(project, "rev-parse", "HEAD")
    (project / "make_data.py").write_text((project / "make_data.py").read_text() + "\n")
    git(project, "commit", "-qam", "make_data: a blank line")
    data = str(project / "data" / "shapes")  # every revision's worktree reads the one dataset
    bisect = ["trainbench", "bisect", "--good", good, "-k", CASE, "--out", str(tmp_path / "bisect")]
    found = run([*bisect, "--", "--trainbench-data-root", data], project, env)
    outcome = json.loads((tmp_path / "bisect" / "bisect.json").read_text())
    assert outcome["outcome"] == "culprit" and outcome["first_bad"]["sha"] == wrecked, found.stdout[-3000:]
    assert outcome["first_bad"]["files"] == ["benchmarks/test_shapes.py"]

    assert files_under(installed) == before, "something was written under the installed package"
