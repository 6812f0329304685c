"""`python -m harness COMMAND ...`: the parser (`parser`), one thin module per command, and one
place that turns a harness error into `error: ...` and exit 2, and an interrupt (Ctrl-C, or SIGTERM:
`harness.interrupts`) into one line and exit 130 or 143.

A command's module is imported only when that command runs, so `--help` and the commands that
train nothing (`compare`, `report`, `recipes`) never import torch or Lightning.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from pathlib import Path

from harness import interrupts
from harness.errors import HarnessError
from harness.extensions import importable

# command -> the module under harness.cli that runs it (its `main(args) -> exit status`)
COMMANDS: dict[str, str] = {
    "run": "run",
    "recipes": "recipes",
    "report": "report",
    "compare": "compare",
    "nightly": "nightly",
    "bisect": "bisect",
    "track": "track",
    "eda": "eda",
    "throughput": "throughput",
    "profile": "profile",
    "kvasir-standin": "kvasir_standin",
}


def main(argv: list[str] | None = None) -> int:
    from harness.cli.parser import build_parser
    from harness.settings import environment

    try:
        args = build_parser(environment()).parse_args(argv)
        status: int = import_module(f"harness.cli.{COMMANDS[args.command]}").main(args)
        return status
    except KeyboardInterrupt:
        from harness.artifacts import after_interrupt

        after_interrupt()
        then = "with --checkpoint-dir, --resume continues from the last saved epoch"
        print(f"{interrupts.what()}: nothing half-written was left; {then}", file=sys.stderr)
        return interrupts.exit_status()
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def process_main() -> int:
    """The process entry of `python -m harness` and the `trainbench` script: a SIGTERM is taken as the first
    Ctrl-C (`harness.interrupts`), and the run tracks into a wandb service of its own. A process started
    by one that used wandb (a notebook, a script, pytest) inherits its service's address in
    WANDB_SERVICE; a run tracked there outlives this process when it is killed, and the resumed attempt
    is refused ("run ID ... is in use")."""
    interrupts.install()
    os.environ.pop("WANDB_SERVICE", None)
    importable(Path.cwd())  # the project under test is the working directory: its extensions import here
    return main()
