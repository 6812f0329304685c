"""Decoding one image file into RGB uint8 pixels, and saying in one line why a file cannot be.

EXIF orientation is applied (as cv2.imread and image viewers do, so a photo taken on its side trains
the way it looks); 16-bit images are scaled to 8 bits (65535 -> 255), not clipped; grayscale,
palette and RGBA become RGB. An image over PIL's decompression-bomb limit, a truncated or foreign
file is a DataError that names the file and the fix.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.errors import DataError, SettingsError
from harness.settings import Environment, environment

MAX_PIXELS_VARIABLE = Environment.variable("max_image_pixels")


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
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
    ) as error:
        return describe_unreadable(path, error)
    return None


_DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# A bad value is ignored here: the command line and pytest refuse it, with its fix, before anything runs.
with contextlib.suppress(SettingsError):
    Image.MAX_IMAGE_PIXELS = environment().max_image_pixels or _DEFAULT_MAX_PIXELS


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
    # mode I has one band, so its extrema are one (min, max) pair
    if image.mode.startswith("I;16") or (image.mode == "I" and cast("tuple[int, int]", image.getextrema())[1] > 255):
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
