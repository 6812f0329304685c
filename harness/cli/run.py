"""`run`: train and evaluate one case (or one per seed), print the test metrics, write the records."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import runner
from harness.cli.case import settings_from_args, spec_from_args
from harness.cli.parser import build_parser, settings_defaults
from harness.configure import RECIPE_OPTIONS
from harness.errors import HarnessError, SpecError
from harness.results.tables import cases_table
from harness.settings import RunSettings, environment
from harness.spec import BenchmarkSpec


def read_file(path: Path, option: str, kind: str, parse: Callable[[str], Any]) -> Any:
    """Parse a launcher's JSON file; a missing or malformed one is a one-line SpecError."""
    try:
        return parse(path.read_text())
    except OSError as error:
        raise SpecError(f"{option} {path} cannot be read ({error.strerror}); give {kind}") from None
    except (ValueError, KeyError, TypeError) as error:  # JSON, a missing field, an unknown field, a bad value
        raise SpecError(f"{option} {path} is not {kind}: {type(error).__name__}: {error}") from None


def settings_for_spec_file(args: argparse.Namespace) -> RunSettings:
    """Settings for a `--spec` run: the `--settings` file when given, with every settings option
    given on the command line over it; without a file, the options (and their environment twins)."""
    from_options = settings_from_args(args)
    if not args.settings:
        return from_options
    settings: RunSettings = read_file(
        args.settings, "--settings", "a settings file (JSON, as RunSettings.to_json writes it)", RunSettings.from_json
    )
    given = [name for name, default in settings_defaults(environment()).items() if getattr(args, name) != default]
    return settings.replace(**{name: getattr(from_options, name) for name in given})


# what an experiment file decides for its cases, so the command line cannot
CASE_OPTIONS = (
    *("model", "data", "recipe", "recipe_file", "engine", "weights", "precision", "devices", "num_nodes"),
    *("limit_batches", "target_acc", "spec", "run_id", "metric", "augment"),
)


def run_experiment(args: argparse.Namespace) -> int:
    """`run --config FILE`: every case of the experiment file (each of several processes in fresh ones), its
    thresholds checked, then the report of them all."""
    from harness import launch
    from harness.experiment import read
    from harness.results import report

    options = (*CASE_OPTIONS, *(name for name in RECIPE_OPTIONS if name != "train_augmentations"))
    defaults = vars(build_parser().parse_args(["run"]))
    given = [f"--{name.replace('_', '-')}" for name in options if getattr(args, name, None) != defaults.get(name)]
    if given:
        raise SpecError(f"--config {args.config} holds the cases; {', '.join(given)} would not apply: drop it")
    cases = read(args.config, args.profile)
    settings = settings_from_args(args)
    print(f"[trainbench] {args.config}: {len(cases)} case(s): {', '.join(case.id for case in cases)}")
    records, missed = [], []
    for case in cases:
        for repeat in case.spec.repeats(args.seeds):
            try:
                record = launch.run(repeat, settings.replace(data_root=case.data_root))
            except HarnessError as error:  # this case cannot run (its data, a launch): the others still do
                missed.append(f"{case.id}: {error}")
                continue
            records.append(record)
            print(record.summary())
            if not record.ok or repeat.missed(record.test):
                missed.append(f"{case.id}: {record.failure or 'missed ' + '; '.join(repeat.missed(record.test))}")
    if records:
        report.write(records, settings.results_dir)
        print(cases_table(records).markdown())
        print(f"records and tables: {settings.results_dir} (summary.md, summary.csv, report.html)")
    for line in missed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if missed else 0


def main(args: argparse.Namespace) -> int:
    if getattr(args, "config", None):  # a launcher's namespace (nightly, bisect) has no --config
        return run_experiment(args)
    if args.spec:
        spec = read_file(
            args.spec, "--spec", "a spec file (JSON, as BenchmarkSpec.to_json writes it)", BenchmarkSpec.from_json
        )
        settings = settings_for_spec_file(args)
    else:
        spec, data_root = spec_from_args(args)
        settings = settings_from_args(args).replace(data_root=data_root)
    if args.seeds > 1 and args.run_id:
        raise SpecError(
            f"--run-id names one run, --seeds {args.seeds} makes {args.seeds}; drop --run-id (each seed gets its"
            " own id)"
        )
    records = []
    for repeat in spec.repeats(args.seeds):
        record = runner.run(repeat, settings, run_id=args.run_id)
        if record is not None:
            records.append(record)
            print(record.summary())
            print(f"record: {settings.results_dir / record.run_id / 'result.json'}")
    if len(records) > 1:
        print(cases_table(records).markdown())
    failed = [r for r in records if not r.ok]
    for record in failed:
        print(
            f"error: {record.run_id}: {record.failure}; lower --lr, or check the data and the recipe", file=sys.stderr
        )
    return 1 if failed else 0
