"""`profile`: a few training steps of one case under torch.profiler; a Chrome trace and the top operators."""

from __future__ import annotations

import argparse

from harness import profile
from harness.cli.case import settings_from_args, spec_from_args


def main(args: argparse.Namespace) -> int:
    earlier = profile.load(args.against) if args.against else None  # a wrong folder is said before any training
    spec, data_root = spec_from_args(args)
    settings = settings_from_args(args).replace(data_root=data_root)
    out = args.out or settings.results_dir / "profile" / spec.id
    result = profile.run(spec, settings, out, warmup=args.warmup, active=args.active)
    print(result.markdown())
    if earlier is not None:
        print(profile.difference(earlier, result))
    print(
        f"written: {out / profile.TRACE_FILE} (open in https://ui.perfetto.dev), {out / profile.OPS_FILE},"
        f" {out / profile.PROFILE_FILE}"
    )
    return 0
