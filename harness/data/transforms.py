"""albumentations pipelines built from a recipe.

Train: the recipe's crop (plain resize, or random-resized-crop), its augmentations by albumentations
class name, then ToTensorV2: samples stay uint8, and the model's mean/std normalisation happens on
the device (`harness.data.device`). Eval (val and test): resize only, as both write-ups state.
albumentations keeps its own random state; the dataset reseeds it per sample and epoch (see
`ImageClassificationDataset`), so augmentations repeat exactly from run to run.
"""

from __future__ import annotations

import difflib
import math
from functools import cache

import albumentations as A
from albumentations.pytorch import ToTensorV2

from harness.spec import Augmentation, Recipe, SpecError

CROP_SCALE = (0.5, 1.0)  # random-resized-crop: the share of the image's area a crop covers
CROP_RATIO = (3 / 4, 4 / 3)  # and its aspect ratio (albumentations' default)


@cache
def transform_names() -> tuple[str, ...]:
    """Every albumentations transform a recipe can name."""
    return tuple(sorted(n for n in dir(A) if isinstance(getattr(A, n), type) and issubclass(getattr(A, n), A.BasicTransform) and n not in ("BasicTransform", "DualTransform", "ImageOnlyTransform")))


def check_augmentations(items: tuple[Augmentation, ...], where: str) -> None:
    """Every transform `items` name exists in albumentations and takes its parameters; a wrong one is
    a one-line SpecError naming `where` it was given, before any data is read."""
    for item in items:
        _built(item, where)


def _built(item: Augmentation, where: str, **overrides) -> A.BasicTransform:
    if item.name not in transform_names():
        close = difflib.get_close_matches(item.name, transform_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see albumentations' list of transforms"
        raise SpecError(f"{where}: albumentations has no transform named {item.name!r}; {hint}")
    try:
        return getattr(A, item.name)(**{**item.kwargs, **overrides})
    except Exception as error:  # pydantic ValidationError, TypeError: each transform checks its own arguments
        raise SpecError(f"{where}: {item.name}({', '.join(f'{k}={v!r}' for k, v in item.params)}) is refused by albumentations: {' '.join(str(error).split())[:300]}") from None


def augmentation(item: Augmentation, **overrides) -> A.BasicTransform:
    """The albumentations transform `item` names (`overrides`, e.g. p=1.0, win over its params)."""
    return _built(item, "the recipe's train_augmentations", **overrides)


def train_transform(recipe: Recipe) -> A.Compose:
    size = recipe.image_size
    if recipe.train_crop == "random_resized_crop":
        crop = A.RandomResizedCrop(size=(size, size), scale=CROP_SCALE, ratio=CROP_RATIO)
    else:
        crop = A.Resize(height=size, width=size)
    return A.Compose([crop, *(augmentation(a) for a in recipe.train_augmentations), ToTensorV2()], seed=recipe.seed)


def needed_short_side(recipe: Recipe) -> int:
    """The smallest shorter side an image can be stored at without losing a pixel the recipe's
    transforms use: the image size for a plain resize; for random-resized-crop, enough that the
    smallest crop (CROP_SCALE[0] of the area at the narrowest ratio) still spans `image_size` each way."""
    if recipe.train_crop != "random_resized_crop":
        return recipe.image_size
    narrowest = min(CROP_RATIO[0], 1 / CROP_RATIO[1])
    return math.ceil(recipe.image_size / math.sqrt(CROP_SCALE[0] * narrowest))


def eval_transform(recipe: Recipe) -> A.Compose:
    return A.Compose([A.Resize(height=recipe.image_size, width=recipe.image_size), ToTensorV2()])
