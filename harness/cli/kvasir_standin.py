"""`kvasir-standin`: a real-resolution Kvasir v2 stand-in, for throughput and full-profile dry runs."""

from __future__ import annotations

import argparse
import time

from harness.data.photos import generate_kvasir


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    folder = generate_kvasir(args.out, args.per_class, seed=args.seed, processes=args.processes)
    print(
        f"wrote {args.per_class} JPEGs for each of 8 classes to {folder} in {time.perf_counter() - start:.0f}s; use it"
        f" with --data-root {args.out}"
    )
    return 0
