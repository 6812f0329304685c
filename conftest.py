"""This repository's pytest sessions: trainbench's plugin (`harness.pytest_plugin`, registered by the installed
package's `pytest11` entry point) does the work, as in any repository; here its options are also spelled as they
were before the plugin shipped (`--profile`, `--seeds`, `--results-dir`, `--baseline`, ...), which the docs, the
nightly and bisect on this repository's older revisions use. No other plugin that owns one of these names (such as
pytest-profiling's `--profile`) is installed with this repository."""

from __future__ import annotations

import argparse

import pytest

from harness.pytest_plugin import PREFIX, add_options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(
        parser,
        "--",
        lambda name, kwargs: {
            **kwargs,
            "default": argparse.SUPPRESS,  # the plugin's option sets it
            "help": f"this repository's spelling of {PREFIX}{name}",
        },
    )
