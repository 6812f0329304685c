"""Deterministic, stratified train/val/test split of one labelled sample list.

Every class is spread over the three parts in proportion to its size (largest-remainder rounding),
so each part keeps the class balance of the whole, and the same seed always gives the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.imagefolder import DataError
from harness.spec import Split

PARTS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {p: len(getattr(self, p)) for p in PARTS}


FRACTIONS_HINT = "--split 0.7,0.15,0.15"


def _part_totals(split: Split, n: int) -> np.ndarray:
    if split.by == "count":
        totals = np.array([split.train, split.val, split.test], dtype=np.int64)
        if totals.sum() > n:
            asked = "/".join(str(int(t)) for t in totals)
            raise DataError(f"the split asks for {int(totals.sum())} images ({asked}) but the dataset has {n}; give fractions instead, e.g. {FRACTIONS_HINT}")
        return totals
    return np.floor(np.array([split.train, split.val, split.test]) * n + 1e-9).astype(np.int64)


def _allocate(class_sizes: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per-class, per-part counts: proportional to class size, summing exactly to `totals`."""
    n = class_sizes.sum()
    exact = class_sizes[:, None] * totals[None, :] / n
    counts = np.floor(exact).astype(np.int64)
    remainder = exact - counts
    for part in range(len(totals)):
        missing = int(totals[part] - counts[:, part].sum())
        room = class_sizes - counts.sum(axis=1)
        order = [c for c in np.argsort(-remainder[:, part], kind="stable") if room[c] > 0]
        for c in order[:missing]:
            counts[c, part] += 1
    return counts


def stratified_split(labels: np.ndarray, split: Split, seed: int, class_names: tuple[str, ...]) -> SplitIndices:
    """Indices into `labels` for train, val and test; each class appears in every part.

    Errors name the class folders (`class_names[label]`) and a fix the command line can apply.
    """
    labels = np.asarray(labels)
    classes, class_sizes = np.unique(labels, return_counts=True)
    small = [f"'{class_names[c]}' ({size})" for c, size in zip(classes, class_sizes) if size < len(PARTS)]
    if small:
        raise DataError(f"class folder(s) {', '.join(small)} have fewer than {len(PARTS)} images, one each for train, val and test; add images or remove the folder(s)")
    counts = _allocate(class_sizes, _part_totals(split, len(labels)))
    if (counts == 0).any():
        empty = [f"'{class_names[c]}' (no {PARTS[p]} image)" for row, c in enumerate(classes) for p in range(len(PARTS)) if counts[row, p] == 0]
        raise DataError(f"the split {split.train:g}/{split.val:g}/{split.test:g} leaves class folder(s) {', '.join(empty)}; give larger parts, e.g. {FRACTIONS_HINT}, or add images")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for row, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.cumsum(counts[row])
        for part, chunk in enumerate(np.split(members, bounds)[: len(PARTS)]):
            parts[part].append(chunk)
    return SplitIndices(*(np.sort(np.concatenate(p)) for p in parts))
