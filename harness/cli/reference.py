"""docs/cli.md, generated from the parser's own `--help` texts, so the reference cannot drift from
the options (a test compares them; `make docs` writes it again)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import cast

from harness.cli.parser import build_parser
from harness.settings import Environment

WIDTH = "100"  # columns the help is wrapped at, whatever the terminal that runs `make docs`


def markdown() -> str:
    """The page: `trainbench --help`, then each command's `--help`, with defaults as they
    are when no TRAINBENCH_* variable is set."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser(Environment.model_construct())
        assert parser._subparsers is not None  # build_parser adds the commands as sub-parsers
        # argparse keeps its sub-parsers here, in the order they were added (it types choices loosely)
        commands = cast("dict[str, argparse.ArgumentParser]", parser._subparsers._group_actions[0].choices)
        parts = [
            "# Command-line reference",
            "",
            (
                "Generated from `--help` by `make docs` (`python -m harness.cli.reference docs/cli.md`); a test fails"
                " when it drifts from the options. Examples and how the options layer:"
                " [command-line.md](command-line.md)."
            ),
            "",
            "## trainbench",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for name, sub in commands.items():
            parts += [f"## {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before
    return "\n".join(parts)


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(markdown())
