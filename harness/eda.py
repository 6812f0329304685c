"""Exploratory look at an ImageFolder, as both write-ups began: `trainbench eda DATA_DIR --out DIR`.

Class counts; image sizes, modes and channels from file headers only (no decoding, so thousands of
files take seconds); per-channel mean, std and intensity histograms over a decoded sample; a grid
of samples per class; a preview of each train augmentation of a recipe on one image; and that
recipe's train pipeline measured through the dataset's own seeding (`augmentation_stats`): each
transform's apply rate next to its `p`, and the share of samples left un-augmented next to the
expected share; byte-identical images (within a class, across classes, across the recipe's split
parts). A corrupt file is listed in the report, not a crash. Output: `report.md` with PNG figures
beside it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import albumentations as A
import matplotlib
import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.data import duplicates
from harness.data.augmentation_stats import ApplyStatistics, apply_statistics
from harness.data.content_hashes import sha256_of
from harness.data.dataset import FileReader, ImageClassificationDataset
from harness.data.imagefolder import ImageIndex, scan
from harness.data.split import split_of
from harness.data.transforms import (
    augmentation,
    needed_short_side,
    seed_pipeline,
    train_transform,
)
from harness.errors import DataError
from harness.spec import Recipe

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CHANNELS = ("R", "G", "B")


@dataclass
class Survey:
    class_counts: dict[str, int]
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> images
    modes: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    histograms: np.ndarray | None = None  # (3, 256) pixel counts
    sampled: int = 0
    seconds_headers: float = 0.0
    seconds_pixels: float = 0.0
    # the recipe's train pipeline, measured (None: no readable image, or no augmentation)
    augmentations: ApplyStatistics | None = None
    seconds_augmentations: float = 0.0
    duplicates: dict | None = None  # duplicates.summary, with "listed": every group by path


def survey_headers(index: ImageIndex, survey: Survey) -> list[str]:
    """Sizes, modes and channels from headers; returns the readable files."""
    start, readable = time.perf_counter(), []
    for path, _ in index.samples:
        try:
            with Image.open(path) as image:
                survey.sizes[image.size] += 1
                survey.modes[image.mode] += 1
                survey.channels[len(image.getbands())] += 1
            readable.append(path)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            survey.corrupt.append((path, f"{type(error).__name__}: {error}"))
    survey.seconds_headers = time.perf_counter() - start
    return readable


def survey_pixels(paths: list[str], survey: Survey, sample: int, seed: int = 0) -> None:
    """Per-channel mean/std and 256-bin histograms over up to `sample` decoded RGB images."""
    start = time.perf_counter()
    chosen = paths if len(paths) <= sample else list(np.random.default_rng(seed).choice(paths, sample, replace=False))
    total = np.zeros(3)
    total_sq = np.zeros(3)
    histograms = np.zeros((3, 256), dtype=np.int64)
    pixels = 0
    for path in chosen:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (512, 512))  # JPEG: decode at reduced scale, much faster
                array = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            survey.corrupt.append((path, f"{type(error).__name__}: {error}"))
            continue
        total += array.sum(0)
        total_sq += (array**2).sum(0)
        pixels += len(array)
        for c in range(3):
            histograms[c] += np.bincount(array[:, c].astype(np.int64), minlength=256)
    if pixels:
        mean = total / pixels
        survey.mean = tuple(mean / 255)
        survey.std = tuple(np.sqrt(np.maximum(total_sq / pixels - mean**2, 0)) / 255)
    survey.histograms, survey.sampled = histograms, len(chosen)
    survey.seconds_pixels = time.perf_counter() - start


def plot_histograms(histograms: np.ndarray, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3))
    for c, color in enumerate(("red", "green", "blue")):
        axis.plot(histograms[c] / max(1, histograms[c].sum()), color=color, label=CHANNELS[c])
    axis.set_xlabel("intensity")
    axis.set_ylabel("fraction of pixels")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _thumb(path: str, size: int) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size)))


def plot_samples(index: ImageIndex, readable: set[str], path: Path, per_class: int = 6, size: int = 96) -> None:
    rows = len(index.classes)
    figure, axes = plt.subplots(rows, per_class, figsize=(per_class * 1.4, rows * 1.5), squeeze=False)
    for r, name in enumerate(index.classes):
        files = [p for p, label in index.samples if label == r and p in readable][:per_class]
        for c in range(per_class):
            axes[r][c].axis("off")
            if c < len(files):
                axes[r][c].imshow(_thumb(files[c], size))
        axes[r][0].set_title(name, fontsize=7, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_augmentations(recipe: Recipe, image_path: str, path: Path) -> None:
    """The source image, then each train augmentation alone (p=1), then the whole train pipeline."""
    with Image.open(image_path) as image:
        array = np.asarray(image.convert("RGB"))
    size = min(recipe.image_size, 256)
    resize = A.Resize(height=size, width=size)
    panels = [("original", resize(image=array)["image"])]
    for item in recipe.train_augmentations:
        panels.append(
            (item.name, A.Compose([resize, augmentation(item, p=1.0)], seed=recipe.seed)(image=array)["image"])
        )
    whole = A.Compose([resize, *(augmentation(a) for a in recipe.train_augmentations)])
    seed_pipeline(whole, (recipe.seed,))
    panels += [(f"pipeline #{k + 1}", whole(image=array)["image"]) for k in range(3)]
    figure, axes = plt.subplots(1, len(panels), figsize=(len(panels) * 1.8, 2.2), squeeze=False)
    for axis, (title, picture) in zip(axes[0], panels, strict=True):
        axis.imshow(picture)
        axis.set_title(title, fontsize=7)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def markdown(root: Path, survey: Survey, recipe_name: str) -> str:
    lines = [
        f"# EDA of {root}",
        "",
        f"{sum(survey.class_counts.values())} images in {len(survey.class_counts)} classes.",
        "",
        "## Class counts",
        "",
        "| class | images |",
        "|---|---|",
    ]
    lines += [f"| {c} | {n} |" for c, n in survey.class_counts.items()]
    lines += ["", "## Image sizes (from headers)", "", "| size (w x h) | images |", "|---|---|"]
    lines += [f"| {w}x{h} | {n} |" for (w, h), n in survey.sizes.most_common()]
    lines += [
        "",
        "Modes: " + ", ".join(f"{m}: {n}" for m, n in survey.modes.most_common()),
        "",
        "Channels: " + ", ".join(f"{c}: {n}" for c, n in sorted(survey.channels.items())),
    ]
    lines += [
        "",
        f"## Pixel statistics ({survey.sampled} images decoded)",
        "",
        "| channel | mean | std |",
        "|---|---|---|",
    ]
    lines += [f"| {ch} | {m:.4f} | {s:.4f} |" for ch, m, s in zip(CHANNELS, survey.mean, survey.std, strict=False)]
    lines += ["", "![intensity histograms](histograms.png)", "", "## Samples per class", "", "![samples](samples.png)"]
    lines += ["", f"## Train augmentations of the `{recipe_name}` recipe", "", "![augmentations](augmentations.png)"]
    if survey.augmentations is not None:
        lines += [
            "",
            f"Measured over {survey.augmentations.draws} draws through the dataset's own per-sample seeding:",
            "",
            survey.augmentations.markdown(),
        ]
    if survey.duplicates is not None:
        found = survey.duplicates
        lines += ["", "## Duplicate images (byte-identical)", ""]
        if found["groups"]:
            parts = (
                f"; {found['across_parts']} across the split's parts ({found['with_a_copy_in_test']} with a copy in"
                " test)"
                if "across_parts" in found
                else ""
            )
            lines += [
                (
                    f"{found['files']} files in {found['groups']} groups: {found['within_one_class']} within one class,"
                    f" {found['across_classes']} across classes{parts}."
                ),
                "",
            ]
            lines += [f"- {', '.join(group)}" for group in found["listed"]]
            if found["groups"] > len(found["listed"]):
                lines.append(
                    f"- ... and {found['groups'] - len(found['listed'])} more groups (the first {len(found['listed'])}"
                    " are listed)"
                )
        else:
            lines.append("none")
    lines += ["", "## Corrupt or unreadable files", ""]
    lines += [f"- {p}: {e}" for p, e in survey.corrupt] or ["none"]
    lines += [
        "",
        (
            f"Headers read in {survey.seconds_headers:.2f}s; pixel statistics in {survey.seconds_pixels:.2f}s;"
            f" augmentations measured in {survey.seconds_augmentations:.2f}s."
        ),
    ]
    return "\n".join(lines) + "\n"


LISTED = 50  # duplicate groups written out in the report


def find_duplicates(index: ImageIndex, readable: set[str], recipe: Recipe) -> dict:
    """Byte-identical readable images: counts within and across classes, and across the parts of
    the recipe's split when the dataset can be split by it."""
    positions = [i for i, (path, _) in enumerate(index.samples) if path in readable]
    found = [[positions[k] for k in g] for g in duplicates.groups([sha256_of(index.samples[i][0]) for i in positions])]
    try:
        split = split_of(index, recipe.split, recipe.seed)
        parts = {"train": split.train, "val": split.val, "test": split.test}
    except DataError:  # the split refuses this dataset; the counts without parts still hold
        parts = None
    paths = [path for path, _ in index.samples]
    counts = duplicates.summary(found, index.labels, paths, parts)
    counts["listed"] = [[f"{paths[i]} ({index.classes[index.labels[i]]})" for i in g] for g in found[:LISTED]]
    return counts


def measure_augmentations(index: ImageIndex, readable: set[str], recipe: Recipe, draws: int) -> ApplyStatistics | None:
    """The recipe's train pipeline over the readable images, measured as training draws it."""
    indices = [i for i, (path, _) in enumerate(index.samples) if path in readable]
    if not indices or not recipe.train_augmentations or draws < 1:
        return None
    dataset = ImageClassificationDataset(
        index, indices, train_transform(recipe), recipe.seed, FileReader(index, needed_short_side(recipe))
    )
    return apply_statistics(dataset, draws)


def run(data_dir: Path, out: Path, recipe: Recipe, recipe_name: str, sample: int = 500, draws: int = 2000) -> Survey:
    index = scan(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    survey = Survey(class_counts=index.class_counts())
    readable = survey_headers(index, survey)
    survey_pixels(readable, survey, sample)
    if survey.histograms is not None:
        plot_histograms(survey.histograms, out / "histograms.png")
    good = set(readable) - {p for p, _ in survey.corrupt}
    plot_samples(index, good, out / "samples.png")
    if good:
        plot_augmentations(recipe, sorted(good)[0], out / "augmentations.png")
    start = time.perf_counter()
    survey.augmentations = measure_augmentations(index, good, recipe, draws)
    survey.seconds_augmentations = time.perf_counter() - start
    survey.duplicates = find_duplicates(index, good, recipe)
    (out / "report.md").write_text(markdown(Path(data_dir), survey, recipe_name))
    return survey
