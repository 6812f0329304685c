"""A diverged run is a failed run, found within one epoch, written as strict JSON, and shown as
diverged by every reader: tables and statistics leave it out of means, the gate counts it as a
regression. (`--optimizer sgd --lr 1e6` trained to test_loss=nan, exited 0, wrote a bare NaN,
crashed the mean ± std table and passed the gate.)"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from harness import runner
from harness.engines.base import EngineOutput, divergence
from harness.results.compare import compare
from harness.results.observations import Run, observations, run_of
from harness.results.record import RESULT_FILE, RunResult
from harness.results.stats import summaries
from harness.results.tables import cases_table
from tests.conftest import tiny_spec
from tests.test_fail_fast import run_cli, tiny_run_args
from tests.test_reports import record

MESSAGE = "the training loss became nan at epoch 1 (lr 1e+06): the run diverged"
VAL_MESSAGE = "the validation loss became nan at epoch 1 (lr 100): the run diverged"


def _strict(text: str):
    """json.loads that refuses NaN and Infinity, as JSON.parse and most non-Python readers do."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_a_diverged_run_stops_after_the_epoch_it_diverged_in(tiny_folder, settings, engine):
    spec = tiny_spec(engine=engine).with_recipe(optimizer="sgd", lr=1e6, epochs=3)
    result = runner.run(spec, settings.replace(data_root=tiny_folder, checkpoint_dirs=[settings.results_dir / "ckpt"]))
    assert result.status == "diverged" and not result.ok and result.failure == MESSAGE
    assert len(result.history) == 1 and result.test == {}  # stopped after epoch 1 of 3; a diverged model is not tested
    saved = _strict((settings.results_dir / result.run_id / RESULT_FILE).read_text())
    assert saved["status"] == "diverged" and saved["extra"]["divergence"] == {
        "phase": "train",
        "epoch": 1,
        "lr": 1e6,
        "loss": "nan",
        "message": MESSAGE,
    }
    assert saved["history"][0]["train_loss"] is None  # nan written as null
    assert not any((settings.results_dir / "ckpt").rglob("epoch_*.ckpt")), "the diverged epoch was checkpointed"
    assert RunResult.load(settings.results_dir / result.run_id / RESULT_FILE).status == "diverged"


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_a_loss_finite_in_training_but_nan_in_validation_is_a_diverged_run(tiny_folder, settings, engine):
    """sgd at lr 100 trains to a finite (huge) loss on the smallest case, then validates to nan: that run
    was `ok` with test_loss=nan and exit 0."""
    spec = tiny_spec(engine=engine).with_recipe(optimizer="sgd", lr=100.0, epochs=3)
    result = runner.run(spec, settings.replace(data_root=tiny_folder, checkpoint_dirs=[settings.results_dir / "ckpt"]))
    assert math.isfinite(result.history[0]["train_loss"]) and math.isnan(result.history[0]["val_loss"])
    assert (
        result.status == "diverged" and result.failure == VAL_MESSAGE and result.extra["divergence"]["phase"] == "val"
    )
    assert (
        len(result.history) == 1 and result.test == {}
    )  # stopped after the epoch whose validation diverged, not tested
    assert not any((settings.results_dir / "ckpt").rglob("epoch_*.ckpt")), "the diverged epoch was checkpointed"


def test_every_phase_s_loss_is_checked_and_a_finite_loss_is_not_a_divergence():
    row = {"epoch": 2, "lr": 0.1, "train_loss": 9e20, "val_loss": 1.0}
    assert divergence(row) is None  # finite, however large (docs/fail-fast.md: A diverged run)
    assert divergence({**row, "val_loss": float("inf")}).phase == "val"
    assert (
        divergence({**row, "train_loss": float("nan"), "val_loss": float("nan")}).phase == "train"
    )  # the first phase named
    tested = EngineOutput(history=[row], test={"test_loss": float("nan"), "test_acc": 0.3})
    assert tested.diverged.message() == "the test loss became nan after epoch 2 (lr 0.1): the run diverged"
    assert EngineOutput(history=[row], test={"test_loss": 9e20}).diverged is None


def test_the_command_fails_in_one_line_per_seed_and_the_tables_show_it(tiny_folder, tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        *tiny_run_args(tiny_folder, tmp_path, "--optimizer", "sgd", "--lr", "1e6", "--epochs", "3", "--seeds", "2"),
    )
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all(MESSAGE in line for line in errors), err
    case_row = next(line for line in out.splitlines() if line.startswith("| test_efficientnet-"))
    assert "0 (+2 diverged)" in case_row and "| diverged |" in case_row
    for path in (tmp_path / "results").glob(f"*/{RESULT_FILE}"):
        _strict(path.read_text())
    code, out, err = run_cli(capsys, "report", str(tmp_path / "results"))
    assert code == 0 and "Traceback" not in err and "| diverged |" in out


def test_statistics_and_tables_leave_diverged_runs_out_of_means():
    spec = tiny_spec()
    ok = [record(s, 0.8 + 0.1 * k, 0.5, run_id=f"ok{k}") for k, s in enumerate(spec.repeats(2))]
    diverged = dataclasses.replace(
        record(spec.with_recipe(seed=50), 0.0, 0.0, run_id="nan"),
        test={},
        status="diverged",
        extra={"divergence": {"message": MESSAGE}},
    )
    assert (
        summaries([{"test_loss": float("nan")}, {"test_loss": 1.0}, {"test_loss": None}], ["test_loss"])["test_loss"].n
        == 1
    )
    (row,) = cases_table([*ok, diverged]).rows
    assert row[3] == "2 (+1 diverged)" and row[4] == "85.00 ± 7.07 (n=2)"


def test_the_gate_counts_a_non_finite_metric_as_a_regression():
    base = {"case": [Run({"test_acc": 0.9, "test_loss": 0.3})]}
    result = compare(base, {"case": [Run({"test_acc": 0.9, "test_loss": float("nan")})]})
    (loss,) = [v for v in result.verdicts if v.metric == "test_loss"]
    assert loss.regressed and loss.basis == "non-finite value" and not result.passed
    assert "FAIL" in result.render() and "| nan |" in result.render()
    assert not compare(
        {"case": [Run({"test_acc": float("nan")})]}, {"case": [Run({"test_acc": 0.9})]}
    ).passed  # either side
    spec = tiny_spec()
    diverged = dataclasses.replace(record(spec, 0.0, 0.0), test={}, status="diverged")
    assert all(math.isnan(v) for k, v in run_of(diverged).metrics.items() if k.startswith("test_"))


def test_the_gate_reads_null_metrics_and_diverged_cases_from_benchmark_json(tmp_path):
    def bench(**info):
        return {"benchmarks": [{"extra_info": {"spec_id": "case", **info}}]}

    (tmp_path / "base.json").write_text(json.dumps(bench(test_acc=0.9, test_loss=0.3)))
    (tmp_path / "null.json").write_text(json.dumps(bench(test_acc=0.9, test_loss=None)))
    (tmp_path / "diverged.json").write_text(json.dumps(bench(status="diverged")))
    base = observations(tmp_path / "base.json")
    assert [v.metric for v in compare(base, observations(tmp_path / "null.json")).regressions] == ["test_loss"]
    assert {v.metric for v in compare(base, observations(tmp_path / "diverged.json")).regressions} == {
        "test_acc",
        "test_loss",
    }
