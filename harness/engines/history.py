"""History rows in the keys every engine shares."""

from __future__ import annotations

from collections.abc import Mapping

from harness.metrics import COUNT
from harness.spec import METRIC_NAMES

TIMING_KEYS = (
    "epoch_time",
    "train_time",
    "images_per_s",
    "data_wait_time",
    "energy_j",
    "j_per_image",
    "watts",
)  # what differs between identical runs


def without_timing(row: Mapping[str, float]) -> dict[str, float]:
    """A history row's reproducible part: what two runs of one seed must agree on."""
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


def history_row(
    epoch: int,
    lr: float,
    epoch_time: float,
    speed: Mapping[str, float],
    train: Mapping[str, float],
    val: Mapping[str, float],
    names: tuple[str, ...] = METRIC_NAMES,
) -> dict[str, float]:
    """`{epoch, lr, epoch_time, train_time, images_per_s, data_wait_time, train_loss, ..., train_images,
    val_loss, ..., val_images}`, for the metric `names` (the spec's: built-in and custom).

    `epoch_time` includes validation; `train_time`, `images_per_s` and `data_wait_time` (the part
    of `train_time` spent waiting for batches) cover the training batches only
    (`ThroughputMeter.epoch_figures`)."""
    row: dict[str, float] = {
        "epoch": int(epoch),
        "lr": float(lr),
        "epoch_time": float(epoch_time),
        **{k: float(v) for k, v in speed.items()},
    }
    for part, values in (("train", train), ("val", val)):
        for name in names:
            if name in values:
                row[f"{part}_{name}"] = float(values[name])
        if COUNT in values:
            row[f"{part}_{COUNT}"] = int(values[COUNT])
    return row
