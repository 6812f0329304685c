"""`throughput`: where training time goes on this machine (loader, model step, engine), one table."""

from __future__ import annotations

import argparse
import json

from harness import throughput
from harness.atomic import written_atomically
from harness.cli.case import settings_from_args, spec_from_args


def main(args: argparse.Namespace) -> int:
    spec, data_root = spec_from_args(args)
    result = throughput.measure(spec, settings_from_args(args).replace(data_root=data_root), args.batches)
    print(result.table())
    if args.json:
        with written_atomically(args.json) as tmp:
            tmp.write_text(json.dumps(result.as_dict(), indent=2))
        print(f"wrote {args.json}")
    return 0
