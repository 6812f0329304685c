"""A real one-epoch Poutyne run on tiny data, through the runner, and what it writes."""

import csv
import json

import pytest
import torch

from harness import runner
from harness.engines.base import ThroughputMeter
from harness.engines.poutyne_engine import MixedPrecisionModel
from harness.results.record import RunResult
from tests.conftest import tiny_spec


def test_one_epoch_run_writes_a_complete_record(tiny_folder, settings):
    settings = settings.replace(data_root=tiny_folder)
    record = runner.run(tiny_spec(), settings)
    run_dir = settings.results_dir / record.run_id
    saved = RunResult.load(run_dir / "result.json")
    assert saved.test == record.test
    assert set(saved.test) == {"test_loss", "test_acc", "test_f1", "test_top3", "test_top5"}
    assert 0.0 <= saved.test["test_acc"] <= 1.0 and saved.test["test_loss"] > 0
    assert len(saved.history) == 1 and {"train_loss", "val_loss", "val_acc", "val_f1", "lr"} <= set(saved.history[0])
    assert saved.train_images_per_s > 0 and saved.wall_time_s > 0
    assert saved.environment["torch"] == torch.__version__ and "git_commit" in saved.environment
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert len(rows) == 1 and float(rows[0]["val_acc"]) == pytest.approx(saved.history[0]["val_acc"])
    assert json.loads((run_dir / "result.json").read_text())["spec"]["model"] == "test_efficientnet"


def test_same_seed_same_result(tiny_folder, settings):
    settings = settings.replace(data_root=tiny_folder)
    a = runner.run(tiny_spec(), settings, run_id="a")
    b = runner.run(tiny_spec(), settings, run_id="b")
    assert a.test == pytest.approx(b.test)
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"])


def test_bf16_autocast_really_changes_the_forward_dtype():
    net = torch.nn.Linear(4, 3)
    seen = []
    net.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    model = MixedPrecisionModel(net, "adam", "cross_entropy", precision="bf16-mixed")
    model.train_on_batch(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    assert seen == [torch.bfloat16]
    assert model.scaler is None


def test_throughput_meter_counts_only_training_batches():
    meter = ThroughputMeter()
    meter.epoch_start()
    meter.batch_end(10)
    meter.batch_end(6)
    assert meter.images == 16 and meter.seconds > 0
