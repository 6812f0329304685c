"""The pytest layer: options (each with a TRAINBENCH_* twin), the session's run book, the summary.

Benchmarks build specs, ask the run book for records and assert on them; the run book runs each
spec at most once per session (so the pretrained-vs-random comparison reuses the benchmark runs)
and writes the summary tables when the session ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.catalog import PROFILES
from harness.settings import ENV_VARS, RunSettings, default_cache_dir, env

pytest_plugins = ["benchmarks.plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trainbench")
    group.addoption("--profile", choices=PROFILES, default=env("profile", "smoke"), help=f"smoke (generated data, CPU sized) or full (the published recipe) [{ENV_VARS['profile']}]")
    group.addoption("--data-root", default=env("data_root"), help=f"folder holding the real datasets, e.g. kvasir-dataset-v2/ [{ENV_VARS['data_root']}]")
    group.addoption("--weights-dir", default=env("weights_dir"), help=f"folder of pretrained weight files <model>.safetensors [{ENV_VARS['weights_dir']}]")
    group.addoption("--results-dir", default=env("results_dir", "results"), help=f"where records and summary tables go [{ENV_VARS['results_dir']}]")
    group.addoption("--epochs", type=int, default=int(env("epochs", "0") or 0) or None, help=f"override every recipe's epochs [{ENV_VARS['epochs']}]")


@pytest.fixture(scope="session")
def run_settings(pytestconfig: pytest.Config) -> RunSettings:
    opt = pytestconfig.getoption
    return RunSettings(
        results_dir=Path(opt("--results-dir")).resolve(),
        cache_dir=default_cache_dir(),
        data_root=Path(opt("--data-root")) if opt("--data-root") else None,
        weights_dir=Path(opt("--weights-dir")) if opt("--weights-dir") else None,
    )
