"""`bisect`: the first commit where one benchmark case regressed."""

from __future__ import annotations

import argparse
import sys

from harness import bisect
from harness.bisect import revisions
from harness.bisect.search import parse_budget
from harness.results.compare import parse_metrics, parse_tolerances


def main(args: argparse.Namespace) -> int:
    try:
        budget = parse_budget(args.budget)
        metrics = parse_metrics(args.metrics)
        tolerances = parse_tolerances(args.tolerance)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    request = bisect.Request(
        args.good,
        args.bad,
        args.case,
        tuple(args.pytest_args),
        revisions.toplevel(args.repo),
        args.out,
        args.profile,
        args.seeds,
        args.max_seeds,
        args.parallel,
        args.address,
        budget,
        tolerances,
        tuple(metrics) if metrics else None,
    )
    status, _ = bisect.run(request)
    return status
