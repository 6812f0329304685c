"""What a train pipeline really does, measured: each augmentation's apply rate against its `p`, the
share of samples left un-augmented, and whether the transforms' decisions are independent.

The draws go through the dataset's own seeding (`ImageClassificationDataset.transformed` with
`(sample, epoch)` keys, as `EpochSampler` yields them), so they measure what training sees. Whether
a transform applied is albumentations' own account of its last call (`get_applied_params()` is
empty when it was skipped). Used by the tests (a wrong seeding fails them) and by `eda`, so a wrong
pipeline is visible before a long run.

Statistics, each family at CONFIDENCE overall (Bonferroni): a Clopper-Pearson interval of each
rate, and of the un-augmented share against the product of (1 - p), at 1 - ALPHA / (transforms + 1)
each; for every pair of transforms with 0 < p < 1, Pearson's chi-square test of independence on
their 2x2 co-occurrence table (no continuity correction), judged against ALPHA / pairs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.data.dataset import ImageClassificationDataset
from harness.data.transforms import TRAIN_AUGMENTATIONS

CONFIDENCE = 0.99
ALPHA = 1 - CONFIDENCE


def _interval(hits: int, draws: int, confidence: float) -> tuple[float, float]:
    interval = stats.binomtest(hits, draws).proportion_ci(confidence, method="exact")
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class ApplyRate:
    """One transform: how often it applied in `draws` samples, against its probability `p`."""

    name: str
    p: float
    applied: int
    draws: int
    confidence: float = CONFIDENCE  # of this one interval (a family's share of CONFIDENCE)

    @property
    def rate(self) -> float:
        return self.applied / self.draws

    @property
    def interval(self) -> tuple[float, float]:
        return _interval(self.applied, self.draws, self.confidence)

    @property
    def consistent(self) -> bool:
        low, high = self.interval
        return low <= self.p <= high


@dataclass(frozen=True)
class ApplyStatistics:
    """The apply pattern of one pipeline over `draws` samples."""

    rates: tuple[ApplyRate, ...]
    draws: int
    unaugmented: int  # samples no augmentation touched
    pair_p_values: tuple[tuple[str, str, float], ...]  # chi-square test of independence per pair of random transforms

    @property
    def expected_unaugmented(self) -> float:
        """The share of samples no transform touches when each draws on its own: the product of (1 - p)."""
        return math.prod(1 - r.p for r in self.rates)

    @property
    def confidence(self) -> float:
        """Of each interval: CONFIDENCE shared by the rates and the un-augmented share (Bonferroni)."""
        return 1 - ALPHA / (len(self.rates) + 1)

    @property
    def unaugmented_consistent(self) -> bool:
        low, high = _interval(self.unaugmented, self.draws, self.confidence)
        return low <= self.expected_unaugmented <= high

    @property
    def smallest_pair_p_value(self) -> float | None:
        return min((p for *_, p in self.pair_p_values), default=None)

    @property
    def independent(self) -> bool:
        """No pair's co-occurrence departs from independence beyond ALPHA / pairs."""
        smallest = self.smallest_pair_p_value
        return smallest is None or smallest > ALPHA / len(self.pair_p_values)

    @property
    def consistent(self) -> bool:
        return all(r.consistent for r in self.rates) and self.unaugmented_consistent and self.independent

    def markdown(self) -> str:
        """A table of rates against `p`, then the un-augmented share and the independence test."""
        lines = [
            (
                f"| transform | p | applied (of {self.draws}) | measured rate | {self.confidence:.2%} interval |"
                " consistent with p |"
            ),
            "|---|---|---|---|---|---|",
        ]
        for r in self.rates:
            low, high = r.interval
            lines.append(
                f"| {r.name} | {r.p:g} | {r.applied} | {r.rate:.3f} | {low:.3f}-{high:.3f} |"
                f" {'yes' if r.consistent else 'NO'} |"
            )
        low, high = _interval(self.unaugmented, self.draws, self.confidence)
        lines += [
            "",
            (
                f"Intervals at {self.confidence:.2%} each, so that all {len(self.rates) + 1} hold together at"
                f" {CONFIDENCE:.0%} (Bonferroni)."
            ),
            (
                f"Un-augmented samples: {self.unaugmented} of {self.draws} ({self.unaugmented / self.draws:.2%},"
                f" interval {low:.2%}-{high:.2%}); expected {self.expected_unaugmented:.2%} when every transform draws"
                f" on its own: {'consistent' if self.unaugmented_consistent else 'NOT consistent'}."
            ),
        ]
        smallest = self.smallest_pair_p_value
        if smallest is not None:
            verdict = "independent" if self.independent else "NOT independent: transforms fire together"
            lines.append(
                f"Pairwise independence ({len(self.pair_p_values)} pairs, chi-square): smallest p-value {smallest:.3g},"
                f" {verdict}."
            )
        return "\n".join(lines)


def applied_matrix(
    dataset: ImageClassificationDataset, draws: int, images: int = 16
) -> tuple[tuple[str, ...], tuple[float, ...], np.ndarray]:
    """(names, probabilities, `(draws, transforms)` bool matrix) of the recipe's augmentations over
    `draws` keys `(sample, epoch)`: every sample of epoch 0, then of epoch 1, ... Pixels come from the
    first `images` samples, decoded once and cycled (whether a transform applies depends on its
    stream, not on the pixels)."""
    steps = dataset.transform.transforms[TRAIN_AUGMENTATIONS]
    pool = [dataset.pixels(i) for i in range(min(images, len(dataset)))]
    matrix = np.zeros((draws, len(steps)), dtype=bool)
    keys = ((i, epoch) for epoch in itertools.count() for i in range(len(dataset)))
    for row, key in zip(range(draws), keys, strict=False):
        dataset.transformed(pool[key[0] % len(pool)], key)
        matrix[row] = [bool(step.get_applied_params()) for step in steps]
    return tuple(type(s).__name__ for s in steps), tuple(float(s.p) for s in steps), matrix


def apply_statistics(dataset: ImageClassificationDataset, draws: int = 2000, images: int = 16) -> ApplyStatistics:
    """The measured apply pattern of `dataset`'s train pipeline (see `applied_matrix`)."""
    names, probabilities, matrix = applied_matrix(dataset, draws, images)
    confidence = 1 - ALPHA / (len(names) + 1)
    rates = tuple(
        ApplyRate(n, p, int(matrix[:, k].sum()), draws, confidence)
        for k, (n, p) in enumerate(zip(names, probabilities, strict=True))
    )
    random_steps = [k for k, p in enumerate(probabilities) if 0 < p < 1 and 0 < matrix[:, k].sum() < draws]
    pairs = []
    for a, b in itertools.combinations(random_steps, 2):
        table = [
            [int(np.sum(matrix[:, a] & matrix[:, b])), int(np.sum(matrix[:, a] & ~matrix[:, b]))],
            [int(np.sum(~matrix[:, a] & matrix[:, b])), int(np.sum(~matrix[:, a] & ~matrix[:, b]))],
        ]
        pairs.append(
            (f"{a}:{names[a]}", f"{b}:{names[b]}", float(stats.chi2_contingency(table, correction=False).pvalue))
        )  # every margin > 0
    return ApplyStatistics(rates, draws, int((~matrix.any(axis=1)).sum()), tuple(pairs))
