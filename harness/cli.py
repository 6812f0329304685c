"""`python -m harness ...`: a thin command line over the same code path as the benchmarks."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from harness import catalog
from harness.data import kvasir, synthetic
from harness.settings import ENV_VARS, OPTIONS, RunSettings, env
from harness.spec import (
    ENGINES,
    OPTIMIZERS,
    PRECISIONS,
    WEIGHTS,
    BenchmarkSpec,
    SpecError,
    Split,
)


def parse_split(text: str) -> Split:
    """`0.7,0.15,0.15` (fractions) or `5564,1600,832` (image counts) for train, val, test."""
    try:
        values = [float(v) for v in text.split(",")]
        if len(values) != 3:
            raise ValueError
        by = "count" if all(v >= 1 and v == int(v) for v in values) else "fraction"
        return Split(*values, by=by)
    except (ValueError, SpecError) as error:
        detail = f": {error}" if str(error) else ""
        raise argparse.ArgumentTypeError(f"{text!r} is not TRAIN,VAL,TEST as fractions (0.7,0.15,0.15) or image counts (5564,1600,832){detail}") from None


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def run_id_name(text: str) -> str:
    """A run id is one folder name: letters, digits, '.', '_' and '-', never '.' or '..'."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder name; use letters, digits, '.', '_' and '-' only")
    return text


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    for flag, kwargs in OPTIONS:
        parser.add_argument(flag, **kwargs)


def _recipe_list() -> str:
    return "; ".join(f"{key}: {seed.title}" for key, seed in sorted(catalog.SEEDS.items()))


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    """The options that decide a recipe (run, throughput and eda share them, so eda previews what run trains)."""
    p.add_argument("--recipe", choices=sorted(catalog.SEEDS), default="efficientnetv2", help=f"the catalog recipe every other option starts from ({_recipe_list()}; `python -m harness recipes` shows them) [default efficientnetv2]")
    p.add_argument("--profile", choices=catalog.PROFILES, default=env("profile", catalog.DEFAULT_PROFILE),
                   help=f"smoke: the recipe shrunk for a CPU on generated data (64 px, 4 epochs, batch 16, lr scaled); full: the recipe as published, on real data; pytest has the same option and default [{ENV_VARS['profile']}; default {catalog.DEFAULT_PROFILE}]")  # fmt: skip
    p.add_argument("--recipe-file", type=Path, metavar="FILE", help="a JSON or YAML file of recipe fields (lr, epochs, batch_size, image_size, optimizer, weight_decay, train_augmentations, split, ...) over the recipe and profile; options given here win over it")
    p.add_argument("--augment", metavar="NAMES", help="train augmentations: albumentations transform names, e.g. HorizontalFlip,VerticalFlip (a name the recipe has keeps its parameters), or none [default: the recipe's; see `harness recipes`]")
    p.add_argument("--image-size", type=int, help="train and eval image size in px [default: the recipe's; smoke 64]")
    p.add_argument("--seed", type=int, help="the random seed of splits, initialisation, order and augmentations [default: the recipe's, 42]")


def _add_spec_options(p: argparse.ArgumentParser, weights: str) -> None:
    """The options that build a spec from a catalog recipe (run and throughput share them)."""
    _add_recipe_options(p)
    p.add_argument("--model", help="any timm model name [default: the recipe's]")
    p.add_argument("--data", help=f"an ImageFolder directory (one sub-folder per class), or a generated dataset: {', '.join(synthetic.DATASETS)} [default: the recipe's dataset in the profile]")
    p.add_argument("--engine", choices=ENGINES, help="the training library: poutyne (one process, a device list) or lightning (DDP over --devices) [default: the recipe's]")
    p.add_argument("--weights", choices=WEIGHTS, default=weights, help=f"pretrained: a file in --weights-dir, else the Hugging Face hub (full profile) or a generated stand-in (smoke profile); random: timm's initialisation [default {weights}]")
    p.add_argument("--epochs", type=int, help="training epochs [default: the recipe's; smoke 4]")
    p.add_argument("--batch-size", type=int, help="the global batch, shared by all processes [default: the recipe's; smoke 16]")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="[default: the recipe's]")
    p.add_argument("--lr", type=float, help="learning rate [default: the recipe's; smoke: scaled to the smoke batch]")
    p.add_argument("--weight-decay", type=float, help="[default: the recipe's]")
    p.add_argument("--precision", choices=PRECISIONS, default="32-true", help="[default 32-true]")
    p.add_argument("--devices", type=int, default=1, help="GPUs, or CPU processes for Lightning DDP [default 1]")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes, for Lightning under torchrun or SLURM [default 1]")
    p.add_argument("--split", type=parse_split, metavar="TRAIN,VAL,TEST", help="how one ImageFolder is cut: fractions (0.7,0.15,0.15) or image counts (5564,1600,832) [default: the recipe's]")
    p.add_argument("--sync-batchnorm", action="store_true", help="synchronise BatchNorm statistics across DDP processes (Lightning; CUDA only)")
    p.add_argument("--target-acc", type=float, help="val accuracy for the time-to-target column [default: the recipe's published figure on its own dataset, none on other data]")


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train and evaluate one case; prints the test metrics and writes results/<run-id>/",
                       description=f"Train and evaluate one case: --recipe in --profile (default {catalog.DEFAULT_PROFILE}, as in pytest; --profile full for the published recipe on real data), "
                                   "then --recipe-file, then the options given here. The record says where each recipe value came from.")  # fmt: skip
    _add_spec_options(p, weights="pretrained")
    p.add_argument("--limit-batches", type=positive_int, help="check a real set-up in a minute: the recipe with only N batches per phase and epoch (train, val, test), as Lightning's limit_*_batches [default: all]")
    p.add_argument("--seeds", type=positive_int, default=int(env("seeds", "1") or 1), help=f"run N times with seeds SEED, SEED+1, ...; prints mean ± std over them [{ENV_VARS['seeds']}; default 1]")
    p.add_argument("--run-id", type=run_id_name, help="the folder name of the record and checkpoints (default: case id + fingerprint, then -attemptN)")
    p.add_argument("--spec", type=Path, help="run this spec file (JSON) instead of building one from options")
    p.add_argument("--settings", type=Path, help="settings file (JSON) written by a launcher; settings options given on the command line override it")
    _add_settings_options(p)


def _dataset_from(value: str | None, seed: catalog.Seed, profile: str, data_root: str | None) -> tuple[str, Path | None]:
    """(dataset name, data root) from `--data`: a generated name, a Kvasir folder or any ImageFolder."""
    if value is None:
        return (seed.dataset if profile == "full" else seed.smoke_dataset), data_root
    if value in synthetic.DATASETS or value == "kvasir":
        return value, data_root
    path = Path(value)
    if path.name == kvasir.FOLDER_NAME:
        return "kvasir", path.parent
    return path.name or "imagefolder", path


def recipe_spec(args: argparse.Namespace, **choices) -> BenchmarkSpec:
    """The catalog recipe in its profile, then `--recipe-file`, then the recipe options given here:
    each later source wins, and the spec remembers which gave each value (`recipe_origin`)."""
    from harness.data import num_classes, transforms

    seed = catalog.SEEDS[args.recipe]
    dataset = seed.dataset if args.profile == "full" else seed.smoke_dataset
    spec = catalog.make_spec(seed, profile=args.profile, num_classes=num_classes(dataset) or 2, **choices)  # classes only size smoke thresholds, which a CLI run drops
    if args.recipe_file:
        spec = spec.with_recipe_from(f"recipe file {args.recipe_file}", **catalog.read_recipe_file(args.recipe_file))
    given = {name: getattr(args, name, None) for name in RECIPE_OPTIONS}
    given["sync_batchnorm"] = given["sync_batchnorm"] or None  # a flag: absent is "the recipe's", not False
    for name, value in given.items():
        if value is not None:
            spec = spec.with_recipe_from(RECIPE_OPTIONS[name], **{name: value})
    if args.augment is not None:
        spec = spec.with_recipe_from("--augment", train_augmentations=catalog.parse_augment(args.augment, spec.recipe))
    transforms.check_augmentations(spec.recipe.train_augmentations, dict(spec.recipe_origin).get("train_augmentations", f"the {args.recipe} recipe"))
    return spec


# Recipe fields with a command-line option of their own, and the option's name.
RECIPE_OPTIONS = {
    "image_size": "--image-size", "batch_size": "--batch-size", "optimizer": "--optimizer", "lr": "--lr", "weight_decay": "--weight-decay",
    "seed": "--seed", "split": "--split", "sync_batchnorm": "--sync-batchnorm", "epochs": "--epochs",
}  # fmt: skip


def spec_from_args(args: argparse.Namespace) -> tuple[BenchmarkSpec, Path | None]:
    seed = catalog.SEEDS[args.recipe]
    dataset, data_root = _dataset_from(args.data, seed, args.profile, args.data_root)
    spec = recipe_spec(args, weights=args.weights, precision=args.precision, engine=args.engine)
    spec = spec.replace(dataset=dataset, benchmark="cli", thresholds=())
    if args.data is not None and dataset not in (seed.dataset, seed.smoke_dataset):  # a seed's target means nothing on other data
        spec = spec.replace(target_accuracy=None, target_source=None)
    if args.target_acc is not None:
        spec = spec.replace(target_accuracy=args.target_acc, target_source="--target-acc")
    if args.model:
        spec = spec.replace(model=args.model)
    # devices last: the global batch must divide over the processes, and it is the batch given here
    spec = spec.replace(devices=args.devices, num_nodes=args.num_nodes, limit_batches=getattr(args, "limit_batches", None))
    return spec, (Path(data_root) if data_root else None)


def _read_file(path: Path, option: str, kind: str, parse):
    """Parse a launcher's JSON file; a missing or malformed one is a one-line SpecError."""
    try:
        return parse(path.read_text())
    except OSError as error:
        raise SpecError(f"{option} {path} cannot be read ({error.strerror}); give {kind}") from None
    except (ValueError, KeyError, TypeError) as error:  # JSON, a missing field, an unknown field, a bad value
        raise SpecError(f"{option} {path} is not {kind}: {type(error).__name__}: {error}") from None


def _settings_defaults() -> dict[str, object]:
    """What each settings option is when not given on the command line (its environment twin, else its default)."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_settings_options(parser)
    return vars(parser.parse_args([]))


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """Settings for a `--spec` run: the `--settings` file when given, with every settings option
    given on the command line over it; without a file, the options (and their environment twins)."""
    from_options = RunSettings.from_options(lambda name: getattr(args, name))
    if not args.settings:
        return from_options
    settings = _read_file(args.settings, "--settings", "a settings file (JSON, as RunSettings.to_json writes it)", RunSettings.from_json)
    given = [name for name, default in _settings_defaults().items() if getattr(args, name) != default]
    return settings.replace(**{name: getattr(from_options, name) for name in given})


def cmd_run(args: argparse.Namespace) -> int:
    from harness import runner

    if args.spec:
        spec = _read_file(args.spec, "--spec", "a spec file (JSON, as BenchmarkSpec.to_json writes it)", BenchmarkSpec.from_json)
        settings = settings_from_args(args)
    else:
        spec, data_root = spec_from_args(args)
        settings = RunSettings.from_options(lambda name: getattr(args, name)).replace(data_root=data_root)
    if args.seeds > 1 and args.run_id:
        raise SpecError(f"--run-id names one run, --seeds {args.seeds} makes {args.seeds}; drop --run-id (each seed gets its own id)")
    records = []
    for repeat in spec.repeats(args.seeds):
        record = runner.run(repeat, settings, run_id=args.run_id)
        if record is not None:
            records.append(record)
            print(record.summary())
            print(f"record: {settings.results_dir / record.run_id / 'result.json'}")
    if len(records) > 1:
        from harness.results.tables import cases_table

        print(cases_table(records).markdown())
    failed = [r for r in records if not r.ok]
    for record in failed:
        print(f"error: {record.run_id}: {record.failure}; lower --lr, or check the data and the recipe", file=sys.stderr)
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.preflight import check_writable
    from harness.results import report
    from harness.results.record import load_readable

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


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.results.compare import (
        GateError,
        compare_paths,
        parse_metrics,
        parse_tolerances,
    )

    try:
        result = compare_paths(args.baseline, args.current, parse_tolerances(args.tolerance), parse_metrics(args.metrics))
    except (GateError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.render())
    return 1 if result.regressions else 2 if result.undecided else 0


def cmd_nightly(args: argparse.Namespace) -> int:
    from harness import nightly

    return nightly.run(args.out, args.baseline, args.tolerance, args.pytest_args, dry_run=args.dry_run, address=args.address, bucket=args.gcs_bucket, nights=args.nights or nightly.trend.NIGHTS)


def cmd_eda(args: argparse.Namespace) -> int:
    from harness import eda
    from harness.preflight import check_writable

    check_writable(args.out, "EDA folder", "--out")
    name = f"{args.recipe} ({args.profile} profile)"
    survey = eda.run(args.data_dir, args.out, recipe_spec(args, weights="random").recipe, name, sample=args.sample, draws=args.draws)
    if survey.augmentations is not None:
        print(f"train augmentations of {name}, {survey.augmentations.draws} draws through the dataset's seeding:\n{survey.augmentations.markdown()}\n")
    copies = survey.duplicates or {"files": 0}
    print(f"{sum(survey.class_counts.values())} images, {len(survey.class_counts)} classes, {len(survey.corrupt)} corrupt, {copies['files']} duplicates; "
          f"headers {survey.seconds_headers:.2f}s, pixels {survey.seconds_pixels:.2f}s, augmentations {survey.seconds_augmentations:.2f}s; report: {args.out / 'report.md'}")  # fmt: skip
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    print("\n\n".join(catalog.describe(seed) for _, seed in sorted(catalog.SEEDS.items())))
    print(f"\nEvery command starts from --recipe (default efficientnetv2) in --profile (default {catalog.DEFAULT_PROFILE}); --recipe-file FILE and the options change it.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__, epilog=f"recipes: {_recipe_list()}. `python -m harness COMMAND --help` describes each command.")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    sub.add_parser("recipes", help="the catalog: each recipe with its source, values, smoke changes and published figures")
    p = sub.add_parser("report", help="the comparison tables again, from the result records alone")
    p.add_argument("results_dir", type=Path, help="a results folder (records in */result.json)")
    p.add_argument("--out", type=Path, help="where to write summary.md/.csv and report.html (default: RESULTS_DIR)")
    p = sub.add_parser("compare", help="regression gate: exit 0, 1 with a table of what regressed, 2 when it cannot decide (a gated metric missing on one side)")
    p.add_argument("baseline", type=Path, help="results folder or pytest-benchmark JSON")
    p.add_argument("current", type=Path, help="results folder or pytest-benchmark JSON")
    p.add_argument("--tolerance", action="append", metavar="METRIC=VALUE", help="e.g. acc=0.02 (absolute), loss=0.1 or images_per_s=0.1 (relative); repeatable")
    p.add_argument("--metrics", metavar="NAMES", help="gate only these metrics, e.g. images_per_s or acc,loss (default: every gated metric: a metric one side lacks makes the gate undecided, exit 2)")
    p = sub.add_parser("nightly", help="the matrix as Ray tasks over this machine's or a cluster's GPUs (smoke profile on CPUs), reports with trends, regression gate")
    p.add_argument("--out", type=Path, help="this night's folder (default results/nightly/DATE); its siblings are the nights the trend shows")
    p.add_argument("--baseline", type=Path, help="a night's folder, results folder or pytest-benchmark JSON to compare against")
    p.add_argument("--tolerance", action="append", metavar="METRIC=VALUE", help="as for compare, e.g. acc=0.02; repeatable")
    p.add_argument("--address", help="HEAD:PORT of a running Ray cluster (default: RAY_ADDRESS, else Ray starts embedded on this machine)")
    p.add_argument("--gcs-bucket", metavar="gs://BUCKET/PREFIX", help="checkpoints of every case under PREFIX/<night>/; a case retried on another node resumes from there")
    p.add_argument("--nights", type=positive_int, help="how many of the last nights the report's trend shows (default 14)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (each case and the resources it asks for; on a cluster, its nodes) and run nothing")
    p.add_argument("pytest_args", nargs="*", help="passed to pytest after --, e.g. -- --data-root /data --weights-dir /weights")
    p = sub.add_parser("eda", help="a report of a dataset: counts, sizes, modes, channel statistics, samples, augmentations")
    p.add_argument("data_dir", type=Path, help="an ImageFolder directory")
    p.add_argument("--out", type=Path, required=True, help="where report.md and its figures go")
    _add_recipe_options(p)  # the same recipe options as run: the preview is of what run would train
    p.add_argument("--sample", type=int, default=500, help="images decoded for pixel statistics [default 500]")
    p.add_argument("--draws", type=positive_int, default=2000, help="samples drawn through the recipe's train pipeline to measure each augmentation's apply rate [default 2000]")
    p = sub.add_parser("throughput", help="where training time goes here: the loader alone (cached and uncached), the model step alone, the engine end to end; names the bottleneck")
    _add_spec_options(p, weights="random")
    p.add_argument("--batches", type=positive_int, default=20, help="timed batches per measurement, after 3 untimed ones (default 20)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON (loader_images_per_s, loader_images_per_s_uncached, model_images_per_s, engine_images_per_s, engine_data_wait_share, workers, device, precision, compile, fused_optimizer)")
    _add_settings_options(p)
    p = sub.add_parser("kvasir-standin", help="generate a real-resolution Kvasir v2 stand-in (photo-like 720x576 to 1920x1072 JPEGs) for throughput and full-profile dry runs")
    p.add_argument("--out", type=Path, required=True, help="writes OUT/kvasir-dataset-v2/<class>/*.jpg; give OUT as --data-root")
    p.add_argument("--per-class", type=positive_int, default=1000, help="JPEGs per class (default 1000, as Kvasir v2)")
    p.add_argument("--processes", type=positive_int, default=min(8, os.cpu_count() or 1), help="classes written in parallel (default: the CPU cores, at most 8)")
    p.add_argument("--seed", type=int, default=0)
    return parser


def cmd_throughput(args: argparse.Namespace) -> int:
    from harness import throughput
    from harness.atomic import written_atomically

    spec, data_root = spec_from_args(args)
    settings = RunSettings.from_options(lambda name: getattr(args, name)).replace(data_root=data_root)
    result = throughput.measure(spec, settings, args.batches)
    print(result.table())
    if args.json:
        with written_atomically(args.json) as tmp:
            tmp.write_text(json.dumps(result.as_dict(), indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_kvasir_standin(args: argparse.Namespace) -> int:
    from harness.data.photos import generate_kvasir

    start = time.perf_counter()
    folder = generate_kvasir(args.out, args.per_class, seed=args.seed, processes=args.processes)
    print(f"wrote {args.per_class} JPEGs for each of 8 classes to {folder} in {time.perf_counter() - start:.0f}s; use it with --data-root {args.out}")
    return 0


COMMANDS = {"recipes": cmd_recipes, "run": cmd_run, "report": cmd_report, "compare": cmd_compare, "nightly": cmd_nightly, "eda": cmd_eda, "throughput": cmd_throughput, "kvasir-standin": cmd_kvasir_standin}


def main(argv: list[str] | None = None) -> int:
    from harness.settings import SettingsError, check_environment

    try:
        check_environment()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    from harness.artifacts import ResumeError
    from harness.artifacts.checkpoints import CheckpointError
    from harness.artifacts.gcs import BucketURLError
    from harness.data import DataError
    from harness.engines.lightning_engine import RendezvousError
    from harness.models import ModelError
    from harness.preflight import PreflightError
    from harness.results.record import RecordError
    from harness.runner import UnsupportedCase

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        from harness.artifacts import after_interrupt

        after_interrupt()
        print("interrupted: nothing half-written was left; with --checkpoint-dir, --resume continues from the last saved epoch", file=sys.stderr)
        return 130
    except (DataError, ModelError, SpecError, UnsupportedCase, ResumeError, BucketURLError, RendezvousError, RecordError, PreflightError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
