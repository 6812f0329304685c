"""Generated ImageFolder datasets: the embedded default that needs no download.

Each class is a kind of shape in its own family of hues, drawn on a noisy grey background at a
random position and size.
Shape identity survives every augmentation of the recipes (flips, transposes, rotations, colour
shifts, distortions), so a model can learn the classes in a few CPU epochs. The `-source` dataset
draws *other* shapes with the same generator: related but different, which is what makes
pretraining on it a real transfer-learning comparison.

Files are real PNG/JPEG files of mixed sizes and modes (RGB, grayscale, palette, RGBA), written once
to a temporary folder and renamed into place, so a cache is either complete or absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.atomic import written_atomically
from harness.catalog import KVASIR_CLASSES

GENERATOR_VERSION = 2


@dataclass(frozen=True)
class SyntheticDataset:
    name: str
    classes: tuple[str, ...]
    shapes: tuple[str, ...]
    per_class: int
    seed: int


SHAPES = (
    "circle",
    "square",
    "triangle",
    "ring",
    "cross",
    "hbars",
    "star",
    "diamond",
    "hexagon",
    "dots",
    "plus_ring",
    "checker",
)

_TARGET_SHAPES = ("circle", "square", "triangle", "ring", "cross", "hbars")
_KVASIR_SHAPES = ("circle", "square", "triangle", "ring", "cross", "hbars", "star", "diamond")
_SOURCE_SHAPES = ("star", "diamond", "hexagon", "dots", "plus_ring", "checker")

DATASETS: dict[str, SyntheticDataset] = {
    "synthetic": SyntheticDataset("synthetic", _TARGET_SHAPES, _TARGET_SHAPES, per_class=60, seed=1),
    "synthetic-source": SyntheticDataset("synthetic-source", _SOURCE_SHAPES, _SOURCE_SHAPES, per_class=120, seed=2),
    "kvasir-synthetic": SyntheticDataset(
        "kvasir-synthetic",
        KVASIR_CLASSES,
        _KVASIR_SHAPES,
        per_class=50,
        seed=3,
    ),
}

# A generated image's size and file format cycle through these, so loading code meets them all.
_SIZES = ((96, 96), (120, 90), (90, 120), (128, 128), (110, 100))
_MODES = ("RGB", "RGB", "RGB", "L", "P", "RGBA", "RGB")


def _polygon(cx: float, cy: float, r: float, n: int, phase: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(phase + 2 * math.pi * k / n), cy + r * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, color: tuple, rng: np.random.Generator
) -> None:
    w = max(2, int(r / 4))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, rng.uniform(0, 2 * math.pi)), fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=w)
    elif shape == "cross":
        draw.line((cx - r, cy - r, cx + r, cy + r), fill=color, width=w)
        draw.line((cx - r, cy + r, cx + r, cy - r), fill=color, width=w)
    elif shape == "hbars":
        for k in range(-2, 3):
            y = cy + k * r / 2.5
            draw.line((cx - r, y, cx + r, y), fill=color, width=max(2, w // 2))
    elif shape == "star":
        points = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            angle = math.pi / 2 + math.pi * k / 5
            points.append((cx + rad * math.cos(angle), cy + rad * math.sin(angle)))
        draw.polygon(points, fill=color)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r * 0.6, cy), (cx, cy + r), (cx - r * 0.6, cy)], fill=color)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, 0.0), fill=color)
    elif shape == "dots":
        for dx in (-0.6, 0.0, 0.6):
            for dy in (-0.6, 0.6):
                draw.ellipse(
                    (cx + dx * r - r / 5, cy + dy * r - r / 5, cx + dx * r + r / 5, cy + dy * r + r / 5), fill=color
                )
    elif shape == "plus_ring":
        draw.ellipse(box, outline=color, width=max(2, w // 2))
        draw.line((cx - r * 0.6, cy, cx + r * 0.6, cy), fill=color, width=w)
        draw.line((cx, cy - r * 0.6, cx, cy + r * 0.6), fill=color, width=w)
    elif shape == "checker":
        step = r / 2
        for i in range(4):
            for j in range(4):
                if (i + j) % 2 == 0:
                    x0, y0 = cx - r + i * step, cy - r + j * step
                    draw.rectangle((x0, y0, x0 + step, y0 + step), fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render(shape: str, size: tuple[int, int], rng: np.random.Generator, hue: float) -> Image.Image:
    """One RGB image of `shape`, coloured near `hue` (0..1), on a noisy grey background."""
    width, height = size
    base = rng.integers(70, 180)
    noise = rng.normal(0, 18, size=(height, width, 3))
    background = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    r = rng.uniform(0.22, 0.36) * min(width, height)
    cx = rng.uniform(r, width - r)
    cy = rng.uniform(r, height - r)
    shade = Image.new(
        "HSV",
        (1, 1),
        (int(255 * ((hue + rng.normal(0, 0.03)) % 1.0)), int(rng.uniform(170, 255)), int(rng.uniform(170, 255))),
    )
    color = shade.convert("RGB").getpixel((0, 0))
    assert isinstance(color, tuple)  # an RGB image's pixel is its (r, g, b)
    _draw_shape(draw, shape, cx, cy, r, color, rng)
    return image


def _write(image: Image.Image, mode: str, path_stem: Path, index: int) -> None:
    if mode == "RGB" and index % 2:
        image.save(path_stem.with_suffix(".jpg"), quality=92)
        return
    converted = image.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else image.convert(mode)
    converted.save(path_stem.with_suffix(".png"))


def generate(spec: SyntheticDataset, root: Path) -> None:
    """Write `spec` as an ImageFolder under `root` (which must not exist yet)."""
    rng = np.random.default_rng(spec.seed)
    offset = rng.uniform()  # the source dataset's hues differ from the target's
    for k, (class_name, shape) in enumerate(zip(spec.classes, spec.shapes, strict=True)):
        hue = (offset + k / len(spec.classes)) % 1.0
        folder = root / class_name
        folder.mkdir(parents=True)
        for i in range(spec.per_class):
            size = _SIZES[i % len(_SIZES)]
            image = render(shape, size, rng, hue)
            _write(image, _MODES[i % len(_MODES)], folder / f"{class_name}_{i:04d}", i)


def ensure(name: str, cache_dir: Path) -> Path:
    """The folder of generated dataset `name`, generating it once (atomically) if absent."""
    if name not in DATASETS:
        raise KeyError(f"no generated dataset named {name!r}; known: {', '.join(DATASETS)}")
    target = cache_dir / "datasets" / f"{name}-v{GENERATOR_VERSION}"
    if target.is_dir():
        return target
    with written_atomically(target) as staging:
        generate(DATASETS[name], staging)
    return target
