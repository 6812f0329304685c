"""ImageFolder scanning, validation with clear errors, decoding, and the Dataset.

Bad input fails early with a message that names the problem and the fix: a missing folder, a file
given for a folder, no class folders, an empty class, a single class, a file that is not an image,
an image over PIL's decompression-bomb limit, a link loop. Hidden entries (`.ipynb_checkpoints/`,
`.DS_Store`, `._*` AppleDouble files) are never classes or samples. Links to folders and files are
followed (as torchvision's ImageFolder does); `walk` is the one traversal, used by the scan and by
the content fingerprint alike, so the data's identity covers exactly what the loader reads.

Decoding: EXIF orientation is applied (as cv2.imread and image viewers do, so a photo taken on its
side trains the way it looks); 16-bit images are scaled to 8 bits (65535 -> 255), not clipped;
grayscale, palette and RGBA become RGB.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import albumentations as A
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from harness.data.transforms import seed_pipeline

if TYPE_CHECKING:
    from harness.data.decoded import DecodedImages

MAX_PIXELS_VARIABLE = "TRAINBENCH_MAX_IMAGE_PIXELS"

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


def image_problem(path: str, *, decode: bool, draft_size: int = 64) -> str | None:
    """Why `path` cannot be used as an image (header only, or a full decode), or None.

    A full decode in JPEG draft mode still reads every compressed byte, so a truncated file is
    found at a fraction of the cost of decoding it at full size.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL only warns between 1x and 2x its limit
            with Image.open(path) as image:
                if decode:
                    image.draft("RGB", (draft_size, draft_size))
                    image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return describe_unreadable(path, error)
    return None


_DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
if os.environ.get(MAX_PIXELS_VARIABLE, "").isdigit():  # validated, with a message, by settings.check_environment
    Image.MAX_IMAGE_PIXELS = int(os.environ[MAX_PIXELS_VARIABLE])


def describe_unreadable(path: str, error: Exception) -> str:
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return (
            f"{path} is over PIL's decompression-bomb limit ({error}); if you trust the file, raise the limit "
            f"with {MAX_PIXELS_VARIABLE}=<pixels> (PIL's default is {_DEFAULT_MAX_PIXELS})"
        )
    return f"corrupt or unreadable image file {path}: {error}; delete or replace it"


def to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 pixels the way the image looks: EXIF orientation applied, 16 bits scaled to 8."""
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255):
        wide = np.asarray(image, dtype=np.uint32)
        gray = (wide * 255 + 32767) // 65535  # 0..65535 -> 0..255, rounded
        return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def load_rgb(path: str, short_side: int | None = None) -> np.ndarray:
    """Decode an image into RGB uint8 pixels (see `to_rgb`); with `short_side`, at that shorter side
    (never scaled up): a JPEG decodes in draft mode (the decoder scales the DCT down by a power of
    two, never below what is asked), then a Lanczos filter takes it to `short_side`. The decoded-image
    cache stores exactly these pixels, so the cached and uncached paths train on the same tensors."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if short_side is not None and short_side < min(width, height):
                scale = short_side / min(width, height)
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            pixels = to_rgb(image)
    except (Image.DecompressionBombError, OSError) as error:  # UnidentifiedImageError is an OSError
        raise DataError(describe_unreadable(path, error)) from None
    height, width = pixels.shape[:2]
    if short_side is not None and min(height, width) > short_side:
        scale = short_side / min(height, width)
        size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
    return np.require(pixels, requirements=("C", "W"))  # contiguous and writable: torch warns on read-only arrays


class ImageClassificationDataset(Dataset):
    """Samples of an ImageIndex, selected by `indices`, decoded and transformed with albumentations.

    A key is an index, or `(index, epoch)` from `EpochSampler`: then the augmentation is seeded by
    (seed, epoch, index), each transform with a stream of its own (`transforms.seed_pipeline`), so it
    is the same whatever the worker, rank or restart that draws it. Pixels come from the
    decoded-image cache when one is given, else from the file at the same stored size
    (`short_side`, see `load_rgb`): both paths give the same tensors.
    """

    def __init__(self, index: ImageIndex, indices: Sequence[int], transform: A.BaseCompose, seed: int = 0, decoded: DecodedImages | None = None,
                 short_side: int | None = None) -> None:  # fmt: skip
        self.index = index
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.seed = seed
        self.decoded = decoded
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.indices)

    def pixels(self, i: int) -> np.ndarray:
        """The stored RGB uint8 pixels of this part's `i`-th sample, before any transform."""
        sample = int(self.indices[i])
        return self.decoded.read(sample) if self.decoded is not None else load_rgb(self.index.samples[sample][0], self.short_side)

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
