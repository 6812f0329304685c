"""The one definition of the metrics every engine reports, as one torchmetrics Metric.

acc: micro accuracy; f1: macro F1 over the classes seen in target or prediction (torchmetrics'
rule); top3/top5: top-k accuracy (only where k < number of classes, since top-k with k >= classes is
trivially 1). Values are fractions in [0, 1]; loss is the sample-weighted mean cross-entropy,
computed by each engine. `images` is how many images the figures count (the history keeps it per
part: under DDP each image of an epoch counts once, the sampler's padding never).

Why one Metric and not a collection of four: the engines update it on every training batch, which
the plain loop they are measured against does not. Four torchmetrics classes each validate their
inputs (host syncs on a GPU), rank the logits and keep their own states; this one ranks once
(`topk`), counts a confusion matrix with one `bincount`, and leaves everything on the device until
`compute`. Its states are sums, so DDP sync is torchmetrics' own (dist_reduce_fx="sum"). (A
MetricCollection would also need its compute groups off: it merges metrics whose states are equal
after the first update, and after an all-correct first batch top-1, top-3 and top-5 are equal, so
top-k silently became accuracy. One Metric has no such groups.)

A metric of the user's own (`spec.CustomMetric`, by import path) is any torchmetrics `Metric` built
from the number of classes, updated with the same logits and targets in every engine, and computed
per epoch and part like the built-in ones.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from harness.errors import ExtensionError
from harness.extensions import call, resolve_callable
from harness.spec import CustomMetric

TOP_K: tuple[int, ...] = (3, 5)
COUNT = "images"  # the key of the image count beside the metrics


class ClassificationMetrics(Metric):
    """acc, macro F1, top-3, top-5 from logits `(N, C)` and integer targets `(N,)`."""

    confusion: torch.Tensor  # states, added by add_state (torch types a module's dynamic attributes loosely)
    top_k_hits: torch.Tensor

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.top_k = tuple(k for k in TOP_K if k < num_classes)
        self.names: tuple[str, ...] = ("acc", "f1", *(f"top{k}" for k in self.top_k), COUNT)
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("top_k_hits", torch.zeros(len(self.top_k), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        target = target.long()
        predicted = logits.argmax(dim=1)
        classes = self.num_classes
        self.confusion += torch.bincount(target * classes + predicted, minlength=classes * classes).view(
            classes, classes
        )
        if self.top_k:
            hits = logits.topk(max(self.top_k), dim=1).indices == target[:, None]
            self.top_k_hits += torch.stack([hits[:, :k].any(dim=1).sum() for k in self.top_k])

    def compute(self) -> dict[str, torch.Tensor]:
        confusion = self.confusion.double()  # rows: target, columns: prediction
        total = confusion.sum().clamp(min=1)
        hits = confusion.diagonal()
        wrong = confusion.sum(dim=0) + confusion.sum(dim=1) - 2 * hits  # false positives + false negatives
        seen = (hits + wrong) > 0
        f1 = (2 * hits[seen] / (2 * hits[seen] + wrong[seen])).mean() if seen.any() else confusion.new_zeros(())
        out = {"acc": hits.sum() / total, "f1": f1}
        out.update({f"top{k}": self.top_k_hits[i].double() / total for i, k in enumerate(self.top_k)})
        out = {name: value.float() for name, value in out.items()}
        out[COUNT] = self.confusion.sum()
        return out


def custom_metric(name: str, path: str) -> CustomMetric:
    """A metric of the user's own (`spec.CustomMetric`), its direction from its torchmetrics class's
    `higher_is_better` (or a factory function's attribute of that name). An ExtensionError names the
    fix when the path does not resolve or says no direction."""
    factory = resolve_callable(path, f"metric {name}")
    direction = getattr(factory, "higher_is_better", None)
    if not isinstance(direction, bool):
        raise ExtensionError(
            f"metric {name} {path!r} does not say whether higher is better; set higher_is_better = True (or False)"
            " on its class, as torchmetrics' own metrics do"
        )
    return CustomMetric(name, path, direction)


def parse_metric(text: str) -> CustomMetric:
    """`auroc=torchmetrics.classification:MulticlassAUROC` (`--metric`): a metric of the user's own."""
    name, _, path = text.partition("=")
    if not name or not path:
        raise ExtensionError(
            f"--metric takes NAME=package.module:attribute, e.g. auroc=torchmetrics.classification:MulticlassAUROC;"
            f" got {text!r}"
        )
    return custom_metric(name.strip(), path.strip())


def custom_metrics(metrics: tuple[CustomMetric, ...], num_classes: int) -> dict[str, Metric]:
    """A fresh torchmetrics Metric per custom metric, each built as `factory(num_classes=N)`."""
    built = {}
    for metric in metrics:
        made = call(metric.path, f"metric {metric.name}", "factory(num_classes=N)", num_classes=num_classes)
        if not isinstance(made, Metric):
            raise ExtensionError(
                f"metric {metric.name} {metric.path!r} built a {type(made).__name__}, not a torchmetrics Metric;"
                " subclass torchmetrics.Metric (update(logits, targets), compute() -> one number)"
            )
        built[metric.name] = made
    return built


class AsLightningFeedsIt(Metric):
    """`inner` fed as the Lightning engine feeds a custom metric: float32 logits, outside autocast (Poutyne updates
    its epoch metrics inside the forward pass's autocast, with bf16 or fp16 logits, and a softmax there would give
    another AUROC than Lightning's)."""

    full_state_update = False

    def __init__(self, inner: Metric) -> None:
        super().__init__()
        self.inner = inner

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        with torch.autocast(logits.device.type, enabled=False):
            self.inner.update(logits.detach().float(), target)

    def compute(self) -> torch.Tensor:
        return self.inner.compute()

    def reset(self) -> None:
        super().reset()
        self.inner.reset()
