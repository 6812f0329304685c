"""timm loading: a local weights file is really loaded; unknown names and missing weights are clear."""

import pytest
import timm
import torch

from harness import models
from harness.runner import obtain_model
from harness.spec import SpecError
from tests.conftest import TINY_MODEL, tiny_spec


def test_local_weights_file_is_really_loaded(tmp_path):
    source = timm.create_model(TINY_MODEL, num_classes=10)
    models.save_weights(source, tmp_path / f"{TINY_MODEL}.safetensors", {"note": "test"})
    loaded = models.create(TINY_MODEL, 10, "pretrained", tmp_path, allow_hub=False)
    for (name, expected), (_, got) in zip(source.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(expected, got), name


def test_classifier_is_replaced_when_class_count_differs(tmp_path):
    source = timm.create_model(TINY_MODEL, num_classes=10)
    torch.save(source.state_dict(), tmp_path / f"{TINY_MODEL}.pth")
    loaded = models.create(TINY_MODEL, 4, "pretrained", tmp_path, allow_hub=False)
    assert loaded.get_classifier().out_features == 4
    assert torch.equal(loaded.conv_stem.weight, source.conv_stem.weight)


def test_random_weights_differ_from_file(tmp_path):
    source = timm.create_model(TINY_MODEL, num_classes=3)
    models.save_weights(source, tmp_path / f"{TINY_MODEL}.safetensors", {})
    fresh = models.create(TINY_MODEL, 3, "random", tmp_path, allow_hub=False)
    assert not torch.equal(fresh.conv_stem.weight, source.conv_stem.weight)


def test_unknown_model_suggests_names():
    with pytest.raises(models.ModelError, match="unknown timm model 'efficientnetv2_b22'.*did you mean"):
        models.check_name("efficientnetv2_b22")


def test_missing_weights_list_every_place_looked(tmp_path):
    with pytest.raises(models.WeightsNotFound, match=f"looked for .*{TINY_MODEL}.safetensors.*{TINY_MODEL}.pth"):
        models.create(TINY_MODEL, 3, "pretrained", tmp_path, allow_hub=False)


def test_full_profile_missing_weights_is_an_error_not_generated(settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub path is tried, and fails at once offline
    spec = tiny_spec(weights="pretrained", profile="full")
    with pytest.raises(models.WeightsNotFound, match="then the Hugging Face hub.*put a weights file in --weights-dir"):
        obtain_model(spec, settings, 3)
    assert not settings.resolved_weights_dir.exists()


def test_a_recipe_can_draw_the_new_classifier_small(settings):
    """timm starts EfficientNet's 6-class head uniform in +-0.41; head_init_std draws it from N(0, std)."""
    default = obtain_model(tiny_spec(), settings, num_classes=6).get_classifier()
    assert default.weight.abs().max() > 0.3  # TensorFlow-style 1/sqrt(6)
    head = obtain_model(tiny_spec().with_recipe(head_init_std=0.01), settings, num_classes=6).get_classifier()
    assert 0.005 < head.weight.std().item() < 0.015 and torch.count_nonzero(head.bias) == 0
    with pytest.raises(SpecError, match="head_init_std must be a positive number"):
        tiny_spec().with_recipe(head_init_std=-1.0)
