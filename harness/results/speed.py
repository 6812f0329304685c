"""Training speed from a run's history: the overall figure and the steady-state one.

Each history row carries the epoch's training seconds (`train_time`) and images/s (`images_per_s`),
measured by the engines' shared meter. The overall figure weighs every epoch by its time; the
steady-state figure is the median over the epochs after the first, whose start-up (worker
processes, lazy initialisation, a tracker's start, autotuning) short runs are dominated by. With a
single epoch there is no steady state to separate, so it is that epoch's figure. The data-wait
share says how much of the steady epochs' training time the device waited for its batches: a
ratio of summed seconds (time-weighted), where the steady images/s is a median of epoch rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median

WARMUP_EPOCHS = 1


def _measured(history: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    return [row for row in history if row.get("train_time", 0.0) > 0 and "images_per_s" in row]


def _steady(rows: list[Mapping[str, float]]) -> list[Mapping[str, float]]:
    """The epochs after the warm-up; a run shorter than that is its own steady state."""
    return rows[WARMUP_EPOCHS:] or rows


def overall_images_per_s(history: Sequence[Mapping[str, float]]) -> float:
    """Training images over training seconds, across every epoch (0.0 when none was measured)."""
    rows = _measured(history)
    seconds = sum(row["train_time"] for row in rows)
    return sum(row["images_per_s"] * row["train_time"] for row in rows) / seconds if seconds else 0.0


def steady_images_per_s(history: Sequence[Mapping[str, float]]) -> float:
    """Median training images/s over the epochs after the warm-up (0.0 when none was measured)."""
    steady = _steady(_measured(history))
    return float(median(row["images_per_s"] for row in steady)) if steady else 0.0


def steady_data_wait_share(history: Sequence[Mapping[str, float]]) -> float | None:
    """Share of the steady epochs' training time spent waiting for batches (None in histories
    from before the meter measured it)."""
    steady = _steady([row for row in _measured(history) if "data_wait_time" in row])
    seconds = sum(row["train_time"] for row in steady)
    return sum(row["data_wait_time"] for row in steady) / seconds if seconds else None
