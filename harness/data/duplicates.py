"""Byte-identical images in one dataset: found by content hash, counted, never silently trained on.

A copy of an image in two class folders is a label conflict; a copy in two split parts puts a test
(or val) image in training, which inflates the test figures. Both happen in scraped and merged
datasets. The data's fingerprint hashes every file (SHA-256 of its bytes, `content_hashes`); the
decode pass groups identical hashes and keeps the groups with its marker; `eda` lists them.

Policy: duplicates are reported, not refused or removed. A reproduction must train on the dataset
as published, and a dataset with copies in it is still that dataset; so `run` prints one line with
the counts, the record keeps them (`data.duplicates`), and the user decides (remove the copies,
or keep them knowingly). Only exact copies are found: a re-encoded or resized copy is not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

EXAMPLES = 3  # groups named in a summary


def groups(hashes: Sequence[str]) -> list[list[int]]:
    """Positions of identical hashes, groups of two or more, in order of first appearance."""
    found: dict[str, list[int]] = defaultdict(list)
    for position, value in enumerate(hashes):
        found[value].append(position)
    return [members for members in found.values() if len(members) > 1]


def summary(
    duplicate_groups: Sequence[Sequence[int]],
    labels: np.ndarray,
    paths: Sequence[str],
    parts: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Counts of `duplicate_groups` (sample positions): files involved, groups within one class,
    across classes, and (given the split's `parts`, positions per part) across parts; with a few
    example groups by path."""
    part_of = {int(i): name for name, members in (parts or {}).items() for i in members}
    across_classes = [g for g in duplicate_groups if len({int(labels[i]) for i in g}) > 1]
    across_parts = [g for g in duplicate_groups if len({part_of.get(i) for i in g if i in part_of}) > 1]
    out = {
        "groups": len(duplicate_groups),
        "files": sum(len(g) for g in duplicate_groups),
        "within_one_class": len(duplicate_groups) - len(across_classes),
        "across_classes": len(across_classes),
        "examples": [[str(paths[i]) for i in g] for g in (across_classes or list(duplicate_groups))[:EXAMPLES]],
    }
    if parts is not None:
        out["across_parts"] = len(across_parts)
        out["with_a_copy_in_test"] = sum(1 for g in across_parts if "test" in {part_of.get(i) for i in g})
    return out


def describe(counts: Mapping) -> str:
    """One line for a run's output, from `summary`."""
    parts = (
        f", {counts['across_parts']} across split parts ({counts['with_a_copy_in_test']} with a copy in test)"
        if "across_parts" in counts
        else ""
    )
    return (
        f"{counts['files']} byte-identical images in {counts['groups']} groups: {counts['across_classes']} across"
        f" classes (label conflicts){parts}; trained as they are (`trainbench eda` lists them; remove the copies"
        " to train without them)"
    )
