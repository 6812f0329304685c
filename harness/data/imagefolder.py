"""ImageFolder scanning and validation with clear errors: the layout, not the pixels.

Bad input fails early with a message that names the problem and the fix: a missing folder, a file
given for a folder, no class folders, an empty class, a single class, a link loop. Hidden entries
(`.ipynb_checkpoints/`, `.DS_Store`, `._*` AppleDouble files) are never classes or samples. Links to
folders and files are followed (as torchvision's ImageFolder does); `walk` is the one traversal,
used by the scan and by the content fingerprint alike, so the data's identity covers exactly what
the loader reads. Decoding the pixels: `data.decode`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageIndex:
    """The classes of an ImageFolder and its (path, label) samples in a stable order."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}


def is_hidden(name: str) -> bool:
    """Dot entries: notebook checkpoints, Finder's .DS_Store, macOS AppleDouble `._x.jpg` files."""
    return name.startswith(".")


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden(Path(path).name)


def walk(folder: Path, _ancestors: frozenset[Path] = frozenset()) -> Iterator[tuple[Path, list[str]]]:
    """`folder` and every folder under it, each with its file names (both in name order; hidden
    folders left out), following links; a link back to a folder it lies in is a DataError."""
    real = folder.resolve()
    if real in _ancestors:
        raise DataError(f"{folder} is a link to {real}, a folder it lies in: a link loop, which would be read for ever; remove or replace the link")
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:  # a folder this user cannot read
        raise DataError(f"folder {folder} cannot be read ({error.strerror or error}); give read access or remove it from the dataset") from None
    yield folder, [e.name for e in entries if e.is_file()]  # is_file and is_dir follow links
    for entry in entries:
        if entry.is_dir() and not is_hidden(entry.name):
            yield from walk(Path(entry.path), _ancestors | {real})


def scan(root: str | Path) -> ImageIndex:
    """Index an ImageFolder (one sub-folder per class) and validate its layout (pixels: see verify)."""
    root = Path(root)
    if root.is_file():
        raise DataError(f"{root} is a file, not a folder; pass an ImageFolder directory (one sub-folder of images per class)")
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; give an ImageFolder directory (one sub-folder per class): --data for `harness run`, --data-root for the benchmarks")
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not is_hidden(entry.name))
    if not classes:
        raise DataError(f"{root} has no class sub-folders; an ImageFolder needs one sub-folder of images per class")
    if len(classes) < 2:
        raise DataError(f"{root} has only one class ({classes[0]}); classification needs at least 2 class folders")
    above = frozenset({root.resolve()})  # a link inside a class folder back to the root is a loop too
    per_class = {c: [(str(folder / name), label) for folder, names in walk(root / c, above) for name in names if is_image_file(name)] for label, c in enumerate(classes)}
    empty = [c for c, items in per_class.items() if not items]
    if empty:
        raise DataError(
            f"class folder(s) with no images in {root}: {', '.join(empty)}; add images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or remove the empty folder(s)"
        )
    samples = tuple(item for c in classes for item in sorted(per_class[c]))
    return ImageIndex(root, tuple(classes), samples)
