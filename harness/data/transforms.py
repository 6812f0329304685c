"""albumentations pipelines built from a recipe.

Train: the recipe's crop (plain resize, or random-resized-crop), its augmentations by albumentations
class name or, for one of the user's own, by import path (`package.module:Class`, an albumentations
transform class, so it is seeded like the others), then ToTensorV2: samples stay uint8, and the
model's mean/std normalisation happens on the device (`harness.data.device`). Eval (val and
test): resize only, as both write-ups state.

Seeding. albumentations keeps its own random state, and `Compose(seed=S)` or
`Compose.set_random_seed(S)` hand the same seed S to every child transform (albumentations 2.0.8,
`BaseCompose.set_random_seed`): transforms with the same `p` then draw the same apply/skip decision,
so a pipeline of seven p=0.5 transforms applies all of them or none. `seed_pipeline` gives each
transform a stream of its own instead, through albumentations' `set_random_state(generator,
py_random)`: a `numpy.random.SeedSequence` of the key (seed, epoch, sample) with the transform's
position as its spawn key, so the draws are independent between transforms, repeat exactly for the
same key whatever the worker, rank or restart, and a transform's draws do not depend on how many
the transforms before it made (as they would on one shared stream). The dataset seeds the pipeline
per sample and epoch (see `ImageClassificationDataset`); `augmentation_stats` measures the result.
"""

from __future__ import annotations

import difflib
import inspect
import math
import random
from collections.abc import Sequence
from functools import cache

import albumentations as A
import numpy as np
from albumentations.pytorch import ToTensorV2
from pydantic import ValidationError

from harness.errors import SpecError
from harness.extensions import is_import_path, resolve_callable
from harness.spec import Augmentation, Recipe

CROP_SCALE = (0.5, 1.0)  # random-resized-crop: the share of the image's area a crop covers
CROP_RATIO = (3 / 4, 4 / 3)  # and its aspect ratio (albumentations' default)


@cache
def transform_names() -> tuple[str, ...]:
    """Every albumentations transform a recipe can name."""
    return tuple(
        sorted(
            n
            for n in dir(A)
            if isinstance(getattr(A, n), type)
            and issubclass(getattr(A, n), A.BasicTransform)
            and n not in ("BasicTransform", "DualTransform", "ImageOnlyTransform")
        )
    )


def check_augmentations(items: tuple[Augmentation, ...], where: str) -> None:
    """Every transform `items` name exists in albumentations and takes its parameters; a wrong one is
    a one-line SpecError naming `where` it was given, before any data is read."""
    for item in items:
        _built(item, where)


def _built(item: Augmentation, where: str, **overrides) -> A.BasicTransform:
    """The transform `item` names. albumentations only warns of a parameter the transform does not
    take and builds it without (a misspelled `limt` trains with the default limit), so each one is
    checked against the transform's signature first; a value its InitSchema refuses is one line too."""
    if is_import_path(item.name):
        transform = resolve_callable(item.name, f"{where}: transform")
        if not (isinstance(transform, type) and issubclass(transform, A.BasicTransform)):
            raise SpecError(
                f"{where}: transform {item.name!r} is not an albumentations transform class; subclass"
                " A.ImageOnlyTransform (or A.DualTransform) so that it is seeded per sample like the others"
            )
    elif item.name not in transform_names():
        close = difflib.get_close_matches(item.name, transform_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see albumentations' list of transforms"
        raise SpecError(
            f"{where}: albumentations has no transform named {item.name!r}; {hint} (a transform of your own:"
            " package.module:Class)"
        )
    else:
        transform = getattr(A, item.name)
    taken = list(inspect.signature(transform).parameters)
    for name in item.kwargs:
        if name not in taken:
            close = difflib.get_close_matches(name, taken, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = f"its only parameter: {taken[0]}" if len(taken) == 1 else f"its parameters: {', '.join(taken)}"
            raise SpecError(f"{where}: {item.name} has no parameter {name!r}{hint}; {listed}")
    try:
        return transform(**{**item.kwargs, **overrides})
    except ValueError as error:  # albumentations raises its InitSchema's ValidationError as a ValueError
        if not isinstance(error.__cause__, ValidationError):
            raise
        raise SpecError(f"{where}: {_refused(item, error.__cause__)}") from None


def _refused(item: Augmentation, error: ValidationError) -> str:
    """The first parameter an InitSchema refuses, with its value and what each accepted type says."""
    first = error.errors()[0]
    if not first["loc"]:  # a check across parameters
        given = ", ".join(f"{k}={v!r}" for k, v in item.params)
        return f"{item.name}({given}) is refused by albumentations: {first['msg']}"
    field = first["loc"][0]
    said = [(e["loc"][1:], e["msg"]) for e in error.errors() if e["loc"][:1] == (field,)]
    reasons = "; ".join(f"{'.'.join(map(str, where))}: {msg}" if where else msg for where, msg in said)
    return f"{item.name}'s {field} is {item.kwargs.get(str(field))!r}, which albumentations refuses: {reasons}"


def augmentation(item: Augmentation, **overrides) -> A.BasicTransform:
    """The albumentations transform `item` names (`overrides`, e.g. p=1.0, win over its params)."""
    return _built(item, "the recipe's train_augmentations", **overrides)


def seed_pipeline(pipeline: A.BaseCompose, key: Sequence[int], _path: tuple[int, ...] = ()) -> None:
    """Give `pipeline` and each transform in it (nested pipelines too) a random stream of its own,
    derived from `key` (e.g. seed, epoch, sample) and the transform's position (module docstring)."""
    pipeline.set_random_state(
        *_streams(key, _path)
    )  # the pipeline's own draws (its p); sets its children too, overridden below
    for position, transform in enumerate(pipeline.transforms):
        if isinstance(transform, A.BaseCompose):
            seed_pipeline(transform, key, (*_path, position))
        elif isinstance(transform, A.BasicTransform):
            transform.set_random_state(*_streams(key, (*_path, position)))


def _streams(key: Sequence[int], path: tuple[int, ...]) -> tuple[np.random.Generator, random.Random]:
    sequence = np.random.SeedSequence([int(k) for k in key], spawn_key=path)
    return np.random.default_rng(sequence), random.Random(int(sequence.generate_state(1, np.uint64)[0]))


TRAIN_AUGMENTATIONS = slice(
    1, -1
)  # where a train pipeline's recipe augmentations sit: after the crop, before ToTensorV2


def train_transform(recipe: Recipe) -> A.Compose:
    """crop, the recipe's augmentations (`pipeline.transforms[TRAIN_AUGMENTATIONS]`), ToTensorV2;
    seeded by the recipe's seed until the dataset seeds it per sample (`seed_pipeline`)."""
    size = recipe.image_size
    if recipe.train_crop == "random_resized_crop":
        crop = A.RandomResizedCrop(size=(size, size), scale=CROP_SCALE, ratio=CROP_RATIO)
    else:
        crop = A.Resize(height=size, width=size)
    pipeline = A.Compose([crop, *(augmentation(a) for a in recipe.train_augmentations), ToTensorV2()])
    seed_pipeline(pipeline, (recipe.seed,))
    return pipeline


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
