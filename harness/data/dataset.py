"""The Dataset of one split part: stored pixels through a reader, then the recipe's transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import albumentations as A
import numpy as np
from torch.utils.data import Dataset

from harness.data.decode import load_rgb
from harness.data.imagefolder import ImageIndex
from harness.data.transforms import seed_pipeline

Reader = Callable[[int], np.ndarray]  # sample number in the ImageIndex -> its stored RGB uint8 pixels, (H, W, 3)


@dataclass(frozen=True)
class FileReader:
    """Reads a sample from its file at the size the decoded-image cache stores (`short_side`, see
    `decode.load_rgb`), so the cached and uncached paths give the same pixels. Picklable, for workers."""

    index: ImageIndex
    short_side: int | None = None

    def __call__(self, sample: int) -> np.ndarray:
        return load_rgb(self.index.samples[sample][0], self.short_side)


class ImageClassificationDataset(Dataset):
    """Samples of an ImageIndex, selected by `indices`, decoded and transformed with albumentations.

    A key is an index, or `(index, epoch)` from `EpochSampler`: then the augmentation is seeded by
    (seed, epoch, index), each transform with a stream of its own (`transforms.seed_pipeline`), so it
    is the same whatever the worker, rank or restart that draws it. Pixels come from `read`: the
    decoded-image cache (`DecodedImages.read`) or the files (`FileReader`, the default), which give
    the same tensors.
    """

    def __init__(
        self,
        index: ImageIndex,
        indices: Sequence[int] | np.ndarray,
        transform: A.BaseCompose,
        seed: int = 0,
        read: Reader | None = None,
    ) -> None:
        self.index = index
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.seed = seed
        self.read = read or FileReader(index)

    def __len__(self) -> int:
        return len(self.indices)

    def pixels(self, i: int) -> np.ndarray:
        """The stored RGB uint8 pixels of this part's `i`-th sample, before any transform."""
        return self.read(int(self.indices[i]))

    def transformed(self, pixels: np.ndarray, key: int | tuple[int, int]) -> dict:
        """albumentations' output for `pixels` drawn under `key` (the pipeline seeded by it first)."""
        if isinstance(key, tuple):
            i, epoch = key
            seed_pipeline(self.transform, (self.seed, epoch, int(i)))
        return self.transform(image=pixels)

    def __getitem__(self, key: int | tuple[int, int]):
        i = key[0] if isinstance(key, tuple) else key
        image = self.transformed(self.pixels(i), key)["image"]
        return image, self.index.samples[int(self.indices[i])][1]

    @property
    def labels(self) -> np.ndarray:
        return self.index.labels[self.indices]
