"""Learning curves of one run: loss and accuracy per epoch, train against val (`curves.png`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


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
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")  # the format is explicit: `path` may be a temporary name
    plt.close(figure)
    return path
