"""Extensions named by import path (`package.module:attribute`): a model of one's own beside timm's names."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from harness import models, runner
from harness.errors import DataError, ExtensionError, SpecError
from harness.extensions import resolve, resolve_callable, short_name
from tests.conftest import tiny_spec

OWN_MODEL = textwrap.dedent(
    """
    from torch import nn


    def tiny_net(num_classes):
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)
        )


    def normalised_net(num_classes):
        return tiny_net(num_classes)


    normalised_net.mean = (0.5, 0.5, 0.5)
    normalised_net.std = (0.25, 0.25, 0.25)
    NOT_CALLABLE = 3


    def not_a_module(num_classes):
        return "a string"
    """
)


@pytest.fixture
def own_models(tmp_path, monkeypatch):
    (tmp_path / "ownnets.py").write_text(OWN_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "ownnets"


@pytest.mark.parametrize(
    "path, says",
    [
        ("ownnets", "is not an import path; write it as package.module:attribute"),
        ("ownnets:", "is not an import path"),
        ("nosuchpackage.nets:tiny", "module 'nosuchpackage.nets' cannot be imported"),
        ("ownnets:nosuch", "ownnets has no attribute 'nosuch'; check the name after the colon"),
    ],
)
def test_an_import_path_that_does_not_resolve_is_one_line_with_the_fix(own_models, path, says):
    with pytest.raises(ExtensionError, match=r"^model ") as error:
        resolve(path, "model")
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_model_of_ones_own_is_built_by_its_factory_and_named_by_its_attribute(own_models):
    with pytest.raises(ExtensionError, match="is a int, not something to call"):
        resolve_callable("ownnets:NOT_CALLABLE", "model")
    net = models.create("ownnets:tiny_net", 5, "random", models.Path("."), allow_hub=False)
    assert isinstance(net, nn.Module) and net(torch.zeros(2, 3, 16, 16)).shape == (2, 5)
    with pytest.raises(ExtensionError, match=r"returned a str, not a torch\.nn\.Module"):
        models.create("ownnets:not_a_module", 5, "random", models.Path("."), allow_hub=False)
    assert short_name("ownnets:tiny_net") == "tiny_net" and short_name("resnet18") == "resnet18"
    assert tiny_spec(model="ownnets:tiny_net").id.startswith("tiny_net-tiny-poutyne-")


def test_its_normalisation_is_its_own_or_imagenets_and_says_which(own_models):
    assert models.data_stats("ownnets:normalised_net") == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert models.normalisation_source("ownnets:normalised_net") == "the model's mean and std"
    assert models.data_stats("ownnets:tiny_net") == models.IMAGENET_STATS
    assert models.normalisation_source("ownnets:tiny_net").startswith("ImageNet's")


def test_pretrained_weights_for_a_model_of_ones_own_are_refused_before_anything_runs(own_models):
    with pytest.raises(SpecError, match="not a timm model, so trainbench has no pretrained weights for it; give"):
        tiny_spec(model="ownnets:tiny_net", weights="pretrained")


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_a_model_of_ones_own_trains_in_either_engine(own_models, engine, tiny_folder, settings):
    spec = tiny_spec(model="ownnets:tiny_net", engine=engine)
    record = runner.run(spec, settings.replace(data_root=tiny_folder, wandb="off"))
    assert record.ok and record.spec["model"] == "ownnets:tiny_net" and record.run_id.startswith("tiny_net-")


@pytest.mark.slow
def test_the_processes_of_a_two_process_run_resolve_the_model_from_the_project(
    own_models, tiny_folder, settings, tmp_path
):
    """The children start elsewhere (trainbench's folder); the project's folder on their path finds `ownnets`."""
    from harness import launch

    spec = tiny_spec(model="ownnets:tiny_net", engine="lightning", devices=2)
    record = launch.run(spec, settings.replace(data_root=tiny_folder, wandb="off", project_dir=tmp_path))
    assert record.ok, record.failure
    assert record.spec["devices"] == 2 and record.run_id.startswith("tiny_net-tiny-lightning-32true-2dev")


def test_a_pre_split_layout_is_never_read_as_classes_in_silence(tmp_path):
    """`train/`, `val/`, `test/` each with class folders: eda reported "90 images in 3 classes" named test, train
    and val, and run would have trained on that."""
    from harness.data.imagefolder import scan
    from tests.conftest import make_image_folder

    for part in ("train", "val", "test"):
        make_image_folder(tmp_path / "pre" / part, {"cat": 3, "dog": 3})
    with pytest.raises(DataError, match=r"holds test/, train/, val/, the parts of a pre-split dataset, not classes"):
        scan(tmp_path / "pre")
