"""Sustained steps in a case's nights: change points of a metric's per-night means, and what tonight is.

Detection is `ruptures`' PELT (Killick et al. 2012) with the L2 cost (a change in the mean), every
segment at least MIN_NIGHTS nights long, and a penalty of PENALTY x sigma^2 x ln(n): sigma is the
noise of one night, estimated robustly from the nights themselves (the median absolute difference
of consecutive nights / (0.6745 sqrt 2), which a single step barely moves), so a step must stand
well clear of the night-to-night noise. `ruptures` rather than Apache Otava (the E-divisive method
made for performance data): Otava 0.8 pins numpy 2.2 and scipy < 1.17 and brings database, BigQuery
and Slack clients, and cannot be installed beside this repository's pins; PELT with a mean-shift
cost answers the same question for a series of nightly means.

Tonight, for a regressed case, is one of three things: the continuation of a step that began on an
earlier night (the last change point's segment reaches tonight); a single-night outlier so far
(tonight alone lies more than OUTLIER_SIGMAS noise units from the nights before; a step if the next
nights stay there: a segment needs MIN_NIGHTS nights before it can be called one); or within the
nights' noise.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import ruptures

MIN_NIGHTS = 2
# measured on 14 nights of unit noise: 3 % of series get a false step;
# a 4-sigma step at night 7 is found within a night 92 % of the time
PENALTY = 6.0
OUTLIER_SIGMAS = 3.0


@dataclass(frozen=True)
class ChangePoint:
    """The metric's mean moved from `before` (the nights before `night`) to `after` (from `night` on)."""

    night: str
    before: float
    after: float

    @property
    def relative(self) -> float:
        return (self.after - self.before) / abs(self.before) if self.before else math.inf

    def describe(self) -> str:
        return f"a step that began on {self.night}: {self.before:.4g} -> {self.after:.4g} ({self.relative:+.1%})"


def noise(values: Sequence[float]) -> float:
    """One night's noise (standard deviation), from the median absolute difference of consecutive nights."""
    if len(values) < 2:
        return 0.0
    return statistics.median(abs(b - a) for a, b in itertools.pairwise(values)) / (0.6745 * math.sqrt(2))


def _finite(nights: Sequence[str], values: Sequence[float | None]) -> tuple[list[str], list[float]]:
    kept = [(n, v) for n, v in zip(nights, values, strict=False) if v is not None and math.isfinite(v)]
    return [n for n, _ in kept], [v for _, v in kept]


def change_points(nights: Sequence[str], values: Sequence[float | None]) -> list[ChangePoint]:
    """The sustained steps of one metric over the nights (a night without a value is left out)."""
    nights, values = _finite(nights, values)
    if len(values) < 2 * MIN_NIGHTS:
        return []
    sigma = noise(values) or 1e-6 * (abs(statistics.fmean(values)) or 1.0)  # identical nights: any move is a step
    signal = np.asarray(values, dtype=float).reshape(-1, 1)
    ends = (
        ruptures.Pelt(model="l2", min_size=MIN_NIGHTS, jump=1)
        .fit(signal)
        .predict(pen=PENALTY * sigma**2 * math.log(len(values)))
    )
    starts = [0, *ends[:-1]]
    segments = [values[a:b] for a, b in zip(starts, ends, strict=True)]
    return [
        ChangePoint(nights[start], statistics.fmean(before), statistics.fmean(after))
        for start, before, after in zip(starts[1:], segments, segments[1:], strict=False)
    ]


def tonight(nights: Sequence[str], values: Sequence[float | None]) -> str:
    """What the last night is, in one phrase (module docstring): judged against the level and the
    noise of the nights before it."""
    nights, values = _finite(nights, values)
    if len(values) < 3:
        return "too few earlier nights to tell a step from an outlier"
    earlier = change_points(nights[:-1], values[:-1])
    start = nights.index(earlier[-1].night) if earlier else 0
    level, sigma = statistics.fmean(values[start:-1]), noise(values[:-1])
    moved = values[-1] - level
    if abs(moved) > OUTLIER_SIGMAS * sigma:
        share = f"{moved / abs(level):+.1%}" if level else f"{moved:+.4g}"
        return (
            f"tonight alone so far: {level:.4g} -> {values[-1]:.4g} ({share}), a single-night outlier; a step if the"
            " next nights stay there"
        )
    if earlier:
        return earlier[-1].describe() + ", which tonight continues"
    return "within the nights' noise"
