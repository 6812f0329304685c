"""This repository's pytest sessions: trainbench's plugin (`harness.pytest_plugin`, registered by the installed
package's `pytest11` entry point) does the work, as in any repository; here its options are also spelled as they
were before the plugin shipped (`--profile`, `--seeds`, `--results-dir`, `--baseline`, ...), which the docs, the
nightly and bisect on this repository's older revisions use. No other plugin that owns one of these names (such as
pytest-profiling's `--profile`) is installed with this repository."""

from __future__ import annotations

import argparse

import pytest

from harness.pytest_plugin import PREFIX, add_options


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.has_plugin("trainbench"):  # the aliases would have no option to stand for
        raise pytest.UsageError(
            "trainbench's pytest plugin is not loaded: install this checkout again (`make install`, or pip install -e"
            " .) so its entry point is registered, and with PYTEST_DISABLE_PLUGIN_AUTOLOAD set, add -p trainbench"
        )
    add_options(
        parser,
        "--",
        lambda name, kwargs: {
            **kwargs,
            "default": argparse.SUPPRESS,  # the plugin's option sets it
            "help": f"this repository's spelling of {PREFIX}{name}",
        },
    )
