"""Write this project's dataset: an ImageFolder of small generated pictures, one folder per shape.

    python make_data.py data/shapes

Each image is one shape (circle, square, triangle, cross), each shape in its own colour family (as classes
of real data differ in colour too), at a random size and place on a noisy background, so a small model learns
the classes in a few epochs on a CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"circle": (220, 60, 60), "square": (60, 200, 60), "triangle": (60, 90, 230), "cross": (230, 210, 50)}
PER_CLASS = 32
SIZE = 48


def picture(shape: str, rng: np.random.Generator) -> Image.Image:
    noise = rng.normal(120, 25, size=(SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(9, 16))
    x, y = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
    colour = tuple(int(c) for c in np.clip(np.array(COLOURS[shape]) + rng.integers(-35, 36, size=3), 0, 255))
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
    elif shape == "triangle":
        draw.polygon(((x, y - r), (x - r, y + r), (x + r, y + r)), fill=colour)
    else:
        draw.rectangle((x - r, y - r // 3, x + r, y + r // 3), fill=colour)
        draw.rectangle((x - r // 3, y - r, x + r // 3, y + r), fill=colour)
    return image


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            picture(shape, rng).save(folder / f"{i:03d}.png")
    print(f"{len(SHAPES) * PER_CLASS} images in {root}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/shapes"))
