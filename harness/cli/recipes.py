"""`recipes`: the catalog, each workflow's recipe with its source, values, smoke changes and published figures."""

from __future__ import annotations

import argparse

from harness.catalog import WORKFLOWS, describe
from harness.settings import DEFAULT_PROFILE


def main(args: argparse.Namespace) -> int:
    print("\n\n".join(describe(workflow) for _, workflow in sorted(WORKFLOWS.items())))
    print(
        f"\nEvery command starts from --recipe (default efficientnetv2) in --profile (default {DEFAULT_PROFILE});"
        " --recipe-file FILE and the options change it."
    )
    return 0
