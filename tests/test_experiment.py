"""An experiment file: one YAML file of cases (model, data, engine, recipe values, a matrix, thresholds, metrics),
validated before anything trains, run by `trainbench run --config FILE` and collected by pytest as cases."""

from __future__ import annotations

import textwrap

import pytest

from harness.errors import HarnessError
from harness.experiment import read
from tests.conftest import TINY_MODEL, harness_cli

pytest_plugins = ["pytester"]

EXPERIMENT = textwrap.dedent(
    f"""
    model: {TINY_MODEL}
    data: tiny
    engine: poutyne
    epochs: 1
    image_size: 32
    batch_size: 8
    split: {{train: 0.5, val: 0.25, test: 0.25}}
    scheduler: cosine
    matrix:
      lr: [0.001, 0.003]
      precision: [32-true, bf16-mixed]
    thresholds: {{acc: ">= 0.1", loss: "<= 5"}}
    metrics: {{auroc: "torchmetrics.classification:MulticlassAUROC"}}
    """
)


def write(folder, text: str, name: str = "grid.trainbench.yaml"):
    path = folder / name
    path.write_text(text)
    return path


def test_a_matrix_is_every_combination_with_readable_ids_and_the_files_values(tmp_path, tiny_folder):
    cases = read(write(tiny_folder.parent, EXPERIMENT))
    assert [c.id for c in cases] == [
        f"{TINY_MODEL}-tiny-poutyne-{p}-1dev-random-lr{lr}" for lr in ("0.001", "0.003") for p in ("32true", "bf16")
    ]
    spec = cases[1].spec
    assert (spec.recipe.lr, spec.precision, spec.recipe.scheduler, spec.recipe_name) == (
        1e-3,
        "bf16-mixed",
        "cosine",
        "base",
    )
    assert spec.origin_of("lr") == "grid.trainbench.yaml matrix" and spec.origin_of("epochs").startswith(
        "experiment file"
    )
    assert [t.describe() for t in spec.thresholds] == [
        "test_acc >= 0.1 (grid.trainbench.yaml)",
        "test_loss <= 5 (grid.trainbench.yaml)",
    ]
    assert spec.metrics[0].name == "auroc" and spec.benchmark == "grid" and cases[0].data_root == tiny_folder


@pytest.mark.parametrize(
    "change, says",
    [
        ("colour: red", "sets colour, which is no key of a case nor a recipe field"),
        ("epochs: four", "epochs is 'four'; give"),
        ("matrix: {colour: [1, 2]}", "matrix axis 'colour' is no case key nor recipe field"),
        ("thresholds: {acc: 'at least 0.5'}", "threshold acc: 'at least 0.5'; give '>= NUMBER' or '<= NUMBER'"),
        ("thresholds: {acc_: '>= 0.5'}", "threshold on acc_, which no case reports; give one of acc, auroc, f1"),
        ("recipe: fastvitt", "recipe 'fastvitt'; choose one of base, efficientnetv2, fastvit"),
        ("metrics: {auroc: 'nosuch.module:Metric'}", "module 'nosuch.module' cannot be imported"),
        ("scheduler: linear", "unknown scheduler 'linear'"),
    ],
)
def test_a_bad_experiment_file_is_one_line_naming_the_key(tmp_path, change, says):
    key, kept, dropping = change.split(":")[0], [], False
    for line in EXPERIMENT.splitlines():  # the key's line, and its indented lines, left out
        dropping = line.startswith(f"{key}:") or (dropping and line.startswith(" "))
        kept += [] if dropping else [line]
    with pytest.raises(HarnessError) as error:
        read(write(tmp_path, "\n".join(kept) + f"\n{change}\n"))
    assert says in str(error.value) and "\n" not in str(error.value)


def test_pytest_collects_an_experiment_file_as_its_cases_and_k_selects_them(pytester, tiny_folder):
    write(pytester.path, EXPERIMENT.replace("data: tiny", f"data: {tiny_folder}"))
    done = pytester.runpytest("--collect-only", "-q", "-k", "lr0.003 and 32true")
    done.assert_outcomes()
    assert done.outlines[0] == f"grid.trainbench.yaml::{TINY_MODEL}-tiny-poutyne-32true-1dev-random-lr0.003"
    assert "1/4 tests collected (3 deselected)" in done.stdout.str()
    write(pytester.path, "model: resnet18\n", "broken.trainbench.yaml")
    broken = pytester.runpytest("--collect-only", "-q")
    assert "experiment file" in broken.stdout.str() and "data" in broken.stdout.str()


def test_run_config_refuses_the_case_options_the_file_decides(tmp_path, tiny_folder):
    path = write(tmp_path, EXPERIMENT.replace("data: tiny", f"data: {tiny_folder}"))
    done = harness_cli("run", "--config", path, "--epochs", "2", "--precision", "bf16-mixed", "--seed", "0")
    assert done.returncode == 2 and "--precision, --seed, --epochs would not apply: drop it" in done.stderr, done.stderr


@pytest.mark.slow
def test_run_config_runs_every_case_and_writes_the_report(tmp_path, tiny_folder):
    text = EXPERIMENT.replace("data: tiny", f"data: {tiny_folder}").replace("precision: [32-true, bf16-mixed]", "")
    done = harness_cli("run", "--config", write(tmp_path, text), "--results-dir", tmp_path / "r", "--wandb", "off")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "grid.trainbench.yaml: 2 case(s)" in done.stdout and "auroc ↑" in done.stdout
    assert (tmp_path / "r" / "summary.md").is_file() and len(list((tmp_path / "r").glob("*/result.json"))) == 2
