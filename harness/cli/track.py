"""`track`: records into MLflow, each once (the records stay the source of truth)."""

from __future__ import annotations

import argparse
import re
import sys

from harness.results import mlflow_runs
from harness.settings import MLFLOW_SETTING


def main(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        print(
            f"error: {args.results} is not a folder; give a results folder, a nightly's folder or baselines/<machine>",
            file=sys.stderr,
        )
        return 2
    uri = args.mlflow or mlflow_runs.tracking_uri("auto", args.results) or "off"
    if not mlflow_runs.installed():
        print(
            "error: track needs mlflow, which is not installed; pip install 'trainbench[mlflow]' (or mlflow)",
            file=sys.stderr,
        )
        return 2
    if uri in ("auto", "off") or not re.match(MLFLOW_SETTING, uri):
        print(
            f"error: --mlflow {uri!r} is not a tracking URI; give one like http://127.0.0.1:5000 or sqlite:///runs.db",
            file=sys.stderr,
        )
        return 2
    try:
        mlflow_runs.check(uri, args.results)
    except mlflow_runs.PreflightError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        added, present, problems = mlflow_runs.import_records(args.results, uri)
    except Exception as error:  # the store refused (a bad path, another schema, a server error)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: could not import into MLflow at {uri}: {type(error).__name__}: {reason}"[:600], file=sys.stderr)
        return 2
    for problem in problems:
        print(f"track: skipped {problem}")
    if not added and not present:
        print(f"error: no readable record under {args.results} (records are */result.json)", file=sys.stderr)
        return 2
    print(f"track: {len(added)} run(s) added, {len(present)} already in {uri}")
    return 0
