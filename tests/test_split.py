import re

import numpy as np
import pytest

from harness.data.split import stratified_split
from harness.errors import DataError
from harness.spec import Split

NAMES = tuple(f"class_{c}" for c in range(8))


def labels(counts):
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


def test_same_seed_same_split_other_seed_other_split():
    y = labels([50, 30, 20])
    a, b, c = (stratified_split(y, Split(0.6, 0.2, 0.2), seed, NAMES) for seed in (1, 1, 2))
    assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in ("train", "val", "test"))
    assert not np.array_equal(a.train, c.train)


def test_parts_are_disjoint_and_stratified():
    y = labels([100, 50, 30])
    parts = stratified_split(y, Split(0.7, 0.15, 0.15), 0, NAMES)
    everything = np.concatenate([parts.train, parts.val, parts.test])
    assert len(np.unique(everything)) == len(everything)
    for part in (parts.train, parts.val, parts.test):
        share = np.bincount(y[part], minlength=3) / len(part)
        assert share == pytest.approx([100 / 180, 50 / 180, 30 / 180], abs=0.04)


def test_counts_are_exact_as_for_kvasir():
    y = labels([1000] * 8)
    parts = stratified_split(y, Split(5564, 1600, 832, by="count"), 42, NAMES)
    assert parts.sizes() == {"train": 5564, "val": 1600, "test": 832}
    assert set(np.bincount(y[parts.test])) <= {104}


def test_split_errors_name_the_class_folder_and_a_command_line_fix():
    with pytest.raises(DataError, match=r"class folder\(s\) 'class_1' \(2\) have fewer than 3 images"):
        stratified_split(labels([10, 2]), Split(0.6, 0.2, 0.2), 0, NAMES)
    with pytest.raises(
        DataError,
        match=(
            r"asks for 30 images \(10/10/10\) but the dataset has 20; give fractions instead, e.g. --split"
            r" 0.35,0.3,0.35"
        ),
    ):
        stratified_split(labels([10, 10]), Split(10, 10, 10, by="count"), 0, NAMES)
    with pytest.raises(
        DataError,
        match=(
            r"leaves class folder\(s\) 'class_1' \(4 images: 4/0/0, no val or test image\); give --split 0.6,0.2,0.2 .*"
            r" or add 10 image\(s\) to 'class_1'"
        ),
    ):
        stratified_split(labels([100, 4]), Split(0.9, 0.05, 0.05), 0, NAMES)


@pytest.mark.parametrize("sizes", [[20, 20, 16], [7, 11, 13, 5], [60, 12, 5], [3, 3, 3], [101, 57, 9, 4, 33]])
@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.5, 0.25, 0.25), (0.8, 0.1, 0.1)])
def test_fractions_summing_to_one_put_every_image_in_a_part(sizes, fractions):
    """Flooring the part totals left 1-2 images in no part (55 of 56 here with 20/20/16)."""
    y = labels(sizes)
    try:
        parts = stratified_split(y, Split(*fractions), 0, NAMES)
    except DataError as error:
        assert "leaves class folder" in str(error)  # a class too small for this split is refused, never cut short
        return
    everything = np.concatenate([parts.train, parts.val, parts.test])
    assert sorted(everything) == list(range(len(y))) and parts.unused == 0
    for c, size in enumerate(sizes):  # each class cut on its own: within one image of its share in every part
        got = [np.sum(y[getattr(parts, p)] == c) for p in ("train", "val", "test")]
        assert sum(got) == size and all(abs(g - size * f) < 1 for g, f in zip(got, fractions, strict=True)), (size, got)


def test_images_left_out_on_purpose_are_counted():
    assert (
        stratified_split(labels([1000] * 8), Split(5564, 1600, 832, by="count"), 42, NAMES).unused == 4
    )  # Kvasir's published split uses 7996 of 8000
    under = stratified_split(labels([40, 40]), Split(0.5, 0.2, 0.2), 0, NAMES)
    assert under.sizes() == {"train": 40, "val": 16, "test": 16} and under.unused == 8


def _advised(message: str) -> tuple[Split, list[tuple[str, int]]]:
    fractions = re.search(r"--split ([0-9.,]+)", message).group(1)
    added = [(name, int(n)) for n, name in re.findall(r"(\d+) image\(s\) to '([^']+)'", message)]
    return Split(*(float(v) for v in fractions.split(","))), added


@pytest.mark.parametrize(
    "sizes, split",
    [
        ([60, 12, 4], Split(0.7, 0.15, 0.15)),
        ([100, 4], Split(0.9, 0.05, 0.05)),
        ([200, 5, 30], Split(0.8, 0.1, 0.1)),
        ([30, 3], Split(20, 5, 5, by="count")),
        ([30, 30, 30], Split(50, 1, 1, by="count")),
        ([40, 3, 3], Split(30, 4, 4, by="count")),
    ],
)
def test_the_advice_for_a_rare_class_is_a_split_that_trains(sizes, split):
    """Classes of 60, 12 and 4 with 0.7/0.15/0.15 were refused with "e.g. --split 0.7,0.15,0.15": the split in use."""
    y = labels(sizes)
    with pytest.raises(DataError) as refused:
        stratified_split(y, split, 0, NAMES)
    advised, added = _advised(str(refused.value))
    assert advised != split
    parts = stratified_split(y, advised, 0, NAMES)  # the advised split really trains
    assert all(len(np.unique(y[getattr(parts, p)])) == len(sizes) for p in ("train", "val", "test"))
    if split.by == "count" and min(split.train, split.val, split.test) < len(sizes):
        assert not added and f"give every part at least {len(sizes)} images" in str(
            refused.value
        )  # no number of images could help
        return
    assert added
    grown = list(sizes)
    for name, n in added:  # and so does the split given, once the named classes have the images the advice names
        grown[NAMES.index(name)] += n
    stratified_split(labels(grown), split, 0, NAMES)
