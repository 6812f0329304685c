"""`nightly`: the matrix as Ray tasks, the night's reports with trends, and the regression gate."""

from __future__ import annotations

import argparse

from harness import nightly


def main(args: argparse.Namespace) -> int:
    return nightly.run(
        args.out,
        args.baseline,
        args.tolerance,
        args.pytest_args,
        dry_run=args.dry_run,
        address=args.address,
        bucket=args.gcs_bucket,
        nights=args.nights or nightly.trend.NIGHTS,
        strict=args.strict,
        bisect=args.bisect_budget if args.bisect_budget is not None else ("" if args.bisect else None),
        mlflow=args.mlflow,
        bisect_max_seeds=args.bisect_max_seeds,
        tests=args.tests,
    )
