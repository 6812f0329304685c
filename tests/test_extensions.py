"""Extensions named by import path (`package.module:attribute`): a model of one's own beside timm's names."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace

import pytest
import torch
from torch import nn

from harness import models, runner
from harness.errors import DataError, ExtensionError, SpecError
from harness.extensions import resolve, resolve_callable, short_name
from harness.spec import CustomMetric, aug
from tests.conftest import harness_cli, tiny_spec

OWN_MODEL = textwrap.dedent(
    """
    import albumentations as A
    import torch
    from torch import nn
    from torchmetrics import Metric


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


    class Cutout(A.ImageOnlyTransform):
        # blacks out the top-left square of `size` pixels

        def __init__(self, size=4, p=0.5):
            super().__init__(p=p)
            self.size = size

        def apply(self, img, **params):
            out = img.copy()
            out[: self.size, : self.size] = 0
            return out

        def get_transform_init_args_names(self):
            return ("size",)


    def smoothed_loss():
        return nn.CrossEntropyLoss(label_smoothing=0.1)


    def halved_after_first(epoch, epochs):
        return 1.0 if epoch == 0 else 0.5


    class BalancedAccuracy(Metric):
        # the mean over the classes seen of each class's recall

        higher_is_better = True
        full_state_update = False

        def __init__(self, num_classes):
            super().__init__()
            self.add_state("hits", torch.zeros(num_classes), dist_reduce_fx="sum")
            self.add_state("seen", torch.zeros(num_classes), dist_reduce_fx="sum")

        def update(self, logits, target):
            right = (logits.argmax(dim=1) == target).float()
            self.hits += torch.zeros_like(self.hits).index_add_(0, target, right)
            self.seen += torch.bincount(target, minlength=len(self.seen)).float()

        def compute(self):
            return (self.hits / self.seen.clamp(min=1))[self.seen > 0].mean()


    class Directionless(BalancedAccuracy):
        higher_is_better = None


    from timm.models import register_model


    @register_model
    def own_timm_net(pretrained=False, **kwargs):  # a timm entry point of one's own, without a pretrained config
        return tiny_net(kwargs["num_classes"])
    """
)

OWN_PARTS = dict(
    model="ownnets:tiny_net",
    metrics=(CustomMetric("balanced", "ownnets:BalancedAccuracy", True),),
)
OWN_RECIPE = dict(
    loss="ownnets:smoothed_loss",
    scheduler="ownnets:halved_after_first",
    train_augmentations=(aug("ownnets:Cutout", size=8, p=1.0),),
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


def test_a_timm_model_of_ones_own_is_named_by_its_module_so_every_process_registers_it(own_models):
    """Registered with timm but without a pretrained config: `AttributeError: 'NoneType' object has no attribute
    'mean'` in models.data_stats; by its timm name, a 2-process case failed in the child (`unknown timm model`),
    which never imported the module that registers it."""
    with pytest.raises(models.ModelError, match=r"name it by import path, package\.module:my_tinynet, so that"):
        models.check_name("my_tinynet")  # registered by a module this process never imported
    net = models.create("ownnets:own_timm_net", 5, "random", models.Path("."), allow_hub=False)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 5)
    assert models.data_stats("own_timm_net") == models.IMAGENET_STATS  # now registered here: timm's defaults


def test_its_normalisation_is_its_own_or_imagenets_and_says_which(own_models):
    assert models.data_stats("ownnets:normalised_net") == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert models.normalisation_source("ownnets:normalised_net") == "the model's mean and std"
    assert models.data_stats("ownnets:tiny_net") == models.IMAGENET_STATS
    assert models.normalisation_source("ownnets:tiny_net").startswith("ImageNet's")


def test_pretrained_weights_for_a_model_of_ones_own_are_refused_before_anything_runs(own_models):
    with pytest.raises(SpecError, match="not a timm model, so trainbench has no pretrained weights for it; give"):
        tiny_spec(model="ownnets:tiny_net", weights="pretrained")


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_every_part_of_ones_own_trains_in_either_engine(own_models, engine, tiny_folder, settings):
    """The model, transform, loss, schedule and metric of one's own, in one process (two: see below)."""
    spec = tiny_spec(engine=engine, **OWN_PARTS).with_recipe(epochs=2, **OWN_RECIPE)
    record = runner.run(spec, settings.replace(data_root=tiny_folder, wandb="off"))
    assert record.ok and record.spec["model"] == "ownnets:tiny_net" and record.run_id.startswith("tiny_net-")
    assert [row["lr"] for row in record.history] == pytest.approx([1e-3, 5e-4])  # the schedule's factors
    assert 0 <= record.test["test_balanced"] <= 1 and "train_balanced" in record.history[-1]
    assert record.data["normalisation"] == {
        "mean": list(models.IMAGENET_STATS[0]),
        "std": list(models.IMAGENET_STATS[1]),
        "from": "ImageNet's (the model gives no mean and std attributes)",
    }


@pytest.mark.heavy  # make test: every extension in one process of either engine (above)
@pytest.mark.ddp
def test_the_processes_of_a_two_process_run_resolve_every_extension_from_the_project(
    own_models, tiny_folder, settings, tmp_path
):
    """The children start elsewhere (trainbench's folder); the project's folder on their path finds `ownnets`: its
    model, transform, loss, schedule and metric. The gate then gates the metric by its name."""
    from harness import launch

    spec = tiny_spec(engine="lightning", devices=2, **OWN_PARTS).with_recipe(epochs=2, **OWN_RECIPE)
    record = launch.run(spec, settings.replace(data_root=tiny_folder, wandb="off", project_dir=tmp_path))
    assert record.ok, record.failure
    assert record.spec["devices"] == 2 and record.run_id.startswith("tiny_net-tiny-lightning-32true-2dev")
    assert record.spec["recipe"]["loss"] == "ownnets:smoothed_loss"
    assert [row["lr"] for row in record.history] == pytest.approx([1e-3, 5e-4])  # the schedule's factors
    assert 0 <= record.test["test_balanced"] <= 1 and "val_balanced" in record.history[-1]
    results = settings.results_dir
    gate = harness_cli("compare", str(results), str(results), "--tolerance", "balanced=0.05", "--metrics", "balanced")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "test_balanced" in gate.stdout and "0.05" in gate.stdout and "PASS" in gate.stdout


def test_the_gate_gates_a_custom_metric_in_its_direction_and_refuses_one_no_run_has(tmp_path):
    from harness.errors import GateError
    from harness.results.compare import compare, gated, parse_metrics, parse_tolerances
    from harness.results.observations import Run

    def side(*values: float, higher: bool = True) -> dict[str, list[Run]]:
        return {"case@1": [Run({"test_eer": v}, seed=i, directions={"test_eer": higher}) for i, v in enumerate(values)]}

    tolerances = parse_tolerances(["eer=0.02"])
    worse_if_higher = compare(side(0.80, 0.80), side(0.75, 0.75), tolerances, metrics=["test_eer"])
    assert [v.outcome for v in worse_if_higher.verdicts] == ["REGRESSED"] and worse_if_higher.verdicts[
        0
    ].allowed == 0.02
    lower_is_better = compare(side(0.80, 0.80, higher=False), side(0.75, 0.75, higher=False), tolerances)
    assert [v.outcome for v in lower_is_better.verdicts] == ["ok"]
    acc_only = {"case@1": [Run({"test_acc": 0.9}, seed=0)]}
    with_eer = {"case@1": [Run({"test_acc": 0.9, "test_eer": 0.7}, seed=0, directions={"test_eer": True})]}
    added = compare(acc_only, with_eer)
    assert added.passed and not added.uncompared  # a metric a case added is gated from the next night on
    asked = compare(acc_only, with_eer, metrics=["test_acc", "test_eer"])
    assert asked.uncompared == ["case@1 test_eer (missing in baseline)"]  # unless asked for by name
    with pytest.raises(GateError, match=r"auroc: no run on either side reports such a metric; .* own are eer"):
        compare(side(0.8), side(0.8), parse_tolerances(["auroc=0.01"]))
    from harness.results.observations import observations

    bench = {"benchmarks": [{"name": "t", "extra_info": {"spec_id": "case", "recipe": "1", "test_eer": 0.7}}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))  # pytest-benchmark JSON: the direction travels beside it
    bench["benchmarks"][0]["extra_info"]["metric_directions"] = {"test_eer": "higher"}
    (tmp_path / "c.json").write_text(json.dumps(bench))
    assert "test_eer" not in observations(tmp_path / "b.json")["case@1"][0].metrics
    assert observations(tmp_path / "c.json")["case@1"][0].directions == {"test_eer": True}
    with pytest.raises(GateError, match=r"^accc: no run on either side reports such a metric"):  # a typo, before
        gated(parse_tolerances(None), parse_metrics("accc"), (side(0.8),))  # a session trains (the plugin's check)


def test_every_recipe_extension_resolves_before_anything_runs(own_models, tmp_path):
    from harness.catalog import WORKFLOWS
    from harness.configure import case_spec

    def spec_with(**options):
        return case_spec(WORKFLOWS["fastvit"], "smoke", weights="random", num_classes=4, options=options)

    for field in ("loss", "optimizer", "scheduler"):
        with pytest.raises(ExtensionError, match=f"^the fastvit recipe, as given: {field} 'ownnets:nosuch': ownnets"):
            spec_with(**{field: "ownnets:nosuch"})
    with pytest.raises(SpecError, match="unknown loss 'focal'; choose one of cross_entropy, or name your own"):
        spec_with(loss="focal")
    spec = spec_with(scheduler="cosine", warmup_epochs=1, loss="ownnets:smoothed_loss", optimizer="torch.optim:RMSprop")
    assert spec.origin_of("scheduler") == "--scheduler" and spec.recipe.warmup_epochs == 1


@pytest.mark.parametrize(
    "changes, says",
    [
        (dict(warmup_epochs=2), "warmup_epochs 2 warms up a cosine or step schedule, and the scheduler is 'none'"),
        (dict(scheduler="cosine", warmup_epochs=4, epochs=4), "warmup_epochs 4 leaves none of the 4 epochs"),
        (dict(scheduler="step", step_size=0), "step_size 1 or more"),
        (dict(scheduler="linear"), "unknown scheduler 'linear'; choose one of none, cosine, step"),
    ],
)
def test_a_schedule_that_cannot_run_is_refused_in_one_line(changes, says, tmp_path):
    with pytest.raises(SpecError, match=says):  # a field alone at once; fields against each other once all are set
        tiny_spec().with_recipe(**changes).recipe.check_schedule("the recipe")
    spec = tiny_spec().with_recipe(epochs=4, warmup_epochs=2)  # a warm-up given before its scheduler is not refused
    assert spec.with_recipe(scheduler="cosine").recipe.warmup_epochs == 2
    if "warmup_epochs" in changes:  # and a spec built in Python is checked before its data is read
        from harness import preflight

        with pytest.raises(SpecError, match=f"^{tiny_spec().id}'s recipe: {says}"):
            preflight.check_parts(tiny_spec().with_recipe(**changes))


def test_the_schedules_factors_per_epoch():
    from harness.engines.training import lr_factor

    recipe = tiny_spec().recipe
    cosine = [lr_factor(replace(recipe, scheduler="cosine", warmup_epochs=2, epochs=6), e) for e in range(6)]
    assert cosine == pytest.approx([1 / 3, 2 / 3, 1.0, 0.853553, 0.5, 0.146447], abs=1e-6)
    step = [lr_factor(replace(recipe, scheduler="step", step_size=2, gamma=0.5, epochs=5), e) for e in range(5)]
    assert step == pytest.approx([1, 1, 0.5, 0.5, 0.25])
    assert [lr_factor(recipe, e) for e in range(3)] == [1.0, 1.0, 1.0]


def test_a_schedule_at_its_defaults_keeps_the_fingerprint_records_had():
    spec = tiny_spec()
    assert "scheduler" not in spec.result_fields()["recipe"] and "metrics" not in spec.result_fields()
    assert spec.with_recipe(scheduler="cosine").recipe_fingerprint != spec.recipe_fingerprint


def test_a_transform_of_ones_own_is_seeded_and_applied_like_albumentations_own(own_models):
    import numpy as np

    from harness.data.transforms import check_augmentations, train_transform

    pipeline = train_transform(replace(tiny_spec().recipe, train_augmentations=(aug("ownnets:Cutout", size=8, p=1.0),)))
    image = np.full((32, 32, 3), 200, dtype=np.uint8)
    out = pipeline(image=image)["image"]
    assert out[:, :8, :8].max() == 0 and out[:, 8:, 8:].min() == 200
    with pytest.raises(SpecError, match=r"Cutout has no parameter 'sise' \(did you mean 'size'\?\)"):
        check_augmentations((aug("ownnets:Cutout", sise=8),), "--augment")
    with pytest.raises(SpecError, match="'ownnets:tiny_net' is not an albumentations transform class; subclass"):
        check_augmentations((aug("ownnets:tiny_net"),), "--augment")


def test_a_metric_of_ones_own_says_its_direction_or_is_refused(own_models):
    from harness.metrics import custom_metrics, parse_metric

    assert parse_metric("auroc=torchmetrics.classification:MulticlassAUROC").higher_is_better is True
    with pytest.raises(ExtensionError, match="does not say whether higher is better; set higher_is_better"):
        parse_metric("mine=ownnets:Directionless")
    with pytest.raises(ExtensionError, match=r"--metric takes NAME=package\.module:attribute"):
        parse_metric("ownnets:BalancedAccuracy")
    with pytest.raises(SpecError, match=r"metric name 'acc' must be a word of .* other than loss, acc, f1"):
        CustomMetric("acc", "ownnets:BalancedAccuracy", True)
    with pytest.raises(ExtensionError, match="built a Sequential, not a torchmetrics Metric"):
        custom_metrics((CustomMetric("net", "ownnets:tiny_net", True),), 3)


def test_a_pre_split_layout_is_used_as_the_split_never_read_as_classes(tmp_path, settings):
    """`train/`, `val/`, `test/` each with class folders: eda reported "90 images in 3 classes" named test, train
    and val, and run would have trained on that. Its parts are now the split, and the record and start-up say so."""
    from harness.data.imagefolder import scan
    from tests.conftest import make_image_folder

    root = tmp_path / "pre"
    for part, count in (("train", 8), ("valid", 3), ("test", 2)):
        make_image_folder(root / part, {"cat": count, "dog": count, "eel": count})
    index = scan(root)
    assert index.classes == ("cat", "dog", "eel") and index.part_folders == ("train", "valid", "test")
    record = runner.run(tiny_spec(dataset="pre"), settings.replace(data_root=root, wandb="off"))
    assert record.ok, record.failure
    split = record.data["split"]
    assert (split["train"], split["val"], split["test"]) == (24, 9, 6) and split[
        "by"
    ] == "the folders train, valid, test"
    assert record.data["classes"] == ["cat", "dog", "eel"]
    survey = harness_cli("eda", root, "--out", tmp_path / "eda", "--draws", "1")
    assert survey.returncode == 0 and "39 images, 3 classes" in survey.stdout, survey.stdout + survey.stderr


def test_a_pre_split_layout_that_is_not_one_is_one_line_with_the_fix(tmp_path):
    from harness.data.imagefolder import scan
    from tests.conftest import make_image_folder

    for part in ("train", "test"):
        make_image_folder(tmp_path / "two" / part, {"cat": 3, "dog": 3})
    with pytest.raises(DataError, match=r"a pre-split dataset needs exactly one each of train/, val/ and test/"):
        scan(tmp_path / "two")
    make_image_folder(tmp_path / "mixed" / "train", {"cat": 3, "dog": 3})
    make_image_folder(tmp_path / "mixed", {"owl": 3})
    with pytest.raises(DataError, match=r"holds train/, the parts of a pre-split dataset, beside owl/"):
        scan(tmp_path / "mixed")
    for part in ("train", "val", "test"):
        make_image_folder(tmp_path / "extra" / part, {"cat": 3, "dog": 3, **({"owl": 3} if part == "test" else {})})
    with pytest.raises(DataError, match=r"has class folder\(s\) owl that train/ lacks"):
        scan(tmp_path / "extra")
