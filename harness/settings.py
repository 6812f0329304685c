"""Where things live and how a run is tracked: everything about a run that is not its spec.

Each setting has a command-line option and an environment-variable twin (TRAINBENCH_*). Both are
validated by pydantic: the twins by `Environment` (pydantic-settings reads them), the settings a
run gets by `RunSettings`, so that pytest, the CLI and child processes agree, and a bad value is one
line that names the variable or field, the value and what it must be.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from harness.errors import SettingsError, one_line

REPO_ROOT = Path(__file__).resolve().parent.parent
# trainbench's folder on a child process's PYTHONPATH where it runs from a source checkout (an editable install, a
# bisect worktree of its own history); an installed wheel's child finds it by itself, and its site-packages put
# first would shadow the standard library and a bisect layer's packages
SOURCE_PATH: tuple[str, ...] = (str(REPO_ROOT),) if (REPO_ROOT / "pyproject.toml").is_file() else ()
ENV_PREFIX = "TRAINBENCH_"
WandbMode = Literal["auto", "online", "offline", "off"]
WANDB_MODES: tuple[str, ...] = get_args(WandbMode)
MLFLOW_SETTING = (  # auto, off, or a tracking URI (harness.results.mlflow_runs)
    r"^(auto|off|databricks(-uc)?|[a-z][a-z0-9+.-]*:(//)?.+)$"
)
Profile = Literal["smoke", "full"]
PROFILES: tuple[str, ...] = get_args(Profile)
# One default for `trainbench` and pytest: the smoke profile runs anywhere, offline, in
# minutes; the published recipe on real data is always asked for (`--profile full`).
DEFAULT_PROFILE = "smoke"
# The prefix of every option of trainbench's pytest plugin (`--trainbench-profile`, harness.pytest_plugin), so none
# clashes with another plugin's; `trainbench run` spells the same options without it.
PYTEST_PREFIX = "--trainbench-"
EXPERIMENT_SUFFIX = ".trainbench.yaml"  # the files pytest collects as experiment files (harness.experiment)


class Environment(BaseSettings):
    """The TRAINBENCH_* twins as set now (an empty one counts as unset); each description says what it must hold."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    profile: Profile | None = Field(default=None, description=" or ".join(PROFILES))
    data_root: str | None = Field(default=None, description="a folder")
    weights_dir: str | None = Field(default=None, description="a folder")
    results_dir: str | None = Field(default=None, description="a folder")
    cache_dir: str | None = Field(default=None, description="a folder")
    checkpoint_dirs: str | None = Field(default=None, description=f"folders separated by {os.pathsep}")
    epochs: PositiveInt | None = Field(default=None, description="a whole number of epochs, e.g. 4")
    seeds: PositiveInt | None = Field(default=None, description="a whole number of seeds per case, e.g. 3")
    gcs_bucket: Annotated[str, Field(pattern=r"^gs://.+")] | None = Field(
        default=None, description="gs://BUCKET[/PREFIX]"
    )
    gcs_retry_s: PositiveFloat | None = Field(default=None, description="a number of seconds, e.g. 120")
    rendezvous_timeout_s: PositiveFloat | None = Field(default=None, description="a number of seconds, e.g. 600")
    wandb: WandbMode | None = Field(default=None, description=", ".join(WANDB_MODES[:-1]) + " or " + WANDB_MODES[-1])
    wandb_project: str | None = Field(default=None, description="a wandb project name")
    mlflow: Annotated[str, Field(pattern=MLFLOW_SETTING)] | None = Field(
        default=None, description="auto, off or a tracking URI such as http://127.0.0.1:5000"
    )
    max_image_pixels: PositiveInt | None = Field(default=None, description="a whole number of pixels, e.g. 200000000")
    term_wait_s: PositiveFloat | None = Field(
        default=None,
        description="a number of seconds to wait for uploads after a SIGTERM, e.g. 20 (below the grace period)",
    )
    workers: NonNegativeInt | None = Field(
        default=None,
        description=(
            "a whole number of loader worker processes per training process, e.g. 8 (0: load in the training process)"
        ),
    )

    @field_validator("epochs", "seeds", "max_image_pixels", "workers", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        """Whole numbers as digits only: `4`, not `4.0`, `+4` or `1_000`."""
        if isinstance(value, str) and not value.isdigit():
            raise ValueError("not digits")
        return value

    @staticmethod
    def variable(name: str) -> str:
        return ENV_PREFIX + name.upper()


def environment() -> Environment:
    """The twins, validated; the first that holds an unusable value is a SettingsError that names it."""
    try:
        return Environment()
    except ValidationError as error:
        raise SettingsError(
            one_line(
                error,
                lambda field, value, words: (
                    f"{Environment.variable(field)}={value!r} is not valid: expected {words}; fix or unset the variable"
                ),
                Environment.model_fields,
            )
        ) from None


def default_cache_dir() -> Path:
    """TRAINBENCH_CACHE_DIR, else ~/.cache/trainbench (read alone:
    another twin's bad value is not this one's concern)."""
    folder = os.environ.get(Environment.variable("cache_dir")) or Path.home() / ".cache" / "trainbench"
    return Path(folder).expanduser().absolute()


def _settings_error(field: str, value: Any, words: str | None) -> str:
    if words is None:
        return f"{field} is not a setting; settings are {', '.join(RunSettings.model_fields)}"
    return f"{field} must be {words}, got {value!r}"


class RunSettings(BaseModel):
    """Paths and tracking for a run. Serialisable, so a child process gets exactly the same."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_inf_nan="constants"
    )  # an infinite timeout reaches a child as Infinity

    results_dir: Path = Field(
        default_factory=lambda: Path("results").resolve(), description="a path string"
    )  # under the working directory, as the options' default: never the install location
    cache_dir: Path = Field(default_factory=default_cache_dir, description="a path string")
    project_dir: Path = Field(
        default_factory=Path.cwd, description="a path string"
    )  # the repository under test, whose commit the record names: pytest's rootdir, or the working directory
    data_root: Path | None = Field(None, description="a path string")
    weights_dir: Path | None = Field(None, description="a path string")
    checkpoint_dirs: tuple[Path, ...] = Field((), description="a list of path strings")
    gcs_bucket: str | None = Field(None, description="gs://BUCKET[/PREFIX]")
    wandb: WandbMode = Field("off", description="one of " + ", ".join(WANDB_MODES))
    wandb_project: str = Field("trainbench", description="a wandb project name")
    mlflow: Annotated[str, Field(pattern=MLFLOW_SETTING)] = Field(
        "off", description="auto, off or a tracking URI such as http://127.0.0.1:5000"
    )
    resume: bool = Field(False, description="true or false")
    gcs_retry_s: PositiveFloat = Field(120.0, description="a positive number of seconds")
    rendezvous_timeout_s: PositiveFloat = Field(600.0, description="a positive number of seconds")
    workers: NonNegativeInt | None = Field(
        None, description="0 or a positive whole number of loader processes"
    )  # None: from the machine (hardware.loader_workers)
    decode_cache: bool = Field(
        True, description="true or false"
    )  # read images through the decoded-image cache (data.decoded)
    compile: bool = Field(False, description="true or false")  # torch.compile the model (engines.base.compile_if_asked)
    fused_optimizer: bool = Field(
        False, description="true or false"
    )  # the optimizer's single-kernel implementation (engines.training.optimizer_for)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(one_line(error, _settings_error, type(self).model_fields)) from None

    @field_validator("results_dir", "cache_dir", "data_root", "weights_dir", "project_dir", "checkpoint_dirs")
    @classmethod
    def _absolute(cls, value: Any) -> Any:
        """Every folder as an absolute path, against the working directory where it is given: a run's child
        processes start elsewhere (`harness.launch`), and read the same folders."""
        if isinstance(value, tuple):
            return tuple(path.expanduser().absolute() for path in value)
        return value.expanduser().absolute() if isinstance(value, Path) else value

    @field_validator("wandb", mode="before")
    @classmethod
    def _wandb_mode(cls, mode: Any) -> Any:
        if mode not in WANDB_MODES:
            raise ValueError(f"wandb mode {mode!r} is not one of {', '.join(WANDB_MODES)}")
        return mode

    @property
    def resolved_weights_dir(self) -> Path:
        return self.weights_dir or self.cache_dir / "weights"

    def replace(self, **changes: Any) -> RunSettings:
        return RunSettings(**{**dict(self), **changes})

    def quiet(self, **changes: Any) -> RunSettings:
        """These settings for a helper training (a stand-in's pretraining, a throughput or profile
        run): no tracking, no checkpoints, no resume; `changes` over that."""
        return self.replace(wandb="off", mlflow="off", checkpoint_dirs=(), gcs_bucket=None, resume=False, **changes)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> RunSettings:
        """Settings as `to_json` wrote them; a value of the wrong kind is a SettingsError that names its field."""
        try:
            return cls.model_validate_json(text, strict=True)
        except ValidationError as error:
            raise SettingsError(one_line(error, _settings_error, cls.model_fields)) from None

    @classmethod
    def from_options(cls, get: Callable[[str], Any]) -> RunSettings:
        """Settings from parsed options (argparse or pytest: `get(dest)` reads one), see `options`."""
        return cls(
            results_dir=Path(get("results_dir")).resolve(),
            cache_dir=Path(get("cache_dir")),
            data_root=get("data_root") or None,
            weights_dir=get("weights_dir") or None,
            checkpoint_dirs=tuple(get("checkpoint_dirs") or ()),
            gcs_bucket=get("gcs_bucket") or None,
            wandb=get("wandb"),
            wandb_project=get("wandb_project"),
            mlflow=get("mlflow"),
            resume=bool(get("resume")),
            gcs_retry_s=float(get("gcs_retry_s")),
            rendezvous_timeout_s=float(get("rendezvous_timeout_s")),
            workers=None if get("workers") in (None, "") else int(get("workers")),
            decode_cache=bool(get("decode_cache")),
            compile=bool(get("compile")),
            fused_optimizer=bool(get("fused_optimizer")),
        )


def positive_int(text: str) -> int:
    """An option's value that must be a whole number of 1 or more (argparse's and pytest's `type=`)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def options(twins: Environment) -> list[tuple[str, dict[str, Any]]]:
    """The settings options, shared by `trainbench run` (argparse) and pytest (whose addoption
    takes argparse's keywords), so both spell and document them the same way; each default is its
    twin's value when set."""
    var = Environment.variable
    dirs = twins.checkpoint_dirs.split(os.pathsep) if twins.checkpoint_dirs else None
    return [
        (
            "--results-dir",
            dict(
                dest="results_dir",
                default=twins.results_dir or "results",
                help=f"where records and tables go [{var('results_dir')}; default results]",
            ),
        ),
        (
            "--data-root",
            dict(
                dest="data_root",
                default=twins.data_root,
                help=(
                    f"folder holding real datasets, e.g. kvasir-dataset-v2/ [{var('data_root')}; default: none, the"
                    " smoke profile's generated data needs none]"
                ),
            ),
        ),
        (
            "--weights-dir",
            dict(
                dest="weights_dir",
                default=twins.weights_dir,
                help=(
                    f"pretrained files <model>.safetensors|.pth|.bin [{var('weights_dir')}; default: CACHE_DIR/weights]"
                ),
            ),
        ),
        (
            "--cache-dir",
            dict(
                dest="cache_dir",
                default=str(default_cache_dir()),
                help=f"generated datasets and weights [{var('cache_dir')}; default ~/.cache/trainbench]",
            ),
        ),
        (
            "--checkpoint-dir",
            dict(
                dest="checkpoint_dirs",
                action="append",
                default=[d for d in dirs if d] if dirs else None,
                help=(
                    f"save every epoch's checkpoint here; repeat for several folders [{var('checkpoint_dirs')},"
                    f" {os.pathsep}-separated; default: none, no checkpoints]"
                ),
            ),
        ),
        (
            "--gcs-bucket",
            dict(
                dest="gcs_bucket",
                default=twins.gcs_bucket,
                help=f"also upload checkpoints to gs://BUCKET/PREFIX [{var('gcs_bucket')}; default: none]",
            ),
        ),
        (
            "--gcs-retry-s",
            dict(
                dest="gcs_retry_s",
                type=float,
                default=twins.gcs_retry_s or 120.0,
                help=f"give up an upload after retrying this long [{var('gcs_retry_s')}; default 120]",
            ),
        ),
        (
            "--rendezvous-timeout-s",
            dict(
                dest="rendezvous_timeout_s",
                type=float,
                default=twins.rendezvous_timeout_s or 600.0,
                help=(
                    "how long DDP processes wait for each other (the nodes' rendezvous, every collective) before"
                    f" failing with a message [{var('rendezvous_timeout_s')}; default 600]"
                ),
            ),
        ),
        (
            "--wandb",
            dict(
                dest="wandb",
                choices=WANDB_MODES,
                default=twins.wandb or "auto",
                help=(
                    "wandb tracking; auto: online with WANDB_API_KEY, else offline, off without wandb installed"
                    f" [{var('wandb')}; default auto]"
                ),
            ),
        ),
        (
            "--mlflow",
            dict(
                dest="mlflow",
                default=twins.mlflow or "auto",
                metavar="auto|off|URI",
                help=(
                    "MLflow tracking; auto: a SQLite store in the results folder (RESULTS_DIR/mlflow.db; `mlflow ui"
                    " --backend-store-uri sqlite:///RESULTS_DIR/mlflow.db` shows it), off without mlflow installed;"
                    f" URI: that tracking server or store [{var('mlflow')}; default auto]"
                ),
            ),
        ),
        (
            "--wandb-project",
            dict(
                dest="wandb_project",
                default=twins.wandb_project or "trainbench",
                help=f"wandb project [{var('wandb_project')}; default trainbench]",
            ),
        ),
        (
            "--workers",
            dict(
                dest="workers",
                type=int,
                default=twins.workers,
                help=(
                    f"DataLoader worker processes per training process [{var('workers')}; default: with GPUs the CPU"
                    " cores available to each process, at most 16; training on CPUs none; the recipe's published value"
                    " is kept in the record]"
                ),
            ),
        ),
        (
            "--no-decode-cache",
            dict(
                dest="decode_cache",
                action="store_false",
                help=(
                    "decode every image from its file each time it is loaded (at the size the cache stores: the same"
                    " tensors, more CPU), instead of once into the decoded-image cache under --cache-dir"
                ),
            ),
        ),
        (
            "--compile",
            dict(
                dest="compile",
                action="store_true",
                help=(
                    "torch.compile the model before training: slower first steps, then faster ones on a GPU; the record"
                    " says so"
                ),
            ),
        ),
        (
            "--fused-optimizer",
            dict(
                dest="fused_optimizer",
                action="store_true",
                help=(
                    "the optimizer's fused (single-kernel) implementation, the same update in fewer kernel launches;"
                    " the record says so"
                ),
            ),
        ),
        (
            "--resume",
            dict(
                dest="resume",
                action="store_true",
                help="continue an interrupted run from its latest checkpoint (local folders first, else the bucket)",
            ),
        ),
    ]
