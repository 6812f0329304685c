"""`report`: the comparison tables, figures and report.html again, from the result records alone."""

from __future__ import annotations

import argparse
import sys

from harness.atomic import check_writable
from harness.results import report
from harness.results.record import load_readable


def main(args: argparse.Namespace) -> int:
    if args.out:
        check_writable(args.out, "report folder", "--out")
    records, problems = load_readable(args.results_dir)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not records:
        print(f"error: no result records (*/result.json) under {args.results_dir}", file=sys.stderr)
        return 2
    for table in report.write(records, args.results_dir, args.out):
        print(table.markdown())
    print(f"written: summary.md, summary.csv, report.html in {args.out or args.results_dir}")
    return 0
