"""The declarative description of one benchmark case.

A `BenchmarkSpec` is immutable and JSON-serialisable: the pytest layer builds it, the CLI builds it,
a child process receives it as a file, and the result record stores it. Everything a run does is a
function of its spec plus the environment settings (paths, tracking), never of hidden globals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from harness.capabilities import ENGINES, SUPPORT
from harness.errors import SpecError
from harness.extensions import is_import_path, short_name

WEIGHTS: tuple[str, ...] = ("pretrained", "random")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")  # or an import path (engines.training)
SCHEDULERS: tuple[str, ...] = ("none", "cosine", "step")  # or an import path (engines.training)
LOSSES: tuple[str, ...] = ("cross_entropy",)  # or an import path (engines.training)
TRAIN_CROPS: tuple[str, ...] = ("resize", "random_resized_crop")
MIN_IMAGE_SIZE = 16
METRIC_NAMES: tuple[str, ...] = (
    "loss",
    "acc",
    "f1",
    "top3",
    "top5",
)  # what every engine reports per part (train_, val_, test_)

# what a custom metric may not be named: a built-in metric, or a key the history rows and Poutyne's logs use
# and the gate's short names of its timed metrics (results.observations.ALIASES)
RESERVED_METRIC_NAMES: tuple[str, ...] = (
    *METRIC_NAMES,
    *("images", "time", "size", "epoch", "lr"),
    *("speed", "images_per_s", "energy", "j_per_image"),
)

# Recipe fields added after records existed, with the value every earlier record trained with: a recipe
# that keeps it keeps the fingerprint it had (BenchmarkSpec.result_fields).
LATER_RECIPE_FIELDS: dict[str, Any] = {"scheduler": "none", "warmup_epochs": 0, "step_size": 1, "gamma": 0.1}

# The one short form of each precision, in readable test ids and figure labels: 32-true -> 32true,
# bf16-mixed -> bf16, 16-mixed -> fp16.
PRECISION_TAGS = {"32-true": "32true", "16-mixed": "fp16", "bf16-mixed": "bf16"}


@dataclass(frozen=True)
class Augmentation:
    """One albumentations transform by class name, with its keyword arguments."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class Split:
    """How a single ImageFolder is cut into train/val/test: by fractions or by exact counts."""

    train: float
    val: float
    test: float
    by: Literal["fraction", "count"] = "fraction"

    def __post_init__(self) -> None:
        values = (self.train, self.val, self.test)
        if any(v <= 0 for v in values):
            raise SpecError(f"split sizes must all be positive, got {values}")
        if self.by == "fraction" and sum(values) > 1.0 + 1e-9:
            raise SpecError(f"split fractions must sum to at most 1, got {sum(values):.3f}")
        if self.by == "count" and any(float(v) != int(v) for v in values):
            raise SpecError(f"split counts must be whole numbers, got {values}")


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters, exactly as a write-up states them (or a profile derives them)."""

    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    image_size: int
    workers: int
    split: Split
    loss: str = "cross_entropy"
    train_crop: str = "resize"
    train_augmentations: tuple[Augmentation, ...] = ()
    seed: int = 42
    sync_batchnorm: bool = False
    head_init_std: float | None = None  # the new classifier drawn from N(0, std), bias 0; None: the model's own init
    scheduler: str = "none"  # the lr of each epoch (engines.training): none, cosine, step or an import path
    warmup_epochs: int = 0  # linear warm-up epochs before a cosine or step schedule
    step_size: int = 1  # step: epochs between two drops of the lr
    gamma: float = 0.1  # step: the factor of each drop

    def __post_init__(self) -> None:
        for field, names in (("optimizer", OPTIMIZERS), ("loss", LOSSES), ("scheduler", SCHEDULERS)):
            value = getattr(self, field)
            if value not in names and not is_import_path(value):
                raise SpecError(
                    f"unknown {field} {value!r}; choose one of {', '.join(names)}, or name your own as"
                    " package.module:attribute"
                )
        if self.train_crop not in TRAIN_CROPS:
            raise SpecError(f"unknown train_crop {self.train_crop!r}; choose one of {', '.join(TRAIN_CROPS)}")
        for name in ("batch_size", "epochs", "image_size", "workers"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be a whole number, got {getattr(self, name)!r}")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_size < MIN_IMAGE_SIZE:  # distortions split an image into a grid of cells; networks downsample 32x
            raise SpecError(
                f"image_size {self.image_size} is too small to train on; give --image-size {MIN_IMAGE_SIZE} or more"
            )
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise SpecError(f"lr must be a positive number, got {self.lr}; e.g. --lr 1e-3")
        if self.head_init_std is not None and not (math.isfinite(self.head_init_std) and self.head_init_std > 0):
            raise SpecError(f"head_init_std must be a positive number or None, got {self.head_init_std}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise SpecError(
                f"weight_decay must be 0 or a positive number, got {self.weight_decay}; e.g. --weight-decay 0.05"
            )
        if self.workers < 0:
            raise SpecError(f"workers must be 0 or more, got {self.workers}")
        for name in ("warmup_epochs", "step_size"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be a whole number, got {getattr(self, name)!r}")
        if self.warmup_epochs < 0 or self.step_size < 1:
            raise SpecError(
                f"warmup_epochs must be 0 or more and step_size 1 or more, got {self.warmup_epochs}, {self.step_size}"
            )
        if not math.isfinite(self.gamma) or self.gamma <= 0:
            raise SpecError(f"gamma must be a positive number, got {self.gamma}; e.g. 0.1")

    def check_schedule(self, where: str) -> None:
        """The schedule fields agree with each other and with the epochs: checked on the finished recipe (`where`
        names it), since a layer of options may set the warm-up before the epochs that make room for it."""
        if self.warmup_epochs and self.scheduler not in ("cosine", "step"):
            raise SpecError(
                f"{where}: warmup_epochs {self.warmup_epochs} warms up a cosine or step schedule, and the scheduler"
                f" is {self.scheduler!r}; give scheduler cosine or step, or warmup_epochs 0"
            )
        if self.warmup_epochs >= self.epochs and self.scheduler in ("cosine", "step"):
            raise SpecError(
                f"{where}: warmup_epochs {self.warmup_epochs} leaves none of the {self.epochs} epochs to the"
                f" {self.scheduler} schedule; give fewer warm-up epochs or more epochs"
            )


@dataclass(frozen=True)
class Threshold:
    """`metric` (a test metric name) must be >= (`at_least`) or <= (`at_most`) `value`."""

    metric: str
    op: Literal["at_least", "at_most"]
    value: float
    why: str = ""

    def holds(self, metrics: dict[str, float]) -> bool:
        """Whether the metric meets the threshold; a missing, null or non-finite value never does."""
        got = metrics.get(self.metric)
        if got is None or not math.isfinite(got):
            return False
        return got >= self.value if self.op == "at_least" else got <= self.value

    def describe(self) -> str:
        sign = ">=" if self.op == "at_least" else "<="
        return f"{self.metric} {sign} {self.value:.4g}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class CustomMetric:
    """A metric of the user's own: `path` (`package.module:attribute`) builds a torchmetrics `Metric` from
    the number of classes; it is updated with logits `(N, C)` and integer targets `(N,)` and computes
    one number, recorded as `train_<name>`, `val_<name>` and `test_<name>`. `higher_is_better` is its
    direction, which the gate reads from the record (`harness.metrics.custom_metric` takes it from the
    Metric class's own `higher_is_better`)."""

    name: str
    path: str
    higher_is_better: bool

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in RESERVED_METRIC_NAMES:
            raise SpecError(
                f"metric name {self.name!r} must be a word of letters, digits and _ other than"
                f" {', '.join(RESERVED_METRIC_NAMES)}; e.g. auroc=torchmetrics.classification:MulticlassAUROC"
            )
        if not is_import_path(self.path):
            raise SpecError(f"metric {self.name}: {self.path!r} is not an import path; write package.module:attribute")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One case of the matrix: what to train, with what, on what, and what it must reach."""

    model: str
    dataset: str
    engine: str
    weights: str
    precision: str
    devices: int
    recipe: Recipe
    thresholds: tuple[Threshold, ...] = ()
    num_nodes: int = 1
    benchmark: str = "adhoc"
    profile: str = "smoke"
    target_accuracy: float | None = None
    target_source: str | None = None
    limit_batches: int | None = None  # a set-up check: the recipe for this many batches per phase and epoch (None: all)
    recipe_origin: tuple[
        tuple[str, str], ...
    ] = ()  # (recipe field, where its value came from) for every value that is not the catalog's
    metrics: tuple[CustomMetric, ...] = ()  # the user's own, computed beside the built-in METRIC_NAMES
    recipe_name: str = ""  # the catalog recipe it started from (efficientnetv2, fastvit, base); "": a recipe of its own

    def missed(self, test: dict[str, float]) -> list[str]:
        """Each threshold the test metrics miss, with the value they got (`test_acc >= 0.4: got 0.3125`)."""
        return [
            t.describe() + (f": got {v:.4f}" if isinstance(v := test.get(t.metric), float) else f": got {v}")
            for t in self.thresholds
            if not t.holds(test)
        ]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric the engines report per part: the built-in ones, then the custom ones."""
        return (*METRIC_NAMES, *(m.name for m in self.metrics))

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise SpecError(f"metric names must differ, got {', '.join(names)}")
        if self.limit_batches is not None and self.limit_batches < 1:
            raise SpecError(f"--limit-batches must be 1 or more batches per phase, got {self.limit_batches}")
        if self.engine not in ENGINES:
            raise SpecError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.weights not in WEIGHTS:
            raise SpecError(f"unknown weights {self.weights!r}; choose one of {', '.join(WEIGHTS)}")
        if is_import_path(self.model) and self.weights != "random":
            raise SpecError(
                f"model {self.model!r} is not a timm model, so trainbench has no pretrained weights for it; give"
                " --weights random and load your weights in the factory"
            )
        if self.precision not in SUPPORT[self.engine].precisions:
            raise SpecError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(SUPPORT[self.engine].precisions)}"
            )
        if self.devices < 1 or self.num_nodes < 1:
            raise SpecError(f"devices and num_nodes must be at least 1, got {self.devices}, {self.num_nodes}")
        if not SUPPORT[self.engine].several_nodes and self.num_nodes > 1:
            raise SpecError(
                f"{SUPPORT[self.engine].library} trains in one process on one machine; --num-nodes {self.num_nodes}"
                " needs --engine lightning (under torchrun or SLURM)"
            )
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise SpecError(
                f"target accuracy {self.target_accuracy} is not a fraction in (0, 1]; give e.g. 0.9 for 90 %"
            )
        batch, processes = self.recipe.batch_size, self.processes
        if batch % processes:
            lower, upper = batch - batch % processes, batch + processes - batch % processes
            raise SpecError(
                f"batch size {batch} is the global batch and must divide evenly over {processes} processes "
                f"(devices x nodes); use --batch-size {lower or upper} or {upper}"
            )

    @property
    def id(self) -> str:
        """Readable, unique, `-k` friendly: `fastvit_t8-kvasir-lightning-bf16-2dev-pretrained`."""
        parts = [
            short_name(self.model),
            self.dataset,
            self.engine,
            PRECISION_TAGS[self.precision],
            f"{self.devices}dev",
        ]
        if self.num_nodes > 1:
            parts.append(f"{self.num_nodes}node")
        parts.append(self.weights)
        if self.limit_batches is not None:
            parts.append(f"limit{self.limit_batches}")
        return "-".join(parts)

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def processes(self) -> int:
        """Training processes: one per device for Lightning (DDP); one for Poutyne (a device list)."""
        return SUPPORT[self.engine].processes(self.world_size)

    @property
    def processes_per_node(self) -> int:
        """Training processes on each node, which share its cores."""
        return max(1, self.processes // self.num_nodes)

    @property
    def per_process_batch(self) -> int:
        """The recipe's batch is the global batch: each process loads its share."""
        return self.recipe.batch_size // self.processes

    @property
    def per_device_batch(self) -> int:
        """Images each device computes on at once (a one-process engine splits its batch over its devices)."""
        return self.recipe.batch_size // self.world_size

    def result_fields(self) -> dict[str, Any]:
        """What determines the result: everything but the expectations and the benchmark's name."""
        fields = self.to_dict()
        for expectation in (
            "thresholds",
            "benchmark",
            "target_accuracy",
            "target_source",
            "recipe_origin",
            "recipe_name",
            "metrics",  # what is measured, not what is trained: adding a metric keeps a case's baseline
        ):
            fields.pop(expectation)
        if fields["limit_batches"] is None:  # full runs keep the fingerprints they had before the option existed
            fields.pop("limit_batches")
        for name, default in LATER_RECIPE_FIELDS.items():  # so do recipes that leave later fields at their default
            if fields["recipe"][name] == default:
                fields["recipe"].pop(name)
        return fields

    @property
    def recipe_fingerprint(self) -> str:
        """8 hex digits of the result fields apart from the seed: runs of one case with the same value
        are repeats of one experiment (they differ in their seed at most), so they are pooled."""
        fields = self.result_fields()
        fields["recipe"].pop("seed")
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def repeats(self, seeds: int) -> tuple[BenchmarkSpec, ...]:
        """This spec with `seeds` seeds: the recipe's seed, then +1, +2, ..."""
        if seeds < 1:
            raise SpecError(f"seeds must be 1 or more, got {seeds}")
        return tuple(self.with_recipe(seed=self.recipe.seed + k) for k in range(seeds))

    def replace(self, **changes: Any) -> BenchmarkSpec:
        return dataclasses.replace(self, **changes)

    def with_recipe(self, **changes: Any) -> BenchmarkSpec:
        return dataclasses.replace(self, recipe=dataclasses.replace(self.recipe, **changes))

    def with_recipe_from(self, origin: str, **changes: Any) -> BenchmarkSpec:
        """`with_recipe`, remembering that `changes` came from `origin` (`--lr`, `smoke profile`, `recipe file r.yaml`):
        a later origin wins over an earlier one, and the record says which gave each value."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(Recipe)})
        if unknown:
            raise SpecError(
                f"{origin} sets {', '.join(unknown)}, which no recipe has; recipe fields are"
                f" {', '.join(f.name for f in dataclasses.fields(Recipe))}"
            )
        kept = tuple((name, was) for name, was in self.recipe_origin if name not in changes)
        return self.with_recipe(**changes).replace(recipe_origin=kept + tuple((name, origin) for name in changes))

    def origin_of(self, field: str) -> str:
        """Where the recipe's `field` came from: its origin, else the catalog recipe."""
        return dict(self.recipe_origin).get(field, "recipe")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BenchmarkSpec:
        recipe = dict(raw["recipe"])
        recipe["split"] = Split(**recipe["split"])
        recipe["train_augmentations"] = tuple(
            Augmentation(a["name"], tuple((k, _freeze(v)) for k, v in a["params"]))
            for a in recipe["train_augmentations"]
        )
        fields = dict(raw)
        fields["recipe"] = Recipe(**recipe)
        fields["thresholds"] = tuple(Threshold(**t) for t in raw.get("thresholds", ()))
        fields["recipe_origin"] = tuple(tuple(pair) for pair in raw.get("recipe_origin", ()))
        fields["metrics"] = tuple(CustomMetric(**m) for m in raw.get("metrics", ()))
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkSpec:
        return cls.from_dict(json.loads(text))


def value_text(value: Any) -> str:
    """A spec or recipe value as a line shows it: augmentations by name (`HorizontalFlip+Rotate`, or
    `none`), floats short (`0.0006`), anything else as it prints."""
    if isinstance(value, tuple):  # augmentations
        return "+".join(getattr(v, "name", str(v)) for v in value) or "none"
    if isinstance(value, Split):
        return f"{value.train:g}/{value.val:g}/{value.test:g}" + (" images" if value.by == "count" else "")
    return f"{value:g}" if isinstance(value, float) else str(value)


def _freeze(value: Any) -> Any:
    """JSON turns tuples into lists; specs must stay hashable, so turn them back."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def aug(name: str, **params: Any) -> Augmentation:
    """Shorthand for catalog entries: `aug("HorizontalFlip", p=0.5)`."""
    return Augmentation(name, tuple(sorted((k, _freeze(v)) for k, v in params.items())))
