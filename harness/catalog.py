"""The workflows' recipes exactly as published, with their figures and sources, and the profiles.

A workflow is one published training write-up (`shared/seeds/`) that trainbench reproduces; "seed"
is always the random seed.

`full` is a recipe unchanged on the real dataset; `smoke` keeps the same code path (same model,
engine, optimizer, augmentations, metrics) but shrinks image size, epochs and batch size and trains
on a generated dataset, so that the whole matrix runs on a 2-core CPU in minutes. The smoke learning
rate follows the linear scaling rule (lr x smoke batch / recipe batch; Goyal et al. 2017), since the
recipe's lr at a batch 8x smaller makes Adam spike and erase pretrained features. A workflow's
`smoke_changes` set what its measurements over seeds required beyond that
(baselines/cpu-2core-avx512/NOTES.md: the smoke figures, batch 32).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from harness.settings import PROFILES
from harness.spec import BenchmarkSpec, Recipe, Split, Threshold, aug


@dataclass(frozen=True)
class Published:
    """A figure from a write-up: test metrics (accuracy as a fraction) for one weights setting."""

    weights: str
    metrics: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, float]:
        return dict(self.metrics)


@dataclass(frozen=True)
class Workflow:
    """One published workflow that trainbench reproduces: its recipe, where it comes from and what it reported."""

    key: str
    title: str
    source: str
    model: str
    engine: str
    dataset: str
    smoke_dataset: str
    recipe: Recipe
    published: tuple[Published, ...]
    tolerances: tuple[tuple[str, float], ...]
    weights: tuple[str, ...]
    assumptions: str = ""
    smoke_changes: tuple[
        tuple[str, Any], ...
    ] = ()  # recipe fields the smoke profile sets beyond its shared shrinking, each measured

    def published_for(self, weights: str) -> Published | None:
        return next((p for p in self.published if p.weights == weights), None)

    def dataset_in(self, profile: str) -> str:
        """The dataset this workflow trains on in `profile`: its own (full), a generated stand-in (smoke)."""
        return self.dataset if profile == "full" else self.smoke_dataset


EFFICIENTNETV2 = Workflow(
    key="efficientnetv2",
    title="EfficientNetV2-B2, pretrained vs random weights, trained with Poutyne",
    source="shared/seeds/efficientnetv2-poutyne.txt (table 'Model | Accuracy | loss')",
    model="tf_efficientnetv2_b2",
    engine="poutyne",
    dataset="imagefolder",
    smoke_dataset="synthetic",
    recipe=Recipe(
        optimizer="adam",
        lr=5e-3,
        weight_decay=0.0,
        batch_size=128,
        epochs=10,
        image_size=260,
        workers=2,
        split=Split(0.7, 0.15, 0.15),
        train_crop="resize",
        train_augmentations=(
            aug("HorizontalFlip", p=0.5),
            aug("VerticalFlip", p=0.5),
            aug("Transpose", p=0.5),
            aug("RandomBrightnessContrast", p=0.5),
            aug("RGBShift", p=0.5),
            aug("OpticalDistortion", p=0.5),
            aug("GridDistortion", p=0.5),
        ),
    ),
    published=(
        Published("pretrained", (("test_acc", 0.93802), ("test_loss", 0.14629))),
        Published("random", (("test_acc", 0.808), ("test_loss", 0.434))),
    ),
    tolerances=(("test_acc", 0.02), ("test_loss", 0.05)),
    weights=("pretrained", "random"),
    assumptions=(
        "The write-up states neither epochs, image size nor split: 10 epochs, timm's 260 px eval size "
        "for tf_efficientnetv2_b2 and a seeded stratified 70/15/15 split are this catalog's choices."
    ),
    # Measured over 3 seeds (baselines/cpu-2core-avx512/NOTES.md): with timm's TensorFlow-style head (uniform +-0.41
    # for 6 classes) and the linearly scaled lr 6.25e-4, the first epoch's loss lay above ln 6 and
    # from-scratch runs' test loss reached 10.9; a small head, lr 3e-4 and 6 epochs keep random
    # weights above the floor. (lr 2e-4 was tried: a weaker stand-in, pretrained 75 % against 84 %,
    # and loss intervals that include zero.) Batch 32 (lr 6e-4, scaled with it): at batch 16 and
    # 64 px the last stages' BatchNorm sees 64 values per channel, a from-scratch run learns on
    # statistics that damp its own outliers, and in eval mode a few test images got logits of 50-180
    # (test loss up to 2.83 over 6 seeds on an AVX2 CPU); at batch 32 the highest was 1.59.
    smoke_changes=(("batch_size", 32), ("lr", 6e-4), ("epochs", 6), ("head_init_std", 0.01)),
)

KVASIR_CLASSES: tuple[str, ...] = (
    "dyed-lifted-polyps",
    "dyed-resection-margins",
    "esophagitis",
    "normal-cecum",
    "normal-pylorus",
    "normal-z-line",
    "polyps",
    "ulcerative-colitis",
)

FASTVIT = Workflow(
    key="fastvit",
    title="FastViT-T8 on Kvasir v2, trained with PyTorch Lightning",
    source="shared/seeds/fastvit-kvasir-lightning.txt (table 'Model | Accuracy | loss | F1 | Top-3 | Top-5')",
    model="fastvit_t8",
    engine="lightning",
    dataset="kvasir",
    smoke_dataset="kvasir-synthetic",
    recipe=Recipe(
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        batch_size=64,
        epochs=40,
        image_size=384,
        workers=2,
        split=Split(5564, 1600, 832, by="count"),
        train_crop="random_resized_crop",
        train_augmentations=(
            aug("Rotate", limit=30, p=0.5),
            aug("HorizontalFlip", p=0.5),
            aug("VerticalFlip", p=0.5),
            aug("Transpose", p=0.5),
        ),
    ),
    published=(
        Published(
            "pretrained",
            (
                ("test_acc", 0.9237),
                ("test_loss", 0.263),
                ("test_f1", 0.9220),
                ("test_top3", 0.99875),
                ("test_top5", 1.0),
            ),
        ),
    ),
    tolerances=(("test_acc", 0.02), ("test_loss", 0.05), ("test_f1", 0.02), ("test_top3", 0.005), ("test_top5", 0.002)),
    weights=("pretrained",),
    assumptions="Published figures are the write-up's epoch-40 figures; the write-up used ImageNet weights.",
)

# What a run of a model of one's own trains with when it names no recipe: no write-up's choices (no augmentation,
# no schedule, no pretraining stand-in), the common defaults of the field (Adam at 1e-3 on batch 32).
BASE = Workflow(
    key="base",
    title="A neutral base for a model of your own: Adam 1e-3, batch 32, no augmentation, no schedule",
    source="trainbench's own (docs/command-line.md, 'The neutral base'); no write-up, no published figures",
    model="resnet18",
    engine="lightning",
    dataset="imagefolder",
    smoke_dataset="synthetic",
    recipe=Recipe(
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        batch_size=32,
        epochs=10,
        image_size=224,
        workers=2,
        split=Split(0.8, 0.1, 0.1),
    ),
    published=(),
    tolerances=(),
    weights=("random", "pretrained"),
)

WORKFLOWS: dict[str, Workflow] = {w.key: w for w in (EFFICIENTNETV2, FASTVIT, BASE)}

# Smoke profile: same code path, sized for a 2-core CPU. Split by fractions because the
# generated datasets are small; the counts of the full recipe keep their proportions.
SMOKE_IMAGE_SIZE = 64
SMOKE_EPOCHS = 4
SMOKE_BATCH_SIZE = 16
SMOKE_MARGIN_OVER_CHANCE = 0.2


def profile_recipe(workflow: Workflow, profile: str) -> Recipe:
    """The workflow's recipe unchanged (`full`) or shrunk for a CPU (`smoke`)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    recipe = workflow.recipe
    if profile == "smoke":
        split = recipe.split
        if split.by == "count":
            total = split.train + split.val + split.test
            split = Split(split.train / total, split.val / total, split.test / total)
        recipe = dataclasses.replace(
            recipe,
            image_size=SMOKE_IMAGE_SIZE,
            epochs=SMOKE_EPOCHS,
            batch_size=SMOKE_BATCH_SIZE,
            lr=recipe.lr * SMOKE_BATCH_SIZE / recipe.batch_size,
            split=split,
        )
        recipe = dataclasses.replace(recipe, **dict(workflow.smoke_changes))
    return recipe


def thresholds(workflow: Workflow, profile: str, weights: str, num_classes: int | None) -> tuple[Threshold, ...]:
    """Full: the published figure minus its stated tolerance. Smoke: clearly above chance in
    accuracy, and a test loss under chance's, ln C (a higher one reads as broken, whatever the
    accuracy)."""
    if profile == "smoke":
        if not num_classes:
            raise ValueError("smoke thresholds need the dataset's number of classes")
        chance = 1.0 / num_classes
        floor = chance + SMOKE_MARGIN_OVER_CHANCE
        return (
            Threshold("test_acc", "at_least", round(floor, 4), f"chance {chance:.3f} + {SMOKE_MARGIN_OVER_CHANCE}"),
            Threshold("test_loss", "at_most", round(math.log(num_classes), 4), f"chance loss ln {num_classes}"),
        )
    published = workflow.published_for(weights)
    if published is None:
        return ()
    tolerance = dict(workflow.tolerances)
    out = []
    for metric, value in published.metrics:
        tol = tolerance.get(metric, 0.0)
        if metric.endswith("loss"):
            out.append(Threshold(metric, "at_most", value + tol, f"published {value} + {tol}"))
        else:
            out.append(Threshold(metric, "at_least", value - tol, f"published {value} - {tol}"))
    return tuple(out)


def make_spec(
    workflow: Workflow,
    *,
    profile: str,
    weights: str,
    precision: str = "32-true",
    devices: int = 1,
    engine: str | None = None,
    num_nodes: int = 1,
    num_classes: int | None,
) -> BenchmarkSpec:
    """The spec of one matrix cell of `workflow` in `profile` (the first layer of `configure.case_spec`)."""
    limits = thresholds(workflow, profile, weights, num_classes)
    target, target_source = target_accuracy_for(workflow, profile, weights, limits)
    recipe = profile_recipe(workflow, profile)
    return BenchmarkSpec(
        model=workflow.model,
        dataset=workflow.dataset_in(profile),
        engine=engine or workflow.engine,
        weights=weights,
        precision=precision,
        devices=devices,
        num_nodes=num_nodes,
        recipe=recipe,
        thresholds=limits,
        benchmark=workflow.key,
        recipe_name=workflow.key,
        profile=profile,
        target_accuracy=target,
        target_source=target_source,
        recipe_origin=tuple(
            (f.name, f"{profile} profile")
            for f in dataclasses.fields(Recipe)
            if getattr(recipe, f.name) != getattr(workflow.recipe, f.name)
        ),
    )


def target_accuracy_for(
    workflow: Workflow, profile: str, weights: str, limits: tuple[Threshold, ...]
) -> tuple[float | None, str | None]:
    """The val accuracy a run's time-to-target counts to, and where it comes from: the published
    test accuracy (full profile), else the smoke floor; none when neither exists."""
    published = workflow.published_for(weights)
    if profile == "full" and published and "test_acc" in published.as_dict():
        return published.as_dict()["test_acc"], f"published ({workflow.key}, {weights} weights)"
    floor = next((t for t in limits if t.metric == "test_acc" and t.op == "at_least"), None)
    if floor is None:
        return None, None
    return floor.value, ("smoke floor: " if profile == "smoke" else "threshold: ") + floor.why


def describe(workflow: Workflow) -> str:
    """A catalog entry for `harness recipes`: where it comes from, its recipe, the smoke changes, its figures."""
    recipe = workflow.recipe
    augmentations = ", ".join(
        a.name + (f"({', '.join(f'{k}={v}' for k, v in a.params)})" if a.params else "")
        for a in recipe.train_augmentations
    )
    split = f"{recipe.split.train:g}/{recipe.split.val:g}/{recipe.split.test:g} ({recipe.split.by})"
    lines = [
        f"{workflow.key}: {workflow.title}",
        f"  source:     {workflow.source}",
        (
            f"  model:      {workflow.model} ({workflow.engine}); data: {workflow.dataset} (smoke:"
            f" {workflow.smoke_dataset}); weights: {', '.join(workflow.weights)}"
        ),
        (
            f"  recipe:     {recipe.optimizer} lr {recipe.lr:g}, weight decay {recipe.weight_decay:g}, batch"
            f" {recipe.batch_size}, {recipe.epochs} epochs, {recipe.image_size} px, {recipe.train_crop}, split {split},"
            f" seed {recipe.seed}, {recipe.workers} loader workers (published)"
        ),
        f"  augment:    {augmentations or 'none'}",
        f"  smoke:      {SMOKE_EPOCHS} epochs, batch {SMOKE_BATCH_SIZE}, {SMOKE_IMAGE_SIZE} px, lr scaled to the batch"
        + (f"; then {', '.join(f'{k}={v:g}' for k, v in workflow.smoke_changes)}" if workflow.smoke_changes else ""),
    ]
    for published in workflow.published:
        figures = ", ".join(f"{k} {v:.4g}" for k, v in published.metrics)
        lines.append(f"  published:  {published.weights} weights: {figures}")
    if workflow.assumptions:
        lines.append(f"  assumed:    {workflow.assumptions}")
    return "\n".join(lines)
