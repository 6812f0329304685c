"""A case's spec and settings from parsed options: the command line's side of `configure.case_spec`."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.catalog import WORKFLOWS, Workflow
from harness.configure import RECIPE_OPTIONS, case_spec, dataset_from
from harness.data.named import num_classes
from harness.metrics import parse_metric
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, Recipe


def recipe_options(args: argparse.Namespace) -> dict[str, object]:
    """The recipe values given as options (None: not given; a flag absent is "the recipe's", not False)."""
    given = {name: getattr(args, name, None) for name in RECIPE_OPTIONS if name != "train_augmentations"}
    given["sync_batchnorm"] = given["sync_batchnorm"] or None
    return given


def workflow_of(args: argparse.Namespace) -> Workflow:
    """The catalog recipe a case starts from: `--recipe`; else the neutral base for a `--model` of one's own (never
    a write-up's augmentations and pretraining in silence); else the default workflow, EfficientNetV2's."""
    if args.recipe:
        return WORKFLOWS[args.recipe]
    return WORKFLOWS["base" if getattr(args, "model", None) else "efficientnetv2"]


def spec_from_args(args: argparse.Namespace) -> tuple[BenchmarkSpec, Path | None]:
    """The spec `run` and `throughput` train, and the data root `--data` points at."""
    workflow = workflow_of(args)
    dataset, data_root = dataset_from(args.data, workflow, args.profile, getattr(args, "data_root", None))
    spec = case_spec(
        workflow,
        args.profile,
        weights=args.weights or ("random" if workflow.key == "base" else "pretrained"),
        precision=args.precision,
        engine=args.engine,
        devices=args.devices,
        num_nodes=args.num_nodes,
        num_classes=num_classes(workflow.dataset_in(args.profile)) or 2,
        recipe_file=args.recipe_file,
        options=recipe_options(args),
        augment=args.augment,
        dataset=dataset,
        model=args.model,
        target_accuracy=args.target_acc,
        limit_batches=getattr(args, "limit_batches", None),
        adhoc=True,
        metrics=tuple(parse_metric(text) for text in getattr(args, "metric", None) or ()),
    )
    return spec, (Path(data_root) if data_root else None)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe `eda` previews: the one `run` would train with the same recipe options."""
    workflow = workflow_of(args)
    return case_spec(
        workflow,
        args.profile,
        weights="random",
        num_classes=num_classes(workflow.dataset_in(args.profile)) or 2,
        recipe_file=args.recipe_file,
        options=recipe_options(args),
        augment=args.augment,
    ).recipe


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The settings options (each given, else its environment twin, else its default)."""
    return RunSettings.from_options(lambda name: getattr(args, name))
