"""The noise in the difference of two sides' means of one metric, as the regression gate reads it.

A seed fixes initialisation, data order and augmentation draws, so where both sides ran the same
seeds on the same device, a metric computed from the weights (accuracy, loss, F1, top-k) differs
between the sides by the change alone: the sides are compared seed by seed, and the noise is the
spread of the per-seed differences (identical code: exactly 0). Otherwise the seed-to-seed spread
of both sides stays in the difference: the repeats' pooled standard deviation x sqrt(1/n1 + 1/n2).
Timed metrics (images/s, J/image) vary between runs of one seed with the machine's load, so they
are never paired.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.results.observations import TIMED_METRICS, Run
from harness.results.stats import pooled_std

SPREAD_FACTOR = 2.0  # standard errors of the difference: the noise band


@dataclass(frozen=True)
class Noise:
    spread: float  # the standard deviation behind it: of the per-seed differences (paired), else of the repeats, pooled
    std_error: float  # of the difference of the two means
    paired: bool

    @property
    def band(self) -> float:
        """The move that noise alone makes with some 95 % probability: SPREAD_FACTOR standard errors."""
        return SPREAD_FACTOR * self.std_error

    def seeds_to_resolve(self, move: float) -> int | None:
        """The fewest seeds a side whose noise band at this spread is no wider than `move` (the band of n seeds
        a side: SPREAD_FACTOR x spread x sqrt(1/n) paired, sqrt(2/n) not); None for a move of 0."""
        if move <= 0:
            return None
        per_seed = 1 if self.paired else 2
        return max(2, math.ceil(per_seed * (SPREAD_FACTOR * self.spread / move) ** 2 - 1e-9))


def paired_differences(baseline: Sequence[Run], current: Sequence[Run], metric: str) -> list[float] | None:
    """current - baseline of `metric` seed by seed, where both sides ran each of the same seeds once (else None)."""
    base = {run.seed: run.metrics[metric] for run in baseline if metric in run.metrics}
    cur = {run.seed: run.metrics[metric] for run in current if metric in run.metrics}
    counts = (sum(metric in run.metrics for run in baseline), sum(metric in run.metrics for run in current))
    if None in base or None in cur or set(base) != set(cur) or counts != (len(base), len(cur)):
        return None
    return [cur[seed] - base[seed] for seed in sorted(seed for seed in base if seed is not None)]  # none is None


def noise(baseline: Sequence[Run], current: Sequence[Run], metric: str, same_device: bool) -> Noise | None:
    """The noise of `metric`'s difference of means, paired where it may be; None without repeats to measure it by."""
    differences = paired_differences(baseline, current, metric) if same_device and metric not in TIMED_METRICS else None
    if differences is not None:
        if len(differences) < 2:
            return None
        spread = statistics.stdev(differences)
        return Noise(spread, spread / math.sqrt(len(differences)), paired=True)
    base_values = [run.metrics[metric] for run in baseline if metric in run.metrics]
    cur_values = [run.metrics[metric] for run in current if metric in run.metrics]
    pooled = pooled_std([base_values, cur_values])
    return (
        None
        if pooled is None
        else Noise(pooled, pooled * math.sqrt(1 / len(base_values) + 1 / len(cur_values)), paired=False)
    )
