"""A real one-epoch Poutyne run on tiny data, through the runner, and what it writes."""

import csv
import dataclasses
import json
import time

import pytest
import torch

from harness import runner
from harness.engines.base import ThroughputMeter
from harness.engines.history import without_timing
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
    assert 0.0 < saved.history[0]["data_wait_time"] < saved.history[0]["train_time"]  # 0.0 if the hook never ran
    assert 0.0 < saved.data_wait_share < 1.0 and saved.peak_gpu_memory_gib is None  # no GPU here
    assert saved.environment["torch"] == torch.__version__ and "git_commit" in saved.environment
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert len(rows) == 1 and float(rows[0]["val_acc"]) == pytest.approx(saved.history[0]["val_acc"])
    assert json.loads((run_dir / "result.json").read_text())["spec"]["model"] == "test_efficientnet"


def test_same_seed_same_result_whatever_the_loader_worker_count(tiny_folder, settings):
    """Augmentations are seeded per (seed, epoch, sample), not per worker: 0 and 2 workers train identically."""
    settings = settings.replace(data_root=tiny_folder)
    spec = tiny_spec().with_recipe(epochs=2)
    in_process = runner.run(spec, settings.replace(workers=0), run_id="w0")
    two_workers = runner.run(spec, settings.replace(workers=2), run_id="w2")
    assert two_workers.test == in_process.test
    assert [without_timing(r) for r in two_workers.history] == [without_timing(r) for r in in_process.history]
    loaders = [{k: v for k, v in r.loader.items() if k != "decode_cache"} for r in (in_process, two_workers)]
    assert loaders == [
        {"workers": 0, "workers_from": "--workers", "recipe_workers": 0},
        {"workers": 2, "workers_from": "--workers", "recipe_workers": 0},
    ]


def test_loader_workers_default_to_the_machine_not_the_recipe(tiny_folder, settings, monkeypatch):
    from harness import hardware
    from harness.data import loading

    spec, defaults = tiny_spec().with_recipe(workers=5), settings.replace(workers=None)
    gpu_box = hardware.Hardware(gpus=8, gpu_name="H100", gpu_bf16=True, cpu_cores=64)
    monkeypatch.setattr(hardware, "detect", lambda: gpu_box)
    assert [loading.workers_for(spec.replace(engine="lightning", devices=n), defaults) for n in (1, 2, 8)] == [
        16,
        16,
        8,
    ]
    assert (
        loading.prep_processes(spec.replace(engine="lightning", devices=8), defaults) == 2
    )  # every torchrun rank decodes at once
    monkeypatch.setattr(hardware, "detect", lambda: dataclasses.replace(gpu_box, gpus=0))
    assert loading.workers_for(spec, defaults) == 0  # training on CPUs: its threads have the cores
    assert loading.prep_processes(spec, defaults) == 16  # the decode pass still uses them
    assert (
        loading.workers_for(spec, settings.replace(workers=3)) == 3
        and loading.prep_processes(spec, settings.replace(workers=3)) == 3
    )


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


def test_throughput_meter_splits_off_the_time_spent_waiting_for_a_batch():
    meter = ThroughputMeter()
    meter.epoch_start()
    time.sleep(0.05)  # the loader is slow: the batch arrives late
    meter.batch_start()
    meter.batch_end(8)
    meter.batch_start()  # the next batch was ready
    meter.batch_end(8)
    figures = meter.epoch_figures()
    assert 0.05 <= figures["data_wait_time"] < figures["train_time"]
    assert figures["data_wait_time"] / figures["train_time"] > 0.5
