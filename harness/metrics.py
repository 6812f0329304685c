"""The one definition of the metrics every engine reports (torchmetrics, so DDP sync comes free).

acc: micro accuracy; f1: macro F1; top3/top5: top-k accuracy (only where k < number of classes,
since top-k with k >= classes is trivially 1). Values are fractions in [0, 1]; loss is the
sample-weighted mean cross-entropy, computed by each engine.

Compute groups are off. torchmetrics merges metrics whose states are equal after the first update
into one group and updates only its first member from then on; after an all-correct first batch,
top-1, top-3 and top-5 states are equal, so top-k silently became accuracy for the rest of the
phase. The few extra state updates cost nothing next to a training step.
"""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

TOP_K: tuple[int, ...] = (3, 5)
METRIC_NAMES: tuple[str, ...] = ("loss", "acc", "f1", "top3", "top5")


def metric_collection(num_classes: int) -> MetricCollection:
    metrics = {
        "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
        "f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
    }
    for k in TOP_K:
        if k < num_classes:
            metrics[f"top{k}"] = MulticlassAccuracy(num_classes=num_classes, top_k=k, average="micro")
    return MetricCollection(metrics, compute_groups=False)
