"""ImageFolder scanning (torchvision's own), validation with clear errors, and the Dataset.

Bad input fails early with a message that names the problem and the fix: a missing folder, no
class folders, an empty class, a single class, a file that is not an image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import find_classes, make_dataset

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DataError(ValueError):
    """The data on disk cannot be used as given; the message names the problem and the fix."""


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


def scan(root: str | Path, *, check_headers: bool = True) -> ImageIndex:
    """Index an ImageFolder (one sub-folder per class) and validate it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass an ImageFolder directory (one sub-folder per class) with --data-root")
    try:
        classes, class_to_idx = find_classes(str(root))
    except FileNotFoundError:
        raise DataError(f"{root} has no class sub-folders; an ImageFolder needs one sub-folder of images per class") from None
    if len(classes) < 2:
        raise DataError(f"{root} has only one class ({classes[0]}); classification needs at least 2 class folders")
    per_class = {c: [] for c in classes}
    for path, label in make_dataset(str(root), class_to_idx, extensions=IMAGE_EXTENSIONS, allow_empty=True):
        per_class[classes[label]].append((path, label))
    empty = [c for c, items in per_class.items() if not items]
    if empty:
        raise DataError(
            f"class folder(s) with no images in {root}: {', '.join(empty)}; add images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or remove the empty folder(s)"
        )
    samples = tuple(item for c in classes for item in sorted(per_class[c]))
    if check_headers:
        for path, _ in samples:
            check_image_header(path)
    return ImageIndex(root, tuple(classes), samples)


def check_image_header(path: str) -> None:
    """Cheap check (header only) that a file is an image PIL can open."""
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - reading the header is the check
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"corrupt or unreadable image file {path}: {error}; delete or replace it") from None


def load_rgb(path: str) -> np.ndarray:
    """Decode an image once into an RGB uint8 array (grayscale, palette and RGBA are converted)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"corrupt or unreadable image file {path}: {error}; delete or replace it") from None


class ImageClassificationDataset(Dataset):
    """Samples of an ImageIndex, selected by `indices`, decoded and transformed with albumentations.

    A key is an index, or `(index, epoch)` from `EpochSampler`: then the augmentation is seeded by
    (seed, epoch, index), so it is the same whatever the worker, rank or restart that draws it.
    """

    def __init__(self, index: ImageIndex, indices: Sequence[int], transform: Callable[..., dict], seed: int = 0) -> None:
        self.index = index
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]):
        i, epoch = key if isinstance(key, tuple) else (key, None)
        path, label = self.index.samples[self.indices[i]]
        if epoch is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(int(np.random.SeedSequence([self.seed, epoch, int(i)]).generate_state(1)[0]))
        image = self.transform(image=load_rgb(path))["image"]
        return image, label

    @property
    def labels(self) -> np.ndarray:
        return self.index.labels[self.indices]
