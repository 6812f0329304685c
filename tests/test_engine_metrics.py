"""Each engine's reported metrics against values computed by hand: scripted logits through the
engines' own evaluation paths, and real runs (one process each, two DDP processes) checked against
their final checkpoint evaluated here."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import timm
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from harness import launch, models, runner
from harness.artifacts import RunArtifacts
from harness.artifacts.checkpoints import LAST, load
from harness.data import loading
from harness.engines.base import ThroughputMeter
from harness.engines.history import without_timing
from harness.engines.lightning_engine import ClassificationModule, trainer_kwargs
from harness.engines.poutyne_engine import evaluate, poutyne_model
from harness.engines.training import optimizer_for
from harness.spec import BenchmarkSpec, CustomMetric
from tests.conftest import tiny_spec
from tests.reference_metrics import reference_metrics, scripted_batches

NUM_CLASSES = 8


class ScriptedNet(nn.Module):
    """Answers each sample with its scripted row of logits; the input is the sample's index."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.from_numpy(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.long().view(-1)]


def as_is(x: torch.Tensor) -> torch.Tensor:
    """The scripted inputs are indices, not images: no normalisation."""
    return x


@pytest.fixture
def scripted():
    logits, target = scripted_batches(NUM_CLASSES, batches=4, batch_size=16, seed=1)
    loader = DataLoader(TensorDataset(torch.arange(len(target)), torch.from_numpy(target)), batch_size=16)
    expected = {f"test_{k}": v for k, v in reference_metrics(logits, target, NUM_CLASSES).items()}
    return ScriptedNet(logits), loader, expected


def test_lightning_test_metrics_equal_hand_computed(scripted, settings):
    net, loader, expected = scripted
    spec = tiny_spec(engine="lightning")
    module = ClassificationModule(
        net,
        spec,
        NUM_CLASSES,
        ThroughputMeter(),
        RunArtifacts(spec, settings.replace(wandb="off"), spec.id, fingerprint=""),
    )
    L.Trainer(**trainer_kwargs(spec, "cpu")).test(module, dataloaders=loader, verbose=False)
    assert module.test_metrics == pytest.approx(expected, abs=1e-6)


def test_poutyne_test_metrics_equal_hand_computed(scripted):
    net, loader, expected = scripted
    model = poutyne_model(
        net, optimizer_for(tiny_spec().recipe, net.parameters()), NUM_CLASSES, "32-true", normalize=as_is
    )
    assert evaluate(model, loader) == pytest.approx(expected, abs=1e-6)


def final_model_metrics(record, settings, checkpoint_dir) -> dict[str, float]:
    """The run's final weights (its last checkpoint) evaluated here, metrics computed by hand."""
    spec = BenchmarkSpec.from_dict(record.spec)
    bundle = loading.for_spec(spec, settings, models.data_stats(spec.model))
    state = load(checkpoint_dir / record.run_id / LAST)["state_dict"]
    net = timm.create_model(spec.model, num_classes=bundle.num_classes)
    net.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    net.eval()
    logits, target = [], []
    with torch.no_grad():
        for x, y in loading.loader(bundle.test, spec.recipe, workers=0):
            logits.append(net(bundle.normalizer()(x)).numpy())
            target.append(y.numpy())
    return {
        f"test_{k}": v
        for k, v in reference_metrics(np.concatenate(logits), np.concatenate(target), bundle.num_classes).items()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine, devices",
    [("poutyne", 1), ("lightning", 1), pytest.param("lightning", 2, marks=[pytest.mark.ddp, pytest.mark.heavy])],
)
def test_real_run_reports_the_metrics_of_its_final_model(engine, devices, tiny_folder, settings, tmp_path):
    settings = settings.replace(data_root=tiny_folder, checkpoint_dirs=(tmp_path / "ckpt",))
    record = launch.run(tiny_spec(engine=engine, devices=devices).with_recipe(epochs=2), settings)
    assert record.test == pytest.approx(final_model_metrics(record, settings, tmp_path / "ckpt"), abs=1e-5)


def test_engines_agree_on_every_metric_on_one_process(tiny_folder, settings):
    """Same model, batches, augmentations, loss, optimizer and schedule: Poutyne and Lightning report the same
    figures, a torchmetrics Metric named by import path too."""
    settings = settings.replace(data_root=tiny_folder)
    auroc = CustomMetric("auroc", "torchmetrics.classification:MulticlassAUROC", True)
    spec = tiny_spec(metrics=(auroc,)).with_recipe(
        epochs=3, scheduler="cosine", warmup_epochs=1, loss="torch.nn:CrossEntropyLoss", optimizer="torch.optim:AdamW"
    )
    poutyne, lightning = (runner.run(spec.replace(engine=engine), settings) for engine in ("poutyne", "lightning"))
    expected = {"test_loss", "test_acc", "test_f1", "test_top3", "test_top5", "test_auroc"}
    assert set(poutyne.test) == set(lightning.test) == expected
    assert [row["lr"] for row in poutyne.history] == pytest.approx([5e-4, 1e-3, 5e-4])
    assert lightning.test == pytest.approx(poutyne.test, rel=1e-4, abs=1e-6)
    for got, expected in zip(lightning.history, poutyne.history, strict=True):
        assert without_timing(got) == pytest.approx(without_timing(expected), rel=1e-4, abs=1e-6)
