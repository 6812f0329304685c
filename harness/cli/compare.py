"""`compare`: the regression gate between two results folders or pytest-benchmark JSON files."""

from __future__ import annotations

import argparse
import sys

from harness.errors import GateError
from harness.results.compare import compare_paths, parse_metrics, parse_tolerances


def main(args: argparse.Namespace) -> int:
    """0: no regression; 1: a regression (the table says which); 2: the gate cannot decide."""
    try:
        tolerances, metrics = parse_tolerances(args.tolerance), parse_metrics(args.metrics)
        result = compare_paths(args.baseline, args.current, tolerances, metrics, args.across_devices)
    except (GateError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.render())
    return 1 if result.regressions else 2 if result.undecided else 0
