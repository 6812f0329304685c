"""albumentations pipelines built from a recipe.

Train: the recipe's crop (plain resize, or random-resized-crop), its augmentations by albumentations
class name, then normalisation with the model's own mean/std and ToTensorV2.
Eval (val and test): resize and normalise only, as both write-ups state.
albumentations keeps its own random state; the dataset reseeds it per sample and epoch (see
`ImageClassificationDataset`), so augmentations repeat exactly from run to run.
"""

from __future__ import annotations

import albumentations as A
from albumentations.pytorch import ToTensorV2

from harness.spec import Augmentation, Recipe, SpecError

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


def augmentation(item: Augmentation, **overrides) -> A.BasicTransform:
    """The albumentations transform `item` names (`overrides`, e.g. p=1.0, win over its params)."""
    factory = getattr(A, item.name, None)
    if factory is None:
        raise SpecError(f"albumentations has no transform named {item.name!r}; check the recipe's train_augmentations")
    return factory(**{**item.kwargs, **overrides})


def _finish(stats: Stats) -> list[A.BasicTransform]:
    mean, std = stats
    return [A.Normalize(mean=mean, std=std), ToTensorV2()]


def train_transform(recipe: Recipe, stats: Stats) -> A.Compose:
    size = recipe.image_size
    if recipe.train_crop == "random_resized_crop":
        crop = A.RandomResizedCrop(size=(size, size), scale=(0.5, 1.0))
    else:
        crop = A.Resize(height=size, width=size)
    return A.Compose([crop, *(augmentation(a) for a in recipe.train_augmentations), *_finish(stats)], seed=recipe.seed)


def eval_transform(recipe: Recipe, stats: Stats) -> A.Compose:
    return A.Compose([A.Resize(height=recipe.image_size, width=recipe.image_size), *_finish(stats)])
