"""The seeds' recipes exactly as published, with their figures and sources, and the profiles.

`full` is a recipe unchanged on the real dataset; `smoke` keeps the same code path (same model,
engine, optimizer, augmentations, metrics) but shrinks image size, epochs and batch size and trains
on a generated dataset, so that the whole matrix runs on a 2-core CPU in minutes. The smoke learning
rate follows the linear scaling rule (lr x smoke batch / recipe batch; Goyal et al. 2017), since the
recipe's lr at a batch 8x smaller makes Adam spike and erase pretrained features. A seed's
`smoke_changes` set what its measurements over seeds required beyond that (README: smoke figures).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec import (
    Augmentation,
    BenchmarkSpec,
    Recipe,
    SpecError,
    Split,
    Threshold,
    aug,
)

PROFILES: tuple[str, ...] = ("smoke", "full")
# One default for `python -m harness` and pytest: the smoke profile runs anywhere, offline, in
# minutes; the published recipe on real data is always asked for (`--profile full`).
DEFAULT_PROFILE = "smoke"


@dataclass(frozen=True)
class Published:
    """A figure from a write-up: test metrics (accuracy as a fraction) for one weights setting."""

    weights: str
    metrics: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, float]:
        return dict(self.metrics)


@dataclass(frozen=True)
class Seed:
    """One reproduced workflow: its recipe, where it comes from and what it reported."""

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
    smoke_changes: tuple[tuple[str, Any], ...] = ()  # recipe fields the smoke profile sets beyond its shared shrinking, each measured

    def published_for(self, weights: str) -> Published | None:
        return next((p for p in self.published if p.weights == weights), None)


EFFICIENTNETV2 = Seed(
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
    # Measured over 3 seeds (README, smoke figures): with timm's TensorFlow-style head (uniform +-0.41
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

FASTVIT = Seed(
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
            (("test_acc", 0.9237), ("test_loss", 0.263), ("test_f1", 0.9220), ("test_top3", 0.99875), ("test_top5", 1.0)),
        ),
    ),
    tolerances=(("test_acc", 0.02), ("test_loss", 0.05), ("test_f1", 0.02), ("test_top3", 0.005), ("test_top5", 0.002)),
    weights=("pretrained",),
    assumptions="Published figures are the write-up's epoch-40 figures; the write-up used ImageNet weights.",
)

SEEDS: dict[str, Seed] = {s.key: s for s in (EFFICIENTNETV2, FASTVIT)}

# Smoke profile: same code path, sized for a 2-core CPU. Split by fractions because the
# generated datasets are small; the counts of the full recipe keep their proportions.
SMOKE_IMAGE_SIZE = 64
SMOKE_EPOCHS = 4
SMOKE_BATCH_SIZE = 16
SMOKE_MARGIN_OVER_CHANCE = 0.2


def profile_recipe(seed: Seed, profile: str) -> Recipe:
    """The seed's recipe unchanged (`full`) or shrunk for a CPU (`smoke`)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    recipe = seed.recipe
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
        recipe = dataclasses.replace(recipe, **dict(seed.smoke_changes))
    return recipe


def thresholds(seed: Seed, profile: str, weights: str, num_classes: int | None) -> tuple[Threshold, ...]:
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
    published = seed.published_for(weights)
    if published is None:
        return ()
    tolerance = dict(seed.tolerances)
    out = []
    for metric, value in published.metrics:
        tol = tolerance.get(metric, 0.0)
        if metric.endswith("loss"):
            out.append(Threshold(metric, "at_most", value + tol, f"published {value} + {tol}"))
        else:
            out.append(Threshold(metric, "at_least", value - tol, f"published {value} - {tol}"))
    return tuple(out)


def make_spec(
    seed: Seed,
    *,
    profile: str,
    weights: str,
    precision: str = "32-true",
    devices: int = 1,
    engine: str | None = None,
    num_nodes: int = 1,
    epochs: int | None = None,
    num_classes: int | None,
) -> BenchmarkSpec:
    """The spec of one matrix cell of `seed` in `profile`."""
    limits = thresholds(seed, profile, weights, num_classes)
    target, target_source = target_accuracy_for(seed, profile, weights, limits)
    recipe = profile_recipe(seed, profile)
    spec = BenchmarkSpec(
        model=seed.model,
        dataset=seed.dataset if profile == "full" else seed.smoke_dataset,
        engine=engine or seed.engine,
        weights=weights,
        precision=precision,
        devices=devices,
        num_nodes=num_nodes,
        recipe=recipe,
        thresholds=limits,
        benchmark=seed.key,
        profile=profile,
        target_accuracy=target,
        target_source=target_source,
        recipe_origin=tuple((f.name, f"{profile} profile") for f in dataclasses.fields(Recipe) if getattr(recipe, f.name) != getattr(seed.recipe, f.name)),
    )
    return spec if epochs is None else spec.with_recipe_from("--epochs", epochs=epochs)


def target_accuracy_for(seed: Seed, profile: str, weights: str, limits: tuple[Threshold, ...]) -> tuple[float | None, str | None]:
    """The val accuracy a run's time-to-target counts to, and where it comes from: the published
    test accuracy (full profile), else the smoke floor; none when neither exists."""
    published = seed.published_for(weights)
    if profile == "full" and published and "test_acc" in published.as_dict():
        return published.as_dict()["test_acc"], f"published ({seed.key}, {weights} weights)"
    floor = next((t for t in limits if t.metric == "test_acc" and t.op == "at_least"), None)
    if floor is None:
        return None, None
    return floor.value, ("smoke floor: " if profile == "smoke" else "threshold: ") + floor.why


def read_recipe_file(path: Path) -> dict[str, Any]:
    """The recipe fields a JSON or YAML file sets, e.g. `{"lr": 1e-3, "epochs": 20, "train_augmentations":
    ["HorizontalFlip", {"name": "Rotate", "limit": 30, "p": 0.5}], "split": {"train": 0.8, "val": 0.1, "test": 0.1}}`.
    Fields it leaves out keep the recipe's (and profile's) values; an unknown field is an error."""
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"--recipe-file {path} cannot be read ({error.strerror}); give a JSON or YAML file of recipe fields") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # PyYAML comes with Lightning

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except Exception as error:  # JSONDecodeError, YAMLError
        raise SpecError(f"--recipe-file {path} is not {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {' '.join(str(error).split())[:200]}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"--recipe-file {path} holds a {type(raw).__name__}; give a mapping of recipe fields, e.g. {{\"lr\": 0.001}}")
    fields = dict(raw)
    for name, value in fields.items():
        kind = FILE_FIELD_TYPES.get(name)
        if kind is not None and not (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)):
            raise SpecError(f"--recipe-file {path}: {name} is {value!r}; give {FILE_FIELD_WORDS.get(name, 'a number')}")
    try:
        if "split" in fields:
            fields["split"] = Split(**fields["split"])
        if "train_augmentations" in fields:
            fields["train_augmentations"] = tuple(_augmentation(item) for item in fields["train_augmentations"] or ())
    except (TypeError, AttributeError, KeyError) as error:
        raise SpecError(f"--recipe-file {path}: {type(error).__name__}: {error}; each augmentation is a name or {{name: ..., PARAM: VALUE}}, the split {{train:, val:, test:}}") from None
    return fields


# What each recipe-file field must hold (a bool is no number here, though Python counts it as one).
FILE_FIELD_TYPES: dict[str, Any] = {
    "lr": (int, float), "weight_decay": (int, float), "head_init_std": (int, float), "batch_size": int, "epochs": int, "image_size": int,
    "workers": int, "seed": int, "optimizer": str, "loss": str, "train_crop": str, "sync_batchnorm": bool, "split": dict, "train_augmentations": list,
}  # fmt: skip
_KIND_WORDS = {int: "a whole number", str: "a name", bool: "true or false", dict: "a mapping", list: "a list"}
FILE_FIELD_WORDS = {name: _KIND_WORDS[kind] for name, kind in FILE_FIELD_TYPES.items() if kind in _KIND_WORDS}


def _augmentation(item: str | dict[str, Any]) -> Augmentation:
    """`"HorizontalFlip"` or `{"name": "Rotate", "limit": 30, "p": 0.5}`."""
    if isinstance(item, str):
        return aug(item)
    params = dict(item)
    return aug(params.pop("name"), **params)


def parse_augment(text: str, recipe: Recipe) -> tuple[Augmentation, ...]:
    """`--augment`: `none`, or albumentations names `HorizontalFlip,VerticalFlip`; a name the recipe
    already has keeps the recipe's parameters, any other takes albumentations' defaults."""
    if text.strip().lower() == "none":
        return ()
    own = {a.name: a for a in recipe.train_augmentations}
    return tuple(own.get(name, aug(name)) for name in (n.strip() for n in text.split(",")) if name)


def describe(seed: Seed) -> str:
    """A catalog entry for `harness recipes`: where it comes from, its recipe, the smoke changes, its figures."""
    recipe = seed.recipe
    augmentations = ", ".join(a.name + (f"({', '.join(f'{k}={v}' for k, v in a.params)})" if a.params else "") for a in recipe.train_augmentations)
    split = f"{recipe.split.train:g}/{recipe.split.val:g}/{recipe.split.test:g} ({recipe.split.by})"
    lines = [
        f"{seed.key}: {seed.title}",
        f"  source:     {seed.source}",
        f"  model:      {seed.model} ({seed.engine}); data: {seed.dataset} (smoke: {seed.smoke_dataset}); weights: {', '.join(seed.weights)}",
        f"  recipe:     {recipe.optimizer} lr {recipe.lr:g}, weight decay {recipe.weight_decay:g}, batch {recipe.batch_size}, {recipe.epochs} epochs, "
        f"{recipe.image_size} px, {recipe.train_crop}, split {split}, seed {recipe.seed}, {recipe.workers} loader workers (published)",
        f"  augment:    {augmentations or 'none'}",
        f"  smoke:      {SMOKE_EPOCHS} epochs, batch {SMOKE_BATCH_SIZE}, {SMOKE_IMAGE_SIZE} px, lr scaled to the batch"
        + (f"; then {', '.join(f'{k}={v:g}' for k, v in seed.smoke_changes)}" if seed.smoke_changes else ""),
    ]
    for published in seed.published:
        figures = ", ".join(f"{k} {v:.4g}" for k, v in published.metrics)
        lines.append(f"  published:  {published.weights} weights: {figures}")
    if seed.assumptions:
        lines.append(f"  assumed:    {seed.assumptions}")
    return "\n".join(lines)
