"""Statistics over repeats: runs of one experiment that differ in their seed alone.

Published training results (MLPerf, AlgoPerf) repeat runs over seeds and compare distributions; a
single run of a small test set moves by points from seed to seed. Here: per-experiment summaries
(n, mean, standard deviation, min, max), and the difference of two experiments' means with a Welch
confidence interval (unequal variances, as the two weights settings have). A one-sample interval
serves paired figures, such as an engine's speed over the plain loop's in each interleaved round.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation; 0.0 for one value
    min: float
    max: float

    def contains(self, value: float) -> bool:
        """`value` lies within the observed spread (mean ± std, and never narrower than min..max)."""
        return min(self.min, self.mean - self.std) <= value <= max(self.max, self.mean + self.std)

    def show(self, scale: float = 1.0, digits: int = 4) -> str:
        """`93.80 ± 0.41 (n=3)` when repeated, `93.80` alone."""
        mean = f"{scale * self.mean:.{digits}f}"
        return f"{mean} ± {scale * self.std:.{digits}f} (n={self.n})" if self.n > 1 else mean


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no values to summarize")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(len(values), statistics.fmean(values), std, min(values), max(values))


def summaries(runs: Sequence[dict[str, float]], metrics: Sequence[str]) -> dict[str, Summary]:
    """Per metric, the summary over the runs that have it as a finite number (a diverged run's
    metrics are missing or null, and never enter a mean)."""
    out = {}
    for metric in metrics:
        values = [run[metric] for run in runs if run.get(metric) is not None and math.isfinite(run[metric])]
        if values:
            out[metric] = summarize(values)
    return out


@dataclass(frozen=True)
class Difference:
    """Mean of `a` minus mean of `b`, with a Welch confidence interval and p-value when both sides
    are repeated (None otherwise: one run per side is a plain comparison)."""

    estimate: float
    low: float | None
    high: float | None
    p_value: float | None
    n: tuple[int, int]

    @property
    def repeated(self) -> bool:
        return self.low is not None

    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def show(self, scale: float = 1.0, digits: int = 2) -> str:
        shown = f"{scale * self.estimate:+.{digits}f}"
        if self.low is None or self.high is None or self.p_value is None:  # not repeated: all three are None
            return shown
        return f"{shown} [{scale * self.low:+.{digits}f}, {scale * self.high:+.{digits}f}] p={self.p_value:.3g}"


def difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Difference:
    """Welch's t-test of mean(a) - mean(b); with fewer than 2 values on a side, the plain difference."""
    estimate = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(estimate, None, None, None, (len(a), len(b)))
    if statistics.stdev(a) == 0 and statistics.stdev(b) == 0:  # identical repeats: no spread to test against
        return Difference(estimate, estimate, estimate, 0.0 if estimate else 1.0, (len(a), len(b)))
    result = scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return Difference(estimate, float(interval.low), float(interval.high), float(result.pvalue), (len(a), len(b)))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student's t confidence interval of the mean of repeats (None with fewer than two values)."""
    if len(values) < 2:
        return None
    if statistics.stdev(values) == 0:
        return statistics.fmean(values), statistics.fmean(values)
    interval = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(interval.low), float(interval.high)


def pooled_std(groups: Sequence[Sequence[float]]) -> float | None:
    """The pooled standard deviation of groups of repeats (None when no group has two values)."""
    repeated = [g for g in groups if len(g) > 1]
    if not repeated:
        return None
    dof = sum(len(g) - 1 for g in repeated)
    return math.sqrt(sum((len(g) - 1) * statistics.variance(g) for g in repeated) / dof)
