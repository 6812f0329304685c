"""One configuration path, for the command line and the pytest layer alike:

    catalog workflow -> profile -> recipe file -> options -> the case's spec

`case_spec` is the only place a spec is assembled from the catalog. Each later layer wins over an
earlier one, and the spec remembers which gave each recipe value (`BenchmarkSpec.recipe_origin`,
shown in the start-up line and kept in the record). A recipe file is validated by pydantic
(`RecipeChanges`: the recipe's own fields, each of its type; an unknown field or a value of the
wrong kind is one line that names the file, the field, the value and what to give), and named
augmentations by albumentations itself (`transforms.check_augmentations`), before any data is read.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.catalog import Workflow, make_spec
from harness.data import kvasir, synthetic
from harness.data.transforms import check_augmentations
from harness.engines.training import check_recipe_extensions
from harness.errors import SpecError, one_line
from harness.spec import Augmentation, BenchmarkSpec, CustomMetric, Recipe, Split, aug

# Recipe fields with a command-line option of their own (pytest has `--epochs`), and the option's name.
RECIPE_OPTIONS: dict[str, str] = {
    "image_size": "--image-size",
    "batch_size": "--batch-size",
    "optimizer": "--optimizer",
    "loss": "--loss",
    "scheduler": "--scheduler",
    "warmup_epochs": "--warmup-epochs",
    "step_size": "--step-size",
    "gamma": "--gamma",
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "seed": "--seed",
    "split": "--split",
    "sync_batchnorm": "--sync-batchnorm",
    "epochs": "--epochs",
    "train_augmentations": "--augment",
}


Number = int | float  # kept as written: 0 stays 0, as the catalog writes it, so fingerprints do not move


class _SplitFields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    train: Number
    val: Number
    test: Number
    by: Literal["fraction", "count"] = "fraction"


class _AugmentationFields(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # the transform's own keywords, which albumentations checks
    name: str


def _unset(description: str) -> Any:
    """A recipe field a file may leave out. Its default, None, is never read (`recipe_fields` takes only the
    fields set) and is no value a file may give (strict: null fails validation), so the field keeps its own
    type rather than `| None`; typed Any so that the default type-checks against it."""
    return Field(None, description=description)


class RecipeChanges(BaseModel):
    """The recipe fields a recipe file sets, each of the recipe's own type (a bool is no number here,
    and null is no value); a field left out keeps the recipe's value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    optimizer: str = _unset("a name")
    lr: Number = _unset("a number")
    weight_decay: Number = _unset("a number")
    batch_size: int = _unset("a whole number")
    epochs: int = _unset("a whole number")
    image_size: int = _unset("a whole number")
    workers: int = _unset("a whole number")
    split: _SplitFields = _unset("a mapping")
    loss: str = _unset("a name")
    train_crop: str = _unset("a name")
    train_augmentations: list[str | _AugmentationFields] = _unset("a list")
    seed: int = _unset("a whole number")
    sync_batchnorm: bool = _unset("true or false")
    head_init_std: Number = _unset("a number")
    scheduler: str = _unset("a name")
    warmup_epochs: int = _unset("a whole number")
    step_size: int = _unset("a whole number")
    gamma: Number = _unset("a number")

    def recipe_fields(self) -> dict[str, Any]:
        """The fields set, as `Recipe` holds them (a Split, Augmentations)."""
        fields = {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}
        if "split" in fields:
            fields["split"] = Split(**self.split.model_dump())
        if "train_augmentations" in fields:
            fields["train_augmentations"] = tuple(
                aug(a) if isinstance(a, str) else aug(a.name, **(a.model_extra or {})) for a in self.train_augmentations
            )
        return fields


def read_recipe_file(path: Path) -> dict[str, Any]:
    """The recipe fields a JSON or YAML file sets, e.g. `{"lr": 1e-3, "epochs": 20, "train_augmentations":
    ["HorizontalFlip", {"name": "Rotate", "limit": 30, "p": 0.5}], "split": {"train": 0.8, "val": 0.1, "test": 0.1}}`.
    Fields it leaves out keep the recipe's (and profile's) values; an unknown field is a SpecError."""
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(
            f"--recipe-file {path} cannot be read ({error.strerror}); give a JSON or YAML file of recipe fields"
        ) from None
    yaml_file = path.suffix in (".yaml", ".yml")
    try:
        if yaml_file:
            import yaml  # PyYAML comes with Lightning

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except Exception as error:  # JSONDecodeError, YAMLError
        raise SpecError(
            f"--recipe-file {path} is not {'YAML' if yaml_file else 'JSON'}: {' '.join(str(error).split())[:200]}"
        ) from None
    if not isinstance(raw, dict):
        raise SpecError(
            f'--recipe-file {path} holds a {type(raw).__name__}; give a mapping of recipe fields, e.g. {{"lr": 0.001}}'
        )

    def problem(field: str, value: Any, words: str | None) -> str:
        if words is None:
            return (
                f"recipe file {path} sets {field}, which no recipe has; recipe fields are"
                f" {', '.join(f.name for f in dataclasses.fields(Recipe))}"
            )
        return f"--recipe-file {path}: {field} is {raw.get(field, value)!r}; give {words}"

    try:
        fields = RecipeChanges.model_validate(raw).recipe_fields()
    except ValidationError as error:
        first = error.errors()[0]
        if len(first["loc"]) > 1 and first["loc"][0] in (
            "split",
            "train_augmentations",
        ):  # inside a split or an augmentation: say where, and the shapes
            where = ".".join(str(part) for part in first["loc"])
            raise SpecError(
                f"--recipe-file {path}: {where}: {first['msg']}; each augmentation is a name or {{name: ..., PARAM:"
                " VALUE}, the split {train:, val:, test:}"
            ) from None
        raise SpecError(one_line(error, problem, RecipeChanges.model_fields)) from None
    return {
        name: fields[name] for name in raw
    }  # in the file's order: the record lists where each value came from in that order


def dataset_from(value: str | None, workflow: Workflow, profile: str, data_root: str | None) -> tuple[str, Path | None]:
    """(dataset name, data root) from `--data`: a generated name, a Kvasir folder or any ImageFolder."""
    root = Path(data_root) if data_root else None
    if value is None:
        return workflow.dataset_in(profile), root
    if value in synthetic.DATASETS or value == "kvasir":
        return value, root
    path = Path(value)
    if path.name == kvasir.FOLDER_NAME:
        return "kvasir", path.parent
    return path.name or "imagefolder", path


def parse_augment(text: str, recipe: Recipe) -> tuple[Augmentation, ...]:
    """`--augment`: `none`, or albumentations names `HorizontalFlip,VerticalFlip`; a name the recipe
    already has keeps the recipe's parameters, any other takes albumentations' defaults."""
    if text.strip().lower() == "none":
        return ()
    own = {a.name: a for a in recipe.train_augmentations}
    return tuple(own.get(name, aug(name)) for name in (n.strip() for n in text.split(",")) if name)


def case_spec(
    workflow: Workflow,
    profile: str,
    *,
    weights: str,
    num_classes: int | None,
    precision: str = "32-true",
    devices: int = 1,
    num_nodes: int = 1,
    engine: str | None = None,
    recipe_file: Path | None = None,
    layers: Sequence[tuple[str, Mapping[str, Any]]] = (),
    options: Mapping[str, Any] | None = None,
    augment: str | None = None,
    dataset: str | None = None,
    model: str | None = None,
    target_accuracy: float | None = None,
    limit_batches: int | None = None,
    adhoc: bool = False,
    metrics: tuple[CustomMetric, ...] = (),
) -> BenchmarkSpec:
    """The spec of one case: `workflow`'s recipe in `profile` (`catalog.make_spec`; `num_classes`
    sizes the smoke thresholds), then `recipe_file`, then `layers` (origin, recipe fields: an experiment
    file's), then `options` (recipe field -> value, each given as its `RECIPE_OPTIONS` flag; None: not
    given) and `augment` (`--augment`), then the case's own choices. `dataset` other than the
    workflow's drops the published target (it means nothing on other data); `target_accuracy` names
    one (`--target-acc`). An `adhoc` case (a command-line run) asserts no thresholds and is no row of
    the workflow's published tables."""
    spec = make_spec(
        workflow, profile=profile, weights=weights, precision=precision, engine=engine, num_classes=num_classes
    )
    if recipe_file is not None:
        spec = spec.with_recipe_from(f"recipe file {recipe_file}", **read_recipe_file(recipe_file))
    for origin, fields in layers:  # an experiment file's values, then its matrix cell's
        if fields:
            spec = spec.with_recipe_from(origin, **fields)
    for name, value in (options or {}).items():
        if value is not None:
            spec = spec.with_recipe_from(RECIPE_OPTIONS[name], **{name: value})
    if augment is not None:
        spec = spec.with_recipe_from(
            RECIPE_OPTIONS["train_augmentations"], train_augmentations=parse_augment(augment, spec.recipe)
        )
    check_augmentations(
        spec.recipe.train_augmentations,
        dict(spec.recipe_origin).get("train_augmentations", f"the {workflow.key} recipe"),
    )
    check_recipe_extensions(spec.recipe, f"the {workflow.key} recipe, as given")
    spec.recipe.check_schedule(f"the {workflow.key} recipe, as given")
    if adhoc:
        spec = spec.replace(benchmark="cli", thresholds=())
    if dataset is not None and dataset not in (workflow.dataset, workflow.smoke_dataset):
        spec = spec.replace(dataset=dataset, target_accuracy=None, target_source=None)
    elif dataset is not None:
        spec = spec.replace(dataset=dataset)
    if target_accuracy is not None:
        spec = spec.replace(target_accuracy=target_accuracy, target_source="--target-acc")
    if model:
        spec = spec.replace(model=model)
    # devices last: the global batch must divide over the processes, and it is the batch given above
    return spec.replace(devices=devices, num_nodes=num_nodes, limit_batches=limit_batches, metrics=metrics)
