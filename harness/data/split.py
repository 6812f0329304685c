"""Deterministic, stratified train/val/test split of one labelled sample list.

Fractions: each class is cut on its own by the largest-remainder (Hamilton) method: part p gets
floor(size x fraction_p) images, and the images left over go one each to the parts with the
largest remainders (ties to train, then val, then test). When the fractions sum to 1 every image
of the class lands in a part; fractions that sum to less leave the rest out on purpose.
Counts (`5564,1600,832`, Kvasir's published split): each part gets exactly that many images,
spread over the classes in proportion to their sizes (largest remainder again); images beyond the
three counts are left out. Either way `SplitIndices.unused` says how many, and the record keeps it.

Every class needs an image in every part. A split that leaves a class without one is refused with
a `--split` that this same rule accepts for every class (searched on a grid of 0.05, closest to the
split given), and with the number of images each short class would need under the split given.
The same seed always gives the same split. A pre-split layout (`train/`, `val/`, `test/`) is split by
its folders instead (`split_of`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from harness.data.imagefolder import ImageIndex
from harness.errors import DataError
from harness.spec import Split

PARTS: tuple[str, ...] = ("train", "val", "test")
GRID = 20  # advice searches fractions in steps of 1/GRID
MAX_IMAGES_ADVISED = 100_000


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    unused: int = 0  # images in no part: beyond a count split's totals, or fractions summing to under 1

    def sizes(self) -> dict[str, int]:
        return {p: len(getattr(self, p)) for p in PARTS}


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """`total` items over parts in proportion to `shares` (summing to 1): floors, then one each to
    the largest remainders, ties in part order."""
    quotas = total * np.asarray(shares, dtype=float)
    counts = np.floor(quotas + 1e-9).astype(np.int64)
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def class_counts(size: int, fractions: tuple[float, float, float]) -> np.ndarray:
    """Images of a class of `size` per part under `fractions` (module docstring)."""
    fractions_ = np.asarray(fractions, dtype=float)
    whole = fractions_.sum()
    total = size if whole >= 1 - 1e-9 else math.floor(size * whole + 1e-9)
    return largest_remainder(fractions_ / whole, total)


def _allocate(class_sizes: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per-class, per-part counts for a count split: part totals exactly `totals`, each spread over
    the classes in proportion to class size (largest remainder), never more than a class has."""
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


def allocation(class_sizes: np.ndarray, split: Split) -> np.ndarray:
    """`(classes, 3)` images per class and part under `split`."""
    if split.by == "count":
        totals = np.array([split.train, split.val, split.test], dtype=np.int64)
        if totals.sum() > class_sizes.sum():
            asked = "/".join(str(int(t)) for t in totals)
            raise DataError(
                f"the split asks for {int(totals.sum())} images ({asked}) but the dataset has {int(class_sizes.sum())};"
                f" give fractions instead, e.g. --split {_shown(_advice(class_sizes, split) or (0.7, 0.15, 0.15))}"
            )
        return _allocate(class_sizes, totals)
    return np.stack([class_counts(int(size), (split.train, split.val, split.test)) for size in class_sizes])


def _shown(fractions: tuple[float, ...]) -> str:
    return ",".join(f"{f:g}" for f in fractions)


def _advice(class_sizes: np.ndarray, split: Split) -> tuple[float, float, float] | None:
    """The fraction split on the 1/GRID grid closest to `split`
    (squared distance) that gives every class an image in every part."""
    given = np.array([split.train, split.val, split.test], dtype=float)
    given = given / given.sum()
    candidates = [
        (t / GRID, v / GRID, (GRID - t - v) / GRID)
        for t, v in itertools.product(range(1, GRID), repeat=2)
        if t + v < GRID
    ]
    candidates.sort(key=lambda c: (float(np.square(np.array(c) - given).sum()), -c[0]))
    return next((c for c in candidates if all((class_counts(int(size), c) > 0).all() for size in class_sizes)), None)


def _images_needed(split: Split, class_sizes: np.ndarray, short: list[int]) -> dict[int, int] | None:
    """Images to add to each class that is short (all grown together, one at a time, while short: growing one
    class can leave another short under a count split) until every class has an image in every part under
    `split`; None when adding cannot do it (a count split with a part smaller than the number of classes) or it
    takes over MAX_IMAGES_ADVISED."""
    if split.by == "count" and min(split.train, split.val, split.test) < len(class_sizes):
        return None
    sizes, still = class_sizes.copy(), list(short)
    while still and sizes.sum() < MAX_IMAGES_ADVISED:
        sizes[still] += 1
        try:
            counts = allocation(sizes, split)
        except DataError:
            continue
        if (counts > 0).all():
            return {
                row: int(sizes[row] - class_sizes[row]) for row in range(len(sizes)) if sizes[row] > class_sizes[row]
            }
        still = [row for row in range(len(sizes)) if (counts[row] == 0).any()]
    return None


def split_of(index: ImageIndex, split: Split, seed: int) -> SplitIndices:
    """The parts of `index`: a pre-split layout's own (its folders'; `split` is not used), else `stratified_split`."""
    if index.pre_split:
        part_of = np.asarray(index.part_of)
        train, val, test = (np.flatnonzero(part_of == number) for number in range(len(PARTS)))
        return SplitIndices(train, val, test)
    return stratified_split(index.labels, split, seed, index.classes)


def stratified_split(labels: np.ndarray, split: Split, seed: int, class_names: tuple[str, ...]) -> SplitIndices:
    """Indices into `labels` for train, val and test; each class appears in every part.

    Errors name the class folders (`class_names[label]`) and a fix the command line can apply.
    """
    labels = np.asarray(labels)
    classes, class_sizes = np.unique(labels, return_counts=True)
    small = [f"'{class_names[c]}' ({size})" for c, size in zip(classes, class_sizes, strict=True) if size < len(PARTS)]
    if small:
        raise DataError(
            f"class folder(s) {', '.join(small)} have fewer than {len(PARTS)} images, one each for train, val and test;"
            " add images or remove the folder(s)"
        )
    counts = allocation(class_sizes, split)
    short = [row for row in range(len(classes)) if (counts[row] == 0).any()]
    if short:
        raise DataError(_refusal(split, classes, class_sizes, counts, short, class_names))
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for row, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.cumsum(counts[row])
        for part, chunk in enumerate(np.split(members, bounds)[: len(PARTS)]):
            parts[part].append(chunk)
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return SplitIndices(train, val, test, unused=int(len(labels) - counts.sum()))


def _refusal(
    split: Split,
    classes: np.ndarray,
    class_sizes: np.ndarray,
    counts: np.ndarray,
    short: list[int],
    class_names: tuple[str, ...],
) -> str:
    given = f"{split.train:g}/{split.val:g}/{split.test:g}"
    described = [
        f"'{class_names[classes[row]]}' ({class_sizes[row]} images: {'/'.join(str(int(n)) for n in counts[row])}, no"
        f" {' or '.join(PARTS[p] for p in range(len(PARTS)) if counts[row, p] == 0)} image)"
        for row in short
    ]
    fixes = []
    advice = _advice(class_sizes, split)
    if advice is not None:
        fixes.append(f"give --split {_shown(advice)} (an image of every class in every part)")
    needed = _images_needed(split, class_sizes, short)
    if needed is not None:
        fixes.append(
            "add " + ", ".join(f"{n} image(s) to '{class_names[classes[row]]}'" for row, n in needed.items() if n)
        )
    elif split.by == "count":
        fixes.append(f"give every part at least {len(class_sizes)} images, one per class")
    return f"the split {given} (train/val/test) leaves class folder(s) {', '.join(described)}; " + (
        " or ".join(fixes) or "add images to these classes"
    )
