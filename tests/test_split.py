import numpy as np
import pytest

from harness.data import DataError
from harness.data.split import stratified_split
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
    with pytest.raises(DataError, match=r"asks for 30 images \(10/10/10\) but the dataset has 20; give fractions instead, e.g. --split 0.7,0.15,0.15"):
        stratified_split(labels([10, 10]), Split(10, 10, 10, by="count"), 0, NAMES)
    with pytest.raises(DataError, match=r"leaves class folder\(s\) 'class_1' \(no val image\).*--split 0.7,0.15,0.15"):
        stratified_split(labels([100, 4]), Split(0.9, 0.05, 0.05), 0, NAMES)
