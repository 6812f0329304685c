import math

import pytest

from harness.catalog import EFFICIENTNETV2, FASTVIT, make_spec, profile_recipe
from harness.spec import BenchmarkSpec, SpecError, Split
from tests.conftest import tiny_spec


def test_ids_are_readable_and_cover_every_axis():
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    assert spec.id == "tf_efficientnetv2_b2-synthetic-poutyne-32true-1dev-pretrained"
    spec = make_spec(FASTVIT, profile="full", weights="pretrained", precision="bf16-mixed", devices=2, num_classes=8)
    assert spec.id == "fastvit_t8-kvasir-lightning-bf16-2dev-pretrained"
    assert spec.replace(num_nodes=2).id == "fastvit_t8-kvasir-lightning-bf16-2dev-2node-pretrained"
    assert spec.replace(precision="16-mixed").id.count("-fp16-") == 1


def test_spec_round_trips_through_json_unchanged():
    spec = make_spec(FASTVIT, profile="full", weights="pretrained", num_classes=8)
    again = BenchmarkSpec.from_json(spec.to_json())
    assert again == spec and hash(again) == hash(spec)


def test_full_profile_is_the_published_recipe_and_smoke_derives_from_it():
    assert profile_recipe(EFFICIENTNETV2, "full") == EFFICIENTNETV2.recipe
    full, smoke = EFFICIENTNETV2.recipe, profile_recipe(EFFICIENTNETV2, "smoke")
    assert (full.optimizer, full.lr, full.batch_size, full.workers) == ("adam", 5e-3, 128, 2)
    assert [a.name for a in full.train_augmentations] == [
        "HorizontalFlip",
        "VerticalFlip",
        "Transpose",
        "RandomBrightnessContrast",
        "RGBShift",
        "OpticalDistortion",
        "GridDistortion",
    ]
    assert smoke.train_augmentations == full.train_augmentations and smoke.optimizer == full.optimizer
    fastvit = profile_recipe(FASTVIT, "smoke")
    assert (
        fastvit.lr == pytest.approx(FASTVIT.recipe.lr * fastvit.batch_size / FASTVIT.recipe.batch_size)
        and fastvit.head_init_std is None
    )
    assert (smoke.batch_size, smoke.lr, smoke.epochs, smoke.head_init_std) == (
        32,
        6e-4,
        6,
        0.01,
    )  # EfficientNetV2's measured smoke_changes
    assert full.head_init_std is None  # the full profile keeps timm's own head
    assert profile_recipe(FASTVIT, "smoke").split.by == "fraction"
    assert profile_recipe(FASTVIT, "full").split == Split(5564, 1600, 832, by="count")


def test_full_thresholds_are_published_figures_minus_tolerance():
    spec = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    by_metric = {t.metric: t for t in spec.thresholds}
    assert by_metric["test_acc"].value == pytest.approx(0.93802 - 0.02)
    assert by_metric["test_loss"].op == "at_most" and by_metric["test_loss"].value == pytest.approx(0.14629 + 0.05)
    smoke = make_spec(EFFICIENTNETV2, profile="smoke", weights="random", num_classes=6)
    floor, ceiling = smoke.thresholds
    assert floor.metric == "test_acc" and floor.value == pytest.approx(1 / 6 + 0.2, abs=1e-4)
    assert (
        ceiling.metric == "test_loss"
        and ceiling.op == "at_most"
        and ceiling.value == pytest.approx(math.log(6), abs=1e-4)
    )
    assert not ceiling.holds({"test_loss": 1.80}) and ceiling.holds({"test_loss": 1.59})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"engine": "keras"}, "unknown engine"),
        ({"precision": "fp8"}, "unknown precision"),
        ({"weights": "imagenet"}, "unknown weights"),
    ],
)
def test_bad_spec_values_are_named(change, message):
    with pytest.raises(SpecError, match=message):
        tiny_spec(**change)


def test_bad_recipe_values_are_named():
    with pytest.raises(SpecError, match="unknown optimizer 'rmsprop'"):
        tiny_spec().with_recipe(optimizer="rmsprop")
    with pytest.raises(SpecError, match="sum to at most 1"):
        Split(0.8, 0.2, 0.2)
