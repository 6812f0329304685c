"""Recipes a user can read and change: `recipes`, `--augment`, `--recipe-file`, one default profile,
every option's default in `--help`, the origin of every value in the record, eda previewing run's recipe."""

import json
import subprocess
import sys

import pytest

from harness import catalog, settings
from harness.cli.case import spec_from_args
from harness.cli.parser import build_parser
from harness.settings import REPO_ROOT
from harness.spec import SpecError
from tests.conftest import TINY_MODEL, harness_cli


def harness(*args):
    """`python -m harness ARGS` in a process of its own, for --help (argparse prints it and exits)."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def spec_of(*args):
    return spec_from_args(build_parser().parse_args(["run", "--weights", "random", *args]))[0]


def test_recipes_lists_the_catalog_with_sources_values_and_published_figures():
    done = harness_cli("recipes")
    assert done.returncode == 0
    for workflow in catalog.WORKFLOWS.values():
        assert f"{workflow.key}: {workflow.title}" in done.stdout and workflow.source in done.stdout
    assert "adamw lr 0.001, weight decay 0.05, batch 64, 40 epochs, 384 px" in done.stdout
    assert "published:  pretrained weights: test_acc 0.9237, test_loss 0.263" in done.stdout
    assert (
        "Rotate(limit=30, p=0.5)" in done.stdout
        and "then batch_size=32, lr=0.0006, epochs=6, head_init_std=0.01" in done.stdout
    )


def test_help_describes_every_option_with_its_default_and_names_the_recipes():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    for action in run._actions:
        assert action.help, f"{action.option_strings} has no description"
    text = harness("run", "--help").stdout
    assert "[TRAINBENCH_PROFILE; default smoke]" in text and "efficientnetv2: EfficientNetV2-B2" in text
    assert "recipes: base: A neutral base" in " ".join(harness("--help").stdout.split())


@pytest.mark.slow
@pytest.mark.heavy  # a pytest process of its own for --help
def test_one_default_profile_for_the_command_line_and_pytest():
    assert build_parser().parse_args(["run"]).profile == settings.DEFAULT_PROFILE == "smoke"
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "default smoke]" in " ".join(done.stdout.split())


def test_later_sources_win_and_the_spec_says_where_each_value_came_from(tmp_path):
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(
        "lr: 0.002\nepochs: 3\ntrain_augmentations: [HorizontalFlip, {name: Rotate, limit: 15, p: 0.5}]\n"
    )
    spec = spec_of("--recipe", "fastvit", "--recipe-file", str(recipe_file), "--epochs", "5", "--batch-size", "32")
    assert (spec.recipe.lr, spec.recipe.epochs, spec.recipe.batch_size, spec.recipe.image_size) == (0.002, 5, 32, 64)
    assert [a.name for a in spec.recipe.train_augmentations] == ["HorizontalFlip", "Rotate"]
    assert spec.origin_of("lr") == f"recipe file {recipe_file}" and spec.origin_of("epochs") == "--epochs"
    assert spec.origin_of("batch_size") == "--batch-size" and spec.origin_of("image_size") == "smoke profile"
    assert spec.origin_of("optimizer") == "recipe"
    assert (
        spec.recipe_fingerprint == spec.replace(recipe_origin=()).recipe_fingerprint
    )  # where a value came from is not part of the result


def test_augment_picks_the_train_augmentations_keeping_the_recipes_parameters():
    assert spec_of("--augment", "none").recipe.train_augmentations == ()
    chosen = spec_of("--recipe", "fastvit", "--augment", "Rotate,RandomGamma").recipe.train_augmentations
    assert [(a.name, a.kwargs) for a in chosen] == [("Rotate", {"limit": 30, "p": 0.5}), ("RandomGamma", {})]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--augment", "HorizntalFlip"],
            "--augment: albumentations has no transform named 'HorizntalFlip'; did you mean HorizontalFlip",
        ),
        (["--recipe-file", "{file}"], "--recipe-file {file}: lr is 'fast'; give a number"),
    ],
)
def test_a_bad_recipe_change_is_one_line_before_any_data(args, message, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": "fast"}')
    with pytest.raises(SpecError, match=message.format(file=bad).replace("(", r"\(").replace(")", r"\)")):
        spec_of(*[a.format(file=bad) for a in args])


@pytest.mark.parametrize(
    "augmentation, message",
    [
        (
            "{name: Rotate, limt: 15}",
            (
                "recipe file {file}: Rotate has no parameter 'limt' (did you mean 'limit'?); "
                "its parameters: limit, interpolation, border_mode, rotate_method, crop_border,"
            ),
        ),
        (
            "{name: HorizontalFlip, limit: 15}",
            "recipe file {file}: HorizontalFlip has no parameter 'limit'; its only parameter: p",
        ),
        (
            "{name: Rotate, limit: wide, p: 0.5}",
            (
                "recipe file {file}: Rotate's limit is 'wide', which albumentations refuses: "
                "tuple[float, float]: Input should be a valid tuple; float: Input should be a valid number"
            ),
        ),
        (
            "{name: HorizontalFlip, p: often}",
            (
                "recipe file {file}: HorizontalFlip's p is 'often', which albumentations refuses: "
                "Input should be a valid number"
            ),
        ),
        (
            "{name: PadIfNeeded, min_height: 10, pad_height_divisor: 2}",
            (
                "recipe file {file}: PadIfNeeded(min_height=10, pad_height_divisor=2) is refused by albumentations: "
                "Value error, Only one of 'min_height' and 'pad_height_divisor'"
            ),
        ),
    ],
)
def test_an_augmentation_parameter_albumentations_would_drop_or_refuse_is_one_line(augmentation, message, tmp_path):
    """albumentations only warns of a parameter its transform does not take, and trains without it
    (`limt: 15` trained with its default of 90 degrees while the record said 15)."""
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(f"train_augmentations: [{augmentation}]\n")
    with pytest.raises(SpecError) as refused:
        spec_of("--recipe-file", str(recipe_file))
    assert str(refused.value).startswith(message.format(file=recipe_file)) and "\n" not in str(refused.value)


@pytest.mark.slow
def test_a_run_records_each_values_origin_and_prints_what_was_given(tiny_folder, tmp_path):
    done = harness_cli(
        "run",
        "--recipe",
        "efficientnetv2",
        "--model",
        TINY_MODEL,
        "--data",
        str(tiny_folder),
        "--weights",
        "random",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--augment",
        "HorizontalFlip",
        "--workers",
        "0",
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stderr
    assert (
        "given: image_size 32 (--image-size), epochs 1 (--epochs), train_augmentations HorizontalFlip (--augment)"
        in done.stdout.splitlines()[0]
    )
    (record,) = (tmp_path / "r").glob("*/result.json")
    origin = dict(json.loads(record.read_text())["spec"]["recipe_origin"])
    assert origin["train_augmentations"] == "--augment" and origin["lr"] == "smoke profile"


@pytest.mark.slow
@pytest.mark.heavy
def test_eda_previews_the_recipe_run_would_use(tiny_folder, tmp_path):
    done = harness_cli(
        "eda", str(tiny_folder), "--out", str(tmp_path / "eda"), "--augment", "VerticalFlip", "--sample", "10"
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "eda" / "report.md").read_text()
    assert "`efficientnetv2 (smoke profile)` recipe" in report


def test_a_model_of_ones_own_without_a_recipe_takes_the_neutral_base_and_says_so():
    """`run --data DIR --model resnet18` took EfficientNetV2's smoke recipe in silence: Poutyne, a pretraining
    stand-in, lr 6e-4 and seven augmentations (70.1 % test accuracy on handwritten digits where none give 98.9 %)."""
    from harness.engines.progress import startup_line
    from harness.hardware import detect

    args = build_parser().parse_args(["run", "--data", "digits", "--model", "resnet18", "--lr", "0.002"])
    spec = spec_from_args(args)[0]
    base = catalog.WORKFLOWS["base"].recipe
    assert spec.recipe_name == "base" and spec.engine == "lightning" and spec.weights == "random"
    assert spec.recipe.train_augmentations == () and spec.recipe.optimizer == base.optimizer == "adam"
    assert spec.recipe.scheduler == "none" and spec.recipe.lr == 0.002 and spec.origin_of("lr") == "--lr"
    line = startup_line(spec, settings.RunSettings(), detect())
    assert ": the base recipe (smoke profile), lightning on " in line and "given: lr 0.002 (--lr)" in line
    named = spec_from_args(build_parser().parse_args(["run", "--model", "resnet18", "--recipe", "efficientnetv2"]))[0]
    assert named.recipe_name == "efficientnetv2" and len(named.recipe.train_augmentations) == 7
    assert spec_of().recipe_name == "efficientnetv2"  # no model, no recipe: the default workflow, as before
