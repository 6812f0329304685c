"""The shared metric definition against values computed by hand."""

import pytest
import torch

from harness.metrics import ClassificationMetrics
from tests.reference_metrics import reference_metrics, scripted_batches


def test_metrics_match_hand_computed_values():
    # 6 classes, 4 samples. Predicted argmax: 0, 1, 3, 5; targets: 0, 1, 2, 4.
    logits = torch.tensor(
        [
            [9.0, 1, 2, 3, 4, 5],  # target 0: top1 hit
            [1.0, 9, 8, 2, 0, 0],  # target 1: top1 hit
            [0.0, 1, 7, 9, 8, 2],  # target 2: rank 3 -> top3 hit
            [0.0, 6, 1, 2, 3, 9],  # target 4: rank 3 (9, 6, 3) -> top3 hit
        ]
    )
    target = torch.tensor([0, 1, 2, 4])
    metrics = ClassificationMetrics(6)
    metrics.update(logits, target)
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["acc"] == pytest.approx(2 / 4)
    assert got["top3"] == pytest.approx(4 / 4)
    assert got["top5"] == pytest.approx(4 / 4)
    # Macro F1 over classes present in target or prediction: class 0: 1, class 1: 1, class 2: 0,
    # class 3: 0 (predicted, not present), class 4: 0, class 5: 0 (predicted, not present).
    # Every class is seen in target or prediction, so all 6 count: (1 + 1 + 0 + 0 + 0 + 0) / 6.
    assert got["f1"] == pytest.approx(2 / 6)


def test_top_k_is_left_out_when_it_would_be_trivially_one():
    assert ClassificationMetrics(3).names == ("acc", "f1", "images")
    assert ClassificationMetrics(4).names == ("acc", "f1", "top3", "images")


def test_every_metric_over_batches_with_an_all_correct_first_batch():
    """The first batch's top-1 is all correct, so top-1/3/5 agree after it (the batch that made a
    MetricCollection merge them into one); they must stay three metrics to the end."""
    logits, target = scripted_batches(num_classes=8, batches=4, batch_size=16, seed=0)
    metrics = ClassificationMetrics(8)
    for start in range(0, len(target), 16):
        metrics.update(torch.from_numpy(logits[start : start + 16]), torch.from_numpy(target[start : start + 16]))
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got.pop("images") == len(target)  # every image counted once
    expected = reference_metrics(logits, target, 8)
    assert got == pytest.approx({k: v for k, v in expected.items() if k != "loss"}, abs=1e-6)
    assert got["top3"] > got["acc"] and got["top5"] > got["top3"]
