"""Installable where GPUs are: compatible ranges in pyproject.toml, exact pins in constraints.txt,
and wandb / google-cloud-storage / Ray imported only when a run (or the nightly) uses them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from harness.settings import REPO_ROOT

# The GPU machines this project is lent have torch 2.11 + cu130, torchvision 0.26, lightning 2.6.6,
# torchmetrics 1.9.0, numpy 2.5.2 (DEVELOPERS.md): the harness must install beside them.
GPU_IMAGE = {
    "torch": "2.11.0",
    "torchvision": "0.26.0",
    "lightning": "2.6.6",
    "torchmetrics": "1.9.0",
    "numpy": "2.5.2",
    "safetensors": "0.8.0",
}


def _project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> dict[str, Requirement]:
    project = _project()
    listed = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {r.name: r for r in map(Requirement, listed) if r.name != "trainbench"}


def _pins() -> dict[str, Version]:
    lines = (
        line.split("#")[0].split(";")[0].strip() for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
    )
    return {name: Version(version) for name, _, version in (line.partition("==") for line in lines if line)}


def test_pyproject_states_ranges_and_constraints_pin_versions_inside_them():
    requirements, pins = _requirements(), _pins()
    exact = [str(r) for r in requirements.values() if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not exact, f"exact pins belong in constraints.txt, not pyproject.toml: {exact}"
    assert set(pins) == set(requirements), (
        f"constraints.txt and pyproject.toml name different packages: {set(pins) ^ set(requirements)}"
    )
    outside = {name: str(v) for name, v in pins.items() if v not in requirements[name].specifier}
    assert not outside, f"constraints.txt pins outside pyproject's ranges: {outside}"


def test_the_gpu_image_versions_satisfy_the_ranges():
    requirements = _requirements()
    refused = {
        name: f"{version} not in {requirements[name].specifier}"
        for name, version in GPU_IMAGE.items()
        if Version(version) not in requirements[name].specifier
    }
    assert not refused, f"pip would replace the GPU machine's packages: {refused}"


def test_wandb_gcs_and_ray_are_optional_extras():
    project = _project()
    core = {Requirement(r).name for r in project["dependencies"]}
    assert not core & {"wandb", "google-cloud-storage", "ray"}
    assert {"wandb", "gcs", "nightly"} <= set(project["optional-dependencies"])


def _python_without(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where wandb, google-cloud-storage and Ray cannot be imported."""
    blocked = "import sys\nfor name in ('wandb', 'google.cloud.storage', 'ray'):\n    sys.modules[name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", blocked + code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


HARNESS_MODULES = (
    "harness.cli, harness.runner, harness.engines.lightning_engine, harness.engines.poutyne_engine,"
    " harness.pytest_plugin, harness.nightly"
)


def test_the_trainbench_script_starts_as_python_m_harness_does():
    """Both take SIGTERM as the first Ctrl-C and track into a wandb service of their own (`process_main`; the
    killed-and-resumed test in test_mlflow runs `python -m harness`): the script once called `main`, which
    does neither."""
    from importlib import import_module

    from harness.cli import process_main

    module, _, attribute = _project()["scripts"]["trainbench"].partition(":")
    assert getattr(import_module(module), attribute) is process_main


@pytest.mark.slow
@pytest.mark.heavy  # make test: the commands that train nothing import no torch (tests/test_cli.py)
def test_the_harness_imports_without_wandb_gcs_or_ray():
    done = _python_without(f"import {HARNESS_MODULES}\nprint('imported')")
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr


@pytest.mark.slow
@pytest.mark.heavy
def test_gcs_is_not_imported_until_a_bucket_is_used():
    """(wandb cannot be held to this: timm.utils imports it whenever it is installed.)"""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {HARNESS_MODULES}\nprint([m for m in sys.modules if m.startswith('google.cloud.storage')])",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.slow
def test_without_wandb_or_gcs_auto_tracking_is_off_and_asking_for_either_is_refused(tiny_folder, tmp_path):
    """One interpreter without the extras: `auto` tracks nothing, `--wandb offline` and `--gcs-bucket` are each
    refused in one line (exit 2) before training."""

    def run(*options: str) -> str:
        argv = ["run", "--model", "test_efficientnet", "--data", str(tiny_folder), "--weights", "random", *options]
        return f"print('exit', cli.main({[*argv, '--results-dir', str(tmp_path / 'r')]!r}), flush=True)\n"

    done = _python_without(
        "import sys\nfrom harness import cli\nfrom harness.artifacts.tracking import resolve_mode\n"
        "print('auto ->', resolve_mode('auto'))\n"
        + run("--wandb", "offline")
        + "print('--', file=sys.stderr, flush=True)\n"
        + run("--wandb", "off", "--gcs-bucket", "gs://ckpt/run")
    )
    said = [line for line in done.stdout.splitlines() if not line.startswith("[trainbench]")]  # the start-up line
    assert said == ["auto -> off", "exit 2", "exit 2"], done.stdout + done.stderr
    wandb_error, gcs_error = (part.strip() for part in done.stderr.split("--\n"))
    assert (
        wandb_error
        == "error: --wandb offline needs wandb, which is not installed; pip install 'trainbench[wandb]' (or wandb), or"
        " give --wandb off"
    )
    assert gcs_error.startswith(
        "error: --gcs-bucket needs google-cloud-storage, which is not installed; pip install 'trainbench[gcs]'"
    ), gcs_error


@pytest.mark.slow
def test_without_ray_the_nightly_is_refused_before_anything_runs(tmp_path):
    done = _python_without(
        f"from harness import cli\nraise SystemExit(cli.main(['nightly', '--out', {str(tmp_path / 'n')!r}]))\n"
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stdout.strip()
        == "nightly: Ray is not installed, and the nightly and bisect --parallel run their cases as Ray tasks; pip"
        " install 'trainbench[nightly]' (or ray)"
    )
