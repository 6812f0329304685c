"""An experiment file: one YAML file of cases, so that a repository holds benchmarks without writing Python.

    # benchmarks/shapes.trainbench.yaml
    model: shapes_project.nets:tiny_convnet   # a timm name, or your own by import path
    data: ../data/shapes                      # an ImageFolder (relative to this file) or a generated dataset's name
    engine: lightning
    epochs: 4                                 # any recipe field, over the recipe (default: the neutral base)
    image_size: 32
    scheduler: cosine
    warmup_epochs: 1
    matrix:                                   # every combination is a case
      lr: [0.001, 0.003]
      precision: [32-true, bf16-mixed]
    thresholds: {acc: ">= 0.4"}
    metrics: {balanced_acc: "shapes_project.metrics:BalancedAccuracy"}

Keys: the case's own (`model`, `data`, `engine`, `weights`, `precision`, `devices`), the catalog `recipe` it
starts from (default `base`, docs/command-line.md) and the `profile` (default: the session's), any recipe field, a
`matrix` of lists over any of those, `thresholds` (a metric's short name, `>= X` or `<= X`) and `metrics` (your own,
`name: package.module:attribute`, gated by name). The file is validated before anything trains: an unknown key or a
value of the wrong kind is one line naming the file, the key and what to give; recipe values as recipe files are
(`configure.RecipeChanges`). `trainbench run --config FILE` runs every case and writes the report; pytest collects
`*.trainbench.yaml` files as cases with readable ids (`harness.pytest_plugin`), so `-k` picks them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.catalog import WORKFLOWS
from harness.configure import RecipeChanges, case_spec, dataset_from
from harness.data import synthetic
from harness.errors import SpecError, one_line
from harness.metrics import custom_metric
from harness.results.compare import metric_key
from harness.settings import DEFAULT_PROFILE, EXPERIMENT_SUFFIX, PROFILES
from harness.spec import METRIC_NAMES, BenchmarkSpec, Threshold, value_text

THRESHOLD = re.compile(r"^\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


class _CaseFields(BaseModel):
    """The case's own keys of an experiment file (the rest are recipe fields, `matrix`, `thresholds`, `metrics`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str
    data: str
    engine: str | None = None  # the recipe's
    weights: str = "random"
    precision: str = "32-true"
    devices: int = 1
    recipe: str = "base"
    profile: str | None = None  # the session's (pytest's --trainbench-profile, run's --profile)
    matrix: dict[str, list[Any]] = {}
    thresholds: dict[str, str] = {}
    metrics: dict[str, str] = {}


CASE_KEYS = tuple(_CaseFields.model_fields)
SPEC_AXES = ("model", "engine", "weights", "precision", "devices")  # the case keys a matrix may vary


@dataclass(frozen=True)
class Case:
    """One cell of an experiment: its spec, the id pytest and the tables show, and the folder of its data (None: a
    generated dataset)."""

    spec: BenchmarkSpec
    id: str
    data_root: Path | None


def read(path: Path, profile: str = DEFAULT_PROFILE) -> list[Case]:
    """Every case of the experiment file at `path` in its profile, else `profile` (the session's), validated (a
    SpecError or ExtensionError names the problem)."""
    import yaml  # PyYAML comes with Lightning

    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpecError(f"experiment file {path} cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise SpecError(f"experiment file {path} is not YAML: {' '.join(str(error).split())[:200]}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"experiment file {path} holds a {type(raw).__name__}; give a mapping, e.g. model: resnet18")
    return cases(raw, path, profile)


def _validated(model: type[BaseModel], values: Mapping[str, Any], path: Path) -> BaseModel:
    def problem(field: str, value: Any, words: str | None) -> str:
        if words is None:
            return (
                f"experiment file {path} sets {field}, which is no key of a case nor a recipe field; keys are"
                f" {', '.join(CASE_KEYS)} and the recipe's fields ({', '.join(RecipeChanges.model_fields)})"
            )
        return f"experiment file {path}: {field} is {values.get(field, value)!r}; give {words}"

    try:
        return model.model_validate(dict(values))
    except ValidationError as error:
        raise SpecError(one_line(error, problem, model.model_fields)) from None


def _recipe_fields(values: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Recipe values as `Recipe` holds them, validated as a recipe file's are."""
    changes = _validated(RecipeChanges, values, path)
    assert isinstance(changes, RecipeChanges)
    return changes.recipe_fields()


def _threshold(name: str, text: str, path: Path) -> Threshold:
    found = THRESHOLD.match(str(text))
    if not found:
        raise SpecError(f"experiment file {path}: threshold {name}: {text!r}; give '>= NUMBER' or '<= NUMBER'")
    return Threshold(metric_key(name), "at_least" if found[1] == ">=" else "at_most", float(found[2]), why=path.name)


def cases(raw: Mapping[str, Any], path: Path, profile: str = DEFAULT_PROFILE) -> list[Case]:
    """The cases of an experiment file's mapping `raw` (read from `path`, against whose folder `data` is taken), in
    its profile, else `profile`."""
    recipe_keys = [key for key in raw if key not in CASE_KEYS]
    case = _validated(_CaseFields, {k: v for k, v in raw.items() if k in CASE_KEYS}, path)
    assert isinstance(case, _CaseFields)
    profile = case.profile or profile
    if profile not in PROFILES:
        raise SpecError(f"experiment file {path}: profile {profile!r}; choose one of {', '.join(PROFILES)}")
    recipe_values = _recipe_fields({k: raw[k] for k in recipe_keys}, path)
    if case.recipe not in WORKFLOWS:
        raise SpecError(f"experiment file {path}: recipe {case.recipe!r}; choose one of {', '.join(sorted(WORKFLOWS))}")
    bad_axes = [k for k, v in case.matrix.items() if k not in (*SPEC_AXES, *RecipeChanges.model_fields) or not v]
    if bad_axes:
        raise SpecError(
            f"experiment file {path}: matrix axis {bad_axes[0]!r} is no case key nor recipe field, or has no values;"
            f" give a list of values of {', '.join(SPEC_AXES)} or a recipe field, e.g. lr: [0.001, 0.003]"
        )
    metrics = tuple(custom_metric(name, target) for name, target in case.metrics.items())
    thresholds = tuple(_threshold(name, text, path) for name, text in case.thresholds.items())
    known = {f"test_{name}" for name in (*METRIC_NAMES, *case.metrics)}
    unknown = [t.metric.removeprefix("test_") for t in thresholds if t.metric not in known]
    if unknown:
        raise SpecError(
            f"experiment file {path}: threshold on {', '.join(unknown)}, which no case reports; give one of"
            f" {', '.join(n.removeprefix('test_') for n in sorted(known))}"
        )
    generated = case.data in synthetic.DATASETS or case.data == "kvasir"
    data = case.data if generated else str((path.parent / case.data).resolve())
    workflow = WORKFLOWS[case.recipe]
    dataset, data_root = dataset_from(data, workflow, profile, None)
    out = []
    for values in itertools.product(*case.matrix.values()):
        cell = dict(zip(case.matrix, values, strict=True))
        axes = {k: v for k, v in cell.items() if k in SPEC_AXES}
        _validated(_CaseFields, {"model": case.model, "data": case.data, **axes}, path)  # each value of its kind
        choices = {k: cell.get(k, getattr(case, k)) for k in SPEC_AXES}
        recipe_cell = _recipe_fields({k: v for k, v in cell.items() if k not in SPEC_AXES}, path)
        layers = ((f"experiment file {path.name}", recipe_values), (f"{path.name} matrix", recipe_cell))
        spec = case_spec(
            workflow,
            profile,
            weights=choices["weights"],
            num_classes=2,  # an experiment's thresholds are its own
            precision=choices["precision"],
            devices=choices["devices"],
            engine=choices["engine"],
            dataset=dataset,
            model=choices["model"],
            adhoc=True,
            layers=layers,
            metrics=metrics,
        ).replace(benchmark=path.name.removesuffix(EXPERIMENT_SUFFIX).removesuffix(".yaml"), thresholds=thresholds)
        suffix = "".join(f"-{k}{value_text(v)}" for k, v in recipe_cell.items())
        out.append(Case(spec, spec.id + suffix, data_root))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise SpecError(f"experiment file {path}: its matrix gives two cases the same id; vary what the ids show")
    return out
