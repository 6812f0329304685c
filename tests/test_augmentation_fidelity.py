"""Train augmentations do what the recipe says, measured through the dataset's own per-sample seeding.

albumentations 2.0.8 hands one seed to every child of a pipeline, so transforms of equal `p` fired
all together or not at all (EfficientNetV2's seven p=0.5 transforms: 104 samples of 200 with none,
96 with all). These tests are statistical: rates within their binomial intervals, pairwise
co-occurrence consistent with independence, and flips plus transpose covering the eight dihedral
variants in near-equal shares. The draws are seeded, so each test gives the same verdict every run.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from harness import catalog
from harness.data import loading
from harness.data.augmentation_stats import apply_statistics
from harness.data.transforms import train_transform
from harness.spec import aug
from tests.conftest import make_image_folder

STATS = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("augment") / "data", {"a": 40, "b": 40})


@pytest.mark.slow
@pytest.mark.parametrize("workflow", ["efficientnetv2", "fastvit"])
def test_each_transform_applies_at_its_rate_and_independently(folder, workflow):
    recipe = catalog.profile_recipe(catalog.WORKFLOWS[workflow], "smoke")
    statistics = apply_statistics(loading.build(folder, recipe, STATS).train, draws=3000)
    assert len(statistics.rates) == len(recipe.train_augmentations)
    for rate in statistics.rates:
        assert rate.consistent, f"{rate.name}: applied {rate.rate:.3f} of draws, interval {rate.interval}, p={rate.p}"
    assert statistics.unaugmented_consistent, (
        f"{statistics.unaugmented} of 3000 un-augmented, expected share {statistics.expected_unaugmented:.4f}"
    )
    assert statistics.independent, f"transforms fire together: {statistics.pair_p_values}"


def test_rates_follow_unequal_probabilities(folder):
    recipe = dataclasses.replace(
        catalog.profile_recipe(catalog.FASTVIT, "smoke"),
        train_augmentations=(
            aug("HorizontalFlip", p=0.2),
            aug("VerticalFlip", p=0.7),
            aug("RandomBrightnessContrast", p=0.5),
        ),
    )
    statistics = apply_statistics(loading.build(folder, recipe, STATS).train, draws=3000)
    assert [r.p for r in statistics.rates] == [0.2, 0.7, 0.5]
    assert statistics.consistent, statistics.markdown()


def _dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The eight symmetries of a square image: four rotations, each with and without a transpose."""
    return [np.rot90(base, k) for base in (image, image.transpose(1, 0, 2)) for k in range(4)]


@pytest.mark.slow
def test_flips_and_transpose_cover_all_eight_dihedral_variants_in_equal_shares(tmp_path):
    root = tmp_path / "square"
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(10):  # stored at the recipe's size: the resize is the identity, only the symmetries move pixels
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    recipe = dataclasses.replace(
        catalog.profile_recipe(catalog.EFFICIENTNETV2, "smoke"),
        image_size=16,
        split=catalog.Split(0.5, 0.25, 0.25),
        train_augmentations=(aug("HorizontalFlip", p=0.5), aug("VerticalFlip", p=0.5), aug("Transpose", p=0.5)),
    )
    train = loading.build(root, recipe, STATS).train
    counts = np.zeros(8, dtype=int)
    keys = itertools.islice(((i, epoch) for epoch in itertools.count() for i in range(len(train))), 4000)
    for key in keys:
        image = train[key][0].permute(1, 2, 0).numpy()
        matches = [k for k, variant in enumerate(_dihedral(train.pixels(key[0]))) if np.array_equal(variant, image)]
        assert len(matches) == 1, f"sample {key}: the output is {len(matches)} of the dihedral variants"
        counts[matches[0]] += 1
    assert (counts > 0).all(), f"dihedral variants never drawn: {counts}"
    result = stats.chisquare(counts)
    assert result.pvalue > 0.001, (
        f"dihedral variants not in equal shares: {counts.tolist()} (chi-square p={result.pvalue:.2g})"
    )


def test_a_key_draws_the_same_augmentation_in_any_order(folder):
    """Worker count and order change nothing: each key reseeds every transform's stream."""
    recipe = catalog.profile_recipe(catalog.EFFICIENTNETV2, "smoke")
    train = loading.build(folder, recipe, STATS).train
    keys = [(i, epoch) for epoch in range(2) for i in range(6)]
    forward = {key: train[key][0] for key in keys}
    backward = {key: train[key][0] for key in reversed(keys)}
    assert all((forward[k] == backward[k]).all() for k in keys)
    assert not all((forward[(i, 0)] == forward[(i, 1)]).all() for i in range(6)), "epochs must draw new augmentations"


def test_a_pipeline_built_outside_the_dataset_is_independent_too():
    """train_transform seeds its transforms apart from the start, not only under the dataset's keys
    (one seed for all kept the flips, which draw nothing else, in lockstep for ever)."""
    recipe = catalog.profile_recipe(catalog.EFFICIENTNETV2, "smoke")
    pipeline = train_transform(recipe)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    applied = np.zeros((1000, len(recipe.train_augmentations)), dtype=bool)
    for row in applied:
        pipeline(image=image)
        row[:] = [bool(t.get_applied_params()) for t in pipeline.transforms[1:-1]]
    pairs = list(itertools.combinations(range(applied.shape[1]), 2))
    for a, b in pairs:
        table = [
            [np.sum(applied[:, a] & applied[:, b]), np.sum(applied[:, a] & ~applied[:, b])],
            [np.sum(~applied[:, a] & applied[:, b]), np.sum(~applied[:, a] & ~applied[:, b])],
        ]
        p_value = stats.chi2_contingency(table, correction=False).pvalue
        assert p_value > 0.01 / len(pairs), (
            f"{recipe.train_augmentations[a].name} and {recipe.train_augmentations[b].name} fire together: {table}"
        )
