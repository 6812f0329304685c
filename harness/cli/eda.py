"""`eda`: a report of a dataset, with the train augmentations of the recipe `run` would use."""

from __future__ import annotations

import argparse

from harness import eda
from harness.atomic import check_writable
from harness.cli.case import recipe_from_args, workflow_of


def main(args: argparse.Namespace) -> int:
    check_writable(args.out, "EDA folder", "--out")
    name = f"{workflow_of(args).key} ({args.profile} profile)"
    survey = eda.run(args.data_dir, args.out, recipe_from_args(args), name, sample=args.sample, draws=args.draws)
    if survey.augmentations is not None:
        print(
            f"train augmentations of {name}, {survey.augmentations.draws} draws through the dataset's"
            f" seeding:\n{survey.augmentations.markdown()}\n"
        )
    copies = survey.duplicates or {"files": 0}
    print(
        f"{sum(survey.class_counts.values())} images, {len(survey.class_counts)} classes, {len(survey.corrupt)}"
        f" corrupt, {copies['files']} duplicates; headers {survey.seconds_headers:.2f}s, pixels"
        f" {survey.seconds_pixels:.2f}s, augmentations {survey.seconds_augmentations:.2f}s; report:"
        f" {args.out / 'report.md'}"
    )
    return 0
