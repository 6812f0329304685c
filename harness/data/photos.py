"""A generated real-resolution Kvasir v2 stand-in, for throughput measurements and full-profile dry runs.

Kvasir v2 cannot be downloaded here, and the smoke stand-in's 96 px PNGs say nothing about a loader
that must decode 720x576 to 1920x1072 endoscopy JPEGs. This writes `kvasir-dataset-v2/<class>/*.jpg`
with the 8 class names and the resolution range the dataset's paper states (720x576 up to
1920x1072; the mix below is this harness's assumption, most images at the smallest size), and
photo-like content, so that JPEG sizes and decode costs are realistic: smooth tissue-coloured
shading, fine sensor noise, a circular field of view with black corners as an endoscope gives, and
one soft blob per image whose colour and shape depend on the class, so that a model can learn it.
Files are written to a temporary folder renamed into place.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.atomic import written_atomically
from harness.catalog import KVASIR_CLASSES
from harness.data.kvasir import FOLDER_NAME
from harness.errors import DataError

# (width, height) and its share of the images
RESOLUTION_MIX: tuple[tuple[tuple[int, int], float], ...] = (
    ((720, 576), 0.55),
    ((1280, 1024), 0.2),
    ((1350, 1080), 0.1),
    ((1920, 1072), 0.15),
)
JPEG_QUALITY = 90


# soft masks are drawn and blurred at a quarter of the size, then scaled up: smooth either way, 10x cheaper
MASK_SCALE = 4


def _soft_mask(
    size: tuple[int, int], box: tuple[float, float, float, float], blur: float, strength: int = 255
) -> Image.Image:
    small = (max(1, size[0] // MASK_SCALE), max(1, size[1] // MASK_SCALE))
    mask = Image.new("L", small, 0)
    ImageDraw.Draw(mask).ellipse(tuple(v / MASK_SCALE for v in box), fill=strength)
    return mask.filter(ImageFilter.GaussianBlur(max(1.0, blur / MASK_SCALE))).resize(size, Image.Resampling.BILINEAR)


def _photo(size: tuple[int, int], label: int, rng: np.random.Generator) -> Image.Image:
    width, height = size
    coarse = rng.uniform(0.0, 1.0, (6, 8, 1)) * np.array([90.0, 50.0, 40.0]) + np.array(
        [140.0, 60.0, 60.0]
    )  # pink-red tissue
    shading = np.asarray(
        Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC), dtype=np.int16
    )
    noise = rng.integers(-12, 13, shading.shape, dtype=np.int16)  # sensor noise: what makes JPEG sizes realistic
    image = Image.fromarray(np.clip(shading + noise, 0, 255).astype(np.uint8))
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    radius = rng.uniform(0.12, 0.25) * min(size)
    squash = 0.35 + 0.65 * (label % 4) / 3  # classes differ in the blob's shape ...
    blob = _soft_mask(
        size, (cx - radius, cy - radius * squash, cx + radius, cy + radius * squash), radius / 6, strength=180
    )
    hue = Image.new("RGB", size, (60 + 25 * label, 200 - 20 * label, 90 + 18 * (label % 3)))  # ... and colour
    image = Image.composite(hue, image, blob)
    view = _soft_mask(
        size, (width * 0.04, -height * 0.08, width * 0.96, height * 1.08), 4
    )  # the endoscope's round field of view
    return Image.composite(image, Image.new("RGB", size), view)


def _write_class(folder: Path, label: int, per_class: int, seed: int) -> None:
    rng = np.random.default_rng([seed, label])  # each class its own stream: the same files whatever the process count
    sizes, shares = zip(*RESOLUTION_MIX, strict=True)
    folder.mkdir(parents=True)
    for i in range(per_class):
        size = sizes[rng.choice(len(sizes), p=shares)]
        _photo(size, label, rng).save(folder / f"{i:04d}.jpg", quality=JPEG_QUALITY)


def generate_kvasir(out: Path, per_class: int, seed: int = 0, processes: int = 1) -> Path:
    """Write the stand-in as `out/kvasir-dataset-v2/` (`per_class` JPEGs per class, one class per
    process); returns that folder."""
    folder = Path(out) / FOLDER_NAME
    if folder.exists():
        raise DataError(f"{folder} exists; remove it or choose another --out")
    with written_atomically(folder) as tmp:
        jobs = [(tmp / name, label, per_class, seed) for label, name in enumerate(KVASIR_CLASSES)]
        if processes > 1:
            with ProcessPoolExecutor(max_workers=min(processes, len(jobs))) as pool:
                list(pool.map(_write_class, *zip(*jobs, strict=True)))
        else:
            for job in jobs:
                _write_class(*job)
    return folder
