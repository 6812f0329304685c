"""Learning curves of one run (`curves.png`: loss and accuracy per epoch, train against val), and a
case's trend over the last nights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from harness.results.trend import CaseTrend

TREND_LABELS = {"test_acc": "test accuracy", "steady_images_per_s": "steady-state train images/s"}


def plot_curves(history: list[dict[str, float]], path: Path, title: str) -> Path:
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, metric, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "acc", "accuracy")):
        for part, style in (("train", "-o"), ("val", "-s")):
            values = [row.get(f"{part}_{metric}") for row in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, style, label=part, markersize=4)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")  # the format is explicit: `path` may be a temporary name
    plt.close(figure)
    return path


def plot_trend(trend: CaseTrend, path: Path) -> Path:
    """One case over the last nights: test accuracy and steady-state images/s, the baseline dashed,
    each sustained step (a change point) a dotted red line before the night it began."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ticks = list(range(len(trend.nights)))
    for axis, (metric, values) in zip(axes, trend.values.items(), strict=True):
        points = [(i, v) for i, v in zip(ticks, values, strict=True) if v is not None]
        if points:
            axis.plot(*zip(*points, strict=True), "-o", markersize=4, label="night")
        if metric in trend.baseline:
            axis.axhline(trend.baseline[metric], linestyle="--", color="grey", label="baseline")
        for step in trend.steps.get(metric, ()):
            axis.axvline(
                trend.nights.index(step.night) - 0.5,
                linestyle=":",
                color="tab:red",
                label=f"step {step.relative:+.1%} from {step.night}",
            )
        axis.set_xticks(ticks, trend.nights, rotation=30, ha="right", fontsize=7)
        axis.set_ylabel(TREND_LABELS.get(metric, metric))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(trend.case, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path
