"""The pytest layer: options (each with a TRAINBENCH_* twin), the session's run book, the summary.

Benchmarks build specs, ask the run book for records and assert on them; the run book runs each
spec at most once per session (so the pretrained-vs-random comparison reuses the benchmark runs)
and writes the summary tables when the session ends.
"""

from __future__ import annotations

import pytest

from harness.cli.parser import positive_int
from harness.errors import SettingsError
from harness.settings import (
    DEFAULT_PROFILE,
    PROFILES,
    Environment,
    RunSettings,
    environment,
    options,
)

pytest_plugins = ["benchmarks.plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    try:
        twins = environment()
    except SettingsError as error:
        raise pytest.UsageError(str(error)) from None
    var = Environment.variable
    group = parser.getgroup("trainbench")
    group.addoption(
        "--profile",
        choices=PROFILES,
        default=twins.profile or DEFAULT_PROFILE,
        help=(
            "smoke: the recipes shrunk for a CPU on generated data; full: the published recipes on real data; `python"
            f" -m harness run` has the same option and default [{var('profile')}; default {DEFAULT_PROFILE}]"
        ),
    )
    for flag, kwargs in options(twins):
        group.addoption(flag, **kwargs)
    group.addoption(
        "--baseline",
        default=None,
        help=(
            "after the session, compare its runs with this results folder or pytest-benchmark JSON; a regression fails"
            " the session"
        ),
    )
    group.addoption(
        "--tolerance",
        action="append",
        default=None,
        metavar="METRIC=VALUE",
        help="with --baseline: override a metric's tolerance (repeatable)",
    )
    group.addoption(
        "--gate-metrics",
        default=None,
        metavar="NAMES",
        help=(
            "with --baseline: gate only these metrics, e.g. acc,loss (default: every gated metric; one a side lacks"
            " leaves the gate undecided and fails the session)"
        ),
    )
    group.addoption(
        "--gate-across-devices",
        action="store_true",
        help=(
            "with --baseline: gate images/s and J/image "
            "against a baseline of another device too (default: not gated there)"
        ),
    )
    group.addoption(
        "--seeds",
        type=positive_int,
        default=twins.seeds or 1,
        help=(
            f"run each case with N seeds (the recipe's, then +1, +2 ...); tables show mean ± std [{var('seeds')};"
            " default 1]"
        ),
    )
    group.addoption(
        "--epochs", type=int, default=twins.epochs, help=f"override every recipe's epochs [{var('epochs')}]"
    )


@pytest.fixture(scope="session")
def run_settings(pytestconfig: pytest.Config) -> RunSettings:
    return RunSettings.from_options(pytestconfig.getoption)
