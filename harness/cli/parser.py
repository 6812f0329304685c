"""The command line's options, each with its help and default: argparse and nothing else.

Torch-free, like everything it imports, so that `--help` and the commands that train nothing
(`compare`, `report`, `recipes`) start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Literal

from harness.capabilities import ENGINES, PRECISIONS
from harness.catalog import WORKFLOWS
from harness.data import kvasir, synthetic
from harness.errors import SpecError
from harness.settings import (
    DEFAULT_PROFILE,
    PROFILES,
    Environment,
    environment,
    options,
    positive_int,
)
from harness.spec import OPTIMIZERS, SCHEDULERS, WEIGHTS, Split

DESCRIPTION = "`trainbench ...`: a thin command line over the same code path as the benchmarks."


def parse_split(text: str) -> Split:
    """`0.7,0.15,0.15` (fractions) or `5564,1600,832` (image counts) for train, val, test."""
    try:
        values = [float(v) for v in text.split(",")]
        if len(values) != 3:
            raise ValueError
        train, val, test = values
        by: Literal["fraction", "count"] = "count" if all(v >= 1 and v == int(v) for v in values) else "fraction"
        return Split(train, val, test, by=by)
    except (ValueError, SpecError) as error:
        detail = f": {error}" if str(error) else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not TRAIN,VAL,TEST as fractions (0.7,0.15,0.15) or image counts (5564,1600,832){detail}"
        ) from None


def run_id_name(text: str) -> str:
    """A run id is one folder name: letters, digits, '.', '_' and '-', never '.' or '..'."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder name; use letters, digits, '.', '_' and '-' only")
    return text


def add_settings_options(parser: argparse.ArgumentParser, twins: Environment) -> None:
    for flag, kwargs in options(twins):
        parser.add_argument(flag, **kwargs)


def settings_defaults(twins: Environment) -> dict[str, object]:
    """What each settings option is when not given on the command line (its environment twin, else its default)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_settings_options(parser, twins)
    return vars(parser.parse_args([]))


def recipe_list() -> str:
    return "; ".join(f"{key}: {workflow.title}" for key, workflow in sorted(WORKFLOWS.items()))


def _add_recipe_options(p: argparse.ArgumentParser, twins: Environment) -> None:
    """The options that decide a recipe (run, throughput and eda share them, so eda previews what run trains)."""
    p.add_argument(
        "--recipe",
        choices=sorted(WORKFLOWS),
        help=(
            f"the catalog recipe every other option starts from ({recipe_list()}; `trainbench recipes` shows"
            " them) [default: base when --model is given, else efficientnetv2]"
        ),
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=twins.profile or DEFAULT_PROFILE,
        help=(
            "smoke: the recipe shrunk for a CPU on generated data (64 px, 4 epochs, batch 16, lr scaled); full: the"
            " recipe as published, on real data; pytest has the same option and default"
            f" [{Environment.variable('profile')}; default {DEFAULT_PROFILE}]"
        ),
    )
    p.add_argument(
        "--recipe-file",
        type=Path,
        metavar="FILE",
        help=(
            "a JSON or YAML file of recipe fields (lr, epochs, batch_size, image_size, optimizer, weight_decay,"
            " train_augmentations, split, ...) over the recipe and profile; options given here win over it"
        ),
    )
    p.add_argument(
        "--augment",
        metavar="NAMES",
        help=(
            "train augmentations: albumentations transform names, e.g. HorizontalFlip,VerticalFlip (a name the recipe"
            " has keeps its parameters), or none [default: the recipe's; see `harness recipes`]"
        ),
    )
    p.add_argument("--image-size", type=int, help="train and eval image size in px [default: the recipe's; smoke 64]")
    p.add_argument(
        "--seed",
        type=int,
        help="the random seed of splits, initialisation, order and augmentations [default: the recipe's, 42]",
    )


def _add_spec_options(p: argparse.ArgumentParser, twins: Environment, weights: str | None) -> None:
    """The options that build a spec from a catalog recipe (run and throughput share them)."""
    _add_recipe_options(p, twins)
    p.add_argument(
        "--model",
        help=(
            "a timm model name, or your own as package.module:factory, called factory(num_classes=N) [default: the"
            " recipe's; a --model without --recipe takes the neutral base recipe]"
        ),
    )
    p.add_argument(
        "--data",
        help=(
            "an ImageFolder directory (one sub-folder per class), or a generated dataset:"
            f" {', '.join(synthetic.DATASETS)} [default: the recipe's dataset in the profile]"
        ),
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help=(
            "the training library: poutyne (one process, a device list) or lightning (DDP over --devices) [default: the"
            " recipe's]"
        ),
    )
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default=weights,
        help=(
            "pretrained: a file in --weights-dir, else the Hugging Face hub (full profile) or a generated stand-in"
            " (smoke profile); random: timm's initialisation"
            + (f" [default {weights}]" if weights else " [default: pretrained; random with the base recipe]")
        ),
    )
    p.add_argument("--epochs", type=int, help="training epochs [default: the recipe's; smoke 4]")
    p.add_argument(
        "--batch-size", type=int, help="the global batch, shared by all processes [default: the recipe's; smoke 16]"
    )
    p.add_argument(
        "--optimizer",
        help=(
            f"{', '.join(OPTIMIZERS)}, or your own as package.module:attribute, called (params, lr=, weight_decay=)"
            " [default: the recipe's]"
        ),
    )
    p.add_argument(
        "--loss",
        help=(
            "cross_entropy, or your own as package.module:attribute, called with no arguments, giving"
            " (logits, targets) -> mean loss [default: the recipe's]"
        ),
    )
    p.add_argument(
        "--scheduler",
        help=(
            f"the lr of each epoch: {', '.join(SCHEDULERS)} (after --warmup-epochs), or your own factor"
            " package.module:attribute, called (epoch, epochs) [default: the recipe's, none]"
        ),
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="NAME=PATH",
        help=(
            "a metric of your own beside acc, f1, top-k and loss: NAME=package.module:attribute, a torchmetrics Metric"
            " built from the number of classes, e.g. auroc=torchmetrics.classification:MulticlassAUROC; repeatable"
        ),
    )
    p.add_argument("--warmup-epochs", type=int, help="linear warm-up epochs of a cosine or step schedule [default 0]")
    p.add_argument("--step-size", type=int, help="--scheduler step: epochs between two drops of the lr [default 1]")
    p.add_argument("--gamma", type=float, help="--scheduler step: the factor of each drop [default 0.1]")
    p.add_argument("--lr", type=float, help="learning rate [default: the recipe's; smoke: scaled to the smoke batch]")
    p.add_argument("--weight-decay", type=float, help="[default: the recipe's]")
    p.add_argument("--precision", choices=PRECISIONS, default="32-true", help="[default 32-true]")
    p.add_argument("--devices", type=int, default=1, help="GPUs, or CPU processes for Lightning DDP [default 1]")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes, for Lightning under torchrun or SLURM [default 1]")
    p.add_argument(
        "--split",
        type=parse_split,
        metavar="TRAIN,VAL,TEST",
        help=(
            "how one ImageFolder is cut: fractions (0.7,0.15,0.15) or image counts (5564,1600,832) [default: the"
            " recipe's]"
        ),
    )
    p.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="synchronise BatchNorm statistics across DDP processes (Lightning; CUDA only)",
    )
    p.add_argument(
        "--target-acc",
        type=float,
        help=(
            "val accuracy for the time-to-target column [default: the recipe's published figure on its own dataset,"
            " none on other data]"
        ),
    )


def build_parser(twins: Environment | None = None) -> argparse.ArgumentParser:
    """Every command and option; defaults come from the TRAINBENCH_* twins (`twins`, read now when not given)."""
    twins = twins or environment()
    parser = argparse.ArgumentParser(
        prog="trainbench",
        description=DESCRIPTION,
        epilog=f"recipes: {recipe_list()}. `trainbench COMMAND --help` describes each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run",
        help="train and evaluate one case; prints the test metrics and writes results/<run-id>/",
        description=(
            f"Train and evaluate one case: --recipe in --profile (default {DEFAULT_PROFILE}, as in pytest; --profile"
            " full for the published recipe on real data), then --recipe-file, then the options given here. The record"
            " says where each recipe value came from."
        ),
    )
    _add_spec_options(p, twins, weights=None)
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=(
            "an experiment file (YAML: model, data, engine, recipe values, a matrix, thresholds, metrics;"
            " docs/your-own-benchmarks.md): run every case it holds, then write the report; the case options are"
            " the file's"
        ),
    )
    p.add_argument(
        "--limit-batches",
        type=positive_int,
        help=(
            "check a real set-up in a minute: the recipe with only N batches per phase and epoch (train, val, test), as"
            " Lightning's limit_*_batches [default: all]"
        ),
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=twins.seeds or 1,
        help=(
            f"run N times with seeds SEED, SEED+1, ...; prints mean ± std over them [{Environment.variable('seeds')};"
            " default 1]"
        ),
    )
    p.add_argument(
        "--run-id",
        type=run_id_name,
        help="the folder name of the record and checkpoints (default: case id + fingerprint, then -attemptN)",
    )
    p.add_argument("--spec", type=Path, help="run this spec file (JSON) instead of building one from options")
    p.add_argument(
        "--settings",
        type=Path,
        help="settings file (JSON) written by a launcher; settings options given on the command line override it",
    )
    add_settings_options(p, twins)

    sub.add_parser(
        "recipes", help="the catalog: each recipe with its source, values, smoke changes and published figures"
    )

    p = sub.add_parser("report", help="the comparison tables again, from the result records alone")
    p.add_argument("results_dir", type=Path, help="a results folder (records in */result.json)")
    p.add_argument("--out", type=Path, help="where to write summary.md/.csv and report.html (default: RESULTS_DIR)")

    p = sub.add_parser(
        "compare",
        help=(
            "regression gate: exit 0, 1 with a table of what regressed, "
            "2 when it cannot decide (a gated metric missing on one side, "
            "or a move within a noise band wider than its tolerance)"
        ),
    )
    p.add_argument("baseline", type=Path, help="results folder or pytest-benchmark JSON")
    p.add_argument("current", type=Path, help="results folder or pytest-benchmark JSON")
    p.add_argument(
        "--tolerance",
        action="append",
        metavar="METRIC=VALUE",
        help="e.g. acc=0.02 (absolute), loss=0.1 or images_per_s=0.1 (relative); repeatable",
    )
    p.add_argument(
        "--metrics",
        metavar="NAMES",
        help=(
            "gate only these metrics, e.g. images_per_s or acc,loss (default: every gated metric: a metric one side"
            " lacks makes the gate undecided, exit 2)"
        ),
    )
    p.add_argument(
        "--across-devices",
        action="store_true",
        help=(
            "gate images/s and J/image also where the two sides "
            "ran on different devices (default: not gated there, like with unlike)"
        ),
    )

    p = sub.add_parser(
        "nightly",
        help=(
            "the matrix as Ray tasks over this machine's or a cluster's GPUs (smoke profile on CPUs), reports with"
            " trends, regression gate"
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        help="this night's folder (default results/nightly/DATE); its siblings are the nights the trend shows",
    )
    p.add_argument(
        "--baseline", type=Path, help="a night's folder, results folder or pytest-benchmark JSON to compare against"
    )
    p.add_argument(
        "--tolerance", action="append", metavar="METRIC=VALUE", help="as for compare, e.g. acc=0.02; repeatable"
    )
    p.add_argument(
        "--address",
        help="HEAD:PORT of a running Ray cluster (default: RAY_ADDRESS, else Ray starts embedded on this machine)",
    )
    p.add_argument(
        "--tests",
        type=Path,
        metavar="PATH",
        help=(
            "the benchmarks to run: a folder or file of your project's, under the current folder, which pytest runs in"
            " on every node (default: benchmarks/, trainbench's own when run from its checkout)"
        ),
    )
    p.add_argument(
        "--gcs-bucket",
        metavar="gs://BUCKET/PREFIX",
        help="checkpoints of every case under PREFIX/<night>/; a case retried on another node resumes from there",
    )
    p.add_argument(
        "--nights", type=positive_int, help="how many of the last nights the report's trend shows (default 14)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (each case and the resources it asks for; on a cluster, its nodes) and run nothing",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help=(
            "refuse the whole night when a case fits no node of the cluster (default: skip such a case, saying why, in"
            " the plan and in nightly.json)"
        ),
    )
    p.add_argument(
        "--mlflow",
        metavar="auto|off|URI",
        default=twins.mlflow or "auto",
        help=(
            "after the night, the driver imports its records into MLflow; auto: NIGHTS/mlflow.db beside the night"
            f" folders (off without mlflow installed) [{Environment.variable('mlflow')}; default auto]"
        ),
    )
    p.add_argument(
        "--bisect",
        action="store_true",
        help=(
            "after a regression, bisect each regressed case between the baseline's commit and tonight's on the night's"
            " Ray session; regression.md names the culprit (needs --baseline)"
        ),
    )
    p.add_argument(
        "--bisect-budget",
        metavar="STEPS|MINm",
        help="bound each bisection: measurements (e.g. 12) or minutes (e.g. 30m); implies --bisect [default: no bound]",
    )
    p.add_argument(
        "--bisect-max-seeds",
        type=positive_int,
        default=8,
        metavar="N",
        help=(
            "with --bisect: a step within the noise band is measured again with twice the seeds, up to this many"
            " (bisect's --max-seeds) [default 8]"
        ),
    )
    p.add_argument(
        "pytest_args", nargs="*", help="passed to pytest after --, e.g. -- --data-root /data --weights-dir /weights"
    )

    p = sub.add_parser(
        "bisect",
        help=(
            "the first commit where a case regressed: each revision in its own git worktree through pytest, judged by"
            " the gate against the good end"
        ),
        description=(
            "Find the commit that made one benchmark case regress. Both ends are measured first (in this session); each"
            " step checks a revision out in a git worktree of its own and runs the case there through pytest, in this"
            " environment or one uv builds for the revision's pyproject.toml and constraints.txt; the regression gate"
            " judges it against the good end. Writes bisect.md and bisect.json. Exit 0: an answer (a culprit, or no"
            " (clear) regression between the ends); 1: none (an end where the case ran nothing, or the budget spent);"
            " 2: bad input."
        ),
    )
    p.add_argument(
        "--good",
        required=True,
        metavar="REV",
        help="a revision where the case was good (hash, tag, branch); the older end",
    )
    p.add_argument("--bad", default="HEAD", metavar="REV", help="a revision where it regressed [default HEAD]")
    p.add_argument(
        "-k",
        dest="case",
        required=True,
        metavar="CASE",
        help=(
            "a pytest -k expression that selects one benchmark case, e.g. 'efficientnetv2 and"
            " poutyne-32true-1dev-random'"
        ),
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=Path("."),
        help="the git checkout whose history is bisected (its benchmarks/) [default: the working directory]",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="where bisect.md, bisect.json and each step's records go [default results/bisect/CASE-GOOD-BAD-TIME]",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=twins.profile or DEFAULT_PROFILE,
        help=f"the pytest profile each step runs in [{Environment.variable('profile')}; default {DEFAULT_PROFILE}]",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=2,
        help="seeds per step: their spread is the noise the gate allows for [default 2]",
    )
    p.add_argument(
        "--max-seeds",
        type=positive_int,
        default=8,
        help="a step within the noise band is measured again with twice the seeds, up to this many [default 8]",
    )
    p.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        help=(
            "revisions measured at once per round, as Ray tasks (embedded here, or on --address): n commits take about"
            " log_(K+1)(n) rounds [default 1: serially, in this process]"
        ),
    )
    p.add_argument(
        "--address",
        help=(
            "HEAD:PORT of a running Ray cluster to measure the steps on (default: RAY_ADDRESS with --parallel > 1, else"
            " Ray embedded)"
        ),
    )
    p.add_argument(
        "--budget",
        metavar="STEPS|MINm",
        help=(
            "stop after this many measurements (e.g. 12) or minutes (e.g. 30m), reporting the range left [default: no"
            " bound]"
        ),
    )
    p.add_argument(
        "--tolerance", action="append", metavar="METRIC=VALUE", help="as for compare, e.g. acc=0.02; repeatable"
    )
    p.add_argument(
        "--metrics",
        metavar="NAMES",
        help=(
            "compare the ends on these metrics only, e.g. images_per_s (default: every gated metric); the steps are"
            " judged on those that regressed"
        ),
    )
    p.add_argument(
        "pytest_args", nargs="*", help="passed to each step's pytest after --, e.g. -- --epochs 2 --data-root /data"
    )

    p = sub.add_parser(
        "track",
        help=(
            "import records (a results folder, a nightly's, baselines/) into MLflow, each once: MLflow as a view of the"
            " records"
        ),
    )
    p.add_argument("results", type=Path, help="a folder holding records (*/result.json at any depth)")
    p.add_argument(
        "--mlflow",
        metavar="URI",
        default=twins.mlflow if twins.mlflow not in (None, "auto", "off") else None,
        help=(
            "the tracking server or store, e.g. http://127.0.0.1:5000 or sqlite:///runs.db"
            f" [{Environment.variable('mlflow')} when a URI; default sqlite:///RESULTS/mlflow.db]"
        ),
    )

    p = sub.add_parser(
        "eda", help="a report of a dataset: counts, sizes, modes, channel statistics, samples, augmentations"
    )
    p.add_argument("data_dir", type=Path, help="an ImageFolder directory")
    p.add_argument("--out", type=Path, required=True, help="where report.md and its figures go")
    _add_recipe_options(p, twins)  # the same recipe options as run: the preview is of what run would train
    p.add_argument("--sample", type=int, default=500, help="images decoded for pixel statistics [default 500]")
    p.add_argument(
        "--draws",
        type=positive_int,
        default=2000,
        help=(
            "samples drawn through the recipe's train pipeline to measure each augmentation's apply rate [default 2000]"
        ),
    )

    p = sub.add_parser(
        "throughput",
        help=(
            "where training time goes here: the loader alone (cached and uncached), the model step alone, the engine"
            " end to end; names the bottleneck"
        ),
    )
    _add_spec_options(p, twins, weights="random")
    p.add_argument(
        "--batches",
        type=positive_int,
        default=20,
        help="timed batches per measurement, after 3 untimed ones (default 20)",
    )
    p.add_argument(
        "--json",
        type=Path,
        help=(
            "also write the figures as JSON (loader_images_per_s, loader_images_per_s_uncached, model_images_per_s,"
            " engine_images_per_s, engine_data_wait_share, flops_train_per_image, model_tflops, engine_tflops,"
            " model_mfu, engine_mfu, peak_tflops, vendor_peak_tflops, workers, device, precision, compile,"
            " fused_optimizer)"
        ),
    )
    add_settings_options(p, twins)

    p = sub.add_parser(
        "profile",
        help="a few training steps of one case under torch.profiler: a Chrome trace and the top operators by self time",
    )
    _add_spec_options(p, twins, weights="random")
    p.add_argument(
        "--warmup", type=positive_int, default=3, help="training steps run before recording, not profiled [default 3]"
    )
    p.add_argument("--active", type=positive_int, default=5, help="training steps recorded [default 5]")
    p.add_argument(
        "--out",
        type=Path,
        help="where trace.json (opens in Perfetto), ops.md and profile.json go [default: RESULTS_DIR/profile/CASE]",
    )
    p.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="an earlier profile's --out folder: also print the per-operator difference from it",
    )
    add_settings_options(p, twins)

    p = sub.add_parser(
        "kvasir-standin",
        help=(
            "generate a real-resolution Kvasir v2 stand-in (photo-like 720x576 to 1920x1072 JPEGs) for throughput and"
            " full-profile dry runs"
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help=f"writes OUT/{kvasir.FOLDER_NAME}/<class>/*.jpg; give OUT as --data-root",
    )
    p.add_argument("--per-class", type=positive_int, default=1000, help="JPEGs per class (default 1000, as Kvasir v2)")
    p.add_argument(
        "--processes",
        type=positive_int,
        default=min(8, os.cpu_count() or 1),
        help="classes written in parallel (default: the CPU cores, at most 8)",
    )
    p.add_argument("--seed", type=int, default=0)
    return parser
