"""Where things live and how a run is tracked: everything about a run that is not its spec.

Each setting has a command-line option and an environment-variable twin (TRAINBENCH_*), read here
in one place so that pytest, the CLI and child processes agree.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parent.parent

ENV_VARS = {
    "profile": "TRAINBENCH_PROFILE",
    "data_root": "TRAINBENCH_DATA_ROOT",
    "weights_dir": "TRAINBENCH_WEIGHTS_DIR",
    "results_dir": "TRAINBENCH_RESULTS_DIR",
    "epochs": "TRAINBENCH_EPOCHS",
    "seeds": "TRAINBENCH_SEEDS",
    "cache_dir": "TRAINBENCH_CACHE_DIR",
    "checkpoint_dirs": "TRAINBENCH_CHECKPOINT_DIRS",
    "gcs_bucket": "TRAINBENCH_GCS_BUCKET",
    "wandb": "TRAINBENCH_WANDB",
    "wandb_project": "TRAINBENCH_WANDB_PROJECT",
    "gcs_retry_s": "TRAINBENCH_GCS_RETRY_S",
    "rendezvous_timeout_s": "TRAINBENCH_RENDEZVOUS_TIMEOUT_S",
    "max_image_pixels": "TRAINBENCH_MAX_IMAGE_PIXELS",
    "workers": "TRAINBENCH_WORKERS",
}



def _positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


# What each environment twin must hold, and how to say it.
ENV_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "profile": (lambda v: v in ("smoke", "full"), "smoke or full"),
    "wandb": (lambda v: v in ("auto", "online", "offline", "off"), "auto, online, offline or off"),
    "epochs": (lambda v: v.isdigit() and int(v) > 0, "a whole number of epochs, e.g. 4"),
    "seeds": (lambda v: v.isdigit() and int(v) > 0, "a whole number of seeds per case, e.g. 3"),
    "gcs_retry_s": (_positive_number, "a number of seconds, e.g. 120"),
    "rendezvous_timeout_s": (_positive_number, "a number of seconds, e.g. 600"),
    "gcs_bucket": (lambda v: v.startswith("gs://") and len(v) > len("gs://"), "gs://BUCKET[/PREFIX]"),
    "max_image_pixels": (lambda v: v.isdigit() and int(v) > 0, "a whole number of pixels, e.g. 200000000"),
    "workers": (str.isdigit, "a whole number of loader worker processes per training process, e.g. 8 (0: load in the training process)"),
}


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Every set TRAINBENCH_* twin holds a usable value; the first that does not is a SettingsError."""
    for name, (valid, expected) in ENV_CHECKS.items():
        value = environ.get(ENV_VARS[name], "")
        if value and not valid(value):
            raise SettingsError(f"{ENV_VARS[name]}={value!r} is not valid: expected {expected}; fix or unset the variable")


def env(name: str, default: str | None = None) -> str | None:
    """The environment twin of setting `name`, or `default`."""
    value = os.environ.get(ENV_VARS[name], "")
    return value if value else default


def default_cache_dir() -> Path:
    return Path(env("cache_dir") or Path.home() / ".cache" / "trainbench")


@dataclass(frozen=True)
class RunSettings:
    """Paths and tracking for a run. Serialisable, so a child process gets exactly the same."""

    results_dir: Path = REPO_ROOT / "results"
    cache_dir: Path = field(default_factory=default_cache_dir)
    data_root: Path | None = None
    weights_dir: Path | None = None
    checkpoint_dirs: tuple[Path, ...] = ()
    gcs_bucket: str | None = None
    wandb: str = "off"
    wandb_project: str = "trainbench"
    resume: bool = False
    gcs_retry_s: float = 120.0
    rendezvous_timeout_s: float = 600.0
    workers: int | None = None  # loader worker processes per training process; None: from the machine (hardware.loader_workers)
    decode_cache: bool = True  # read images through the decoded-image cache (data.decoded)
    compile: bool = False  # torch.compile the model (engines.base.compile_if_asked)
    fused_optimizer: bool = False  # the optimizer's single-kernel implementation (engines.base.optimizer_for)

    def __post_init__(self) -> None:
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise SettingsError(f"workers must be 0 or a positive whole number of loader processes, got {self.workers!r}")
        if self.wandb not in ("auto", "online", "offline", "off"):
            raise SettingsError(f"wandb mode {self.wandb!r} is not one of auto, online, offline, off")
        if not self.gcs_retry_s > 0:
            raise SettingsError(f"gcs_retry_s must be a positive number of seconds, got {self.gcs_retry_s}")
        if not self.rendezvous_timeout_s > 0:
            raise SettingsError(f"rendezvous_timeout_s must be a positive number of seconds, got {self.rendezvous_timeout_s}")

    @property
    def resolved_weights_dir(self) -> Path:
        return self.weights_dir or self.cache_dir / "weights"

    def replace(self, **changes: Any) -> RunSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        raw = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}
        raw["checkpoint_dirs"] = [str(p) for p in self.checkpoint_dirs]
        return json.dumps(raw)

    @classmethod
    def from_options(cls, get: Callable[[str], Any]) -> RunSettings:
        """Settings from parsed options (argparse or pytest: `get(dest)` reads one), see OPTIONS."""
        return cls(
            results_dir=Path(get("results_dir")).resolve(),
            cache_dir=Path(get("cache_dir")),
            data_root=Path(get("data_root")) if get("data_root") else None,
            weights_dir=Path(get("weights_dir")) if get("weights_dir") else None,
            checkpoint_dirs=tuple(Path(d) for d in (get("checkpoint_dirs") or ())),
            gcs_bucket=get("gcs_bucket") or None,
            wandb=get("wandb"),
            wandb_project=get("wandb_project"),
            resume=bool(get("resume")),
            gcs_retry_s=float(get("gcs_retry_s")),
            rendezvous_timeout_s=float(get("rendezvous_timeout_s")),
            workers=None if get("workers") in (None, "") else int(get("workers")),
            decode_cache=bool(get("decode_cache")),
            compile=bool(get("compile")),
            fused_optimizer=bool(get("fused_optimizer")),
        )

    @classmethod
    def from_json(cls, text: str) -> RunSettings:
        raw = json.loads(text)
        paths = ("results_dir", "cache_dir", "data_root", "weights_dir")
        for key in paths:
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise SettingsError(f"{key} must be a path string, got {raw[key]!r}")
            raw[key] = Path(raw[key]) if raw.get(key) else None
        folders = raw.get("checkpoint_dirs", [])
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):  # a bare string would become one folder per character
            raise SettingsError(f"checkpoint_dirs must be a list of path strings, got {folders!r}")
        raw["checkpoint_dirs"] = tuple(Path(p) for p in folders)
        for seconds in ("gcs_retry_s", "rendezvous_timeout_s"):
            if not isinstance(raw.get(seconds, 1.0), (int, float)):
                raise SettingsError(f"{seconds} must be a number of seconds, got {raw[seconds]!r}")
        return cls(**raw)


def _split_dirs(value: str | None) -> list[str] | None:
    return [d for d in value.split(os.pathsep) if d] if value else None


# The settings options, shared by `python -m harness run` (argparse) and pytest (whose addoption
# takes argparse's keywords), so both spell and document them the same way.
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--results-dir", dict(dest="results_dir", default=env("results_dir", "results"), help=f"where records and tables go [{ENV_VARS['results_dir']}; default results]")),
    ("--data-root", dict(dest="data_root", default=env("data_root"), help=f"folder holding real datasets, e.g. kvasir-dataset-v2/ [{ENV_VARS['data_root']}; default: none, the smoke profile's generated data needs none]")),
    ("--weights-dir", dict(dest="weights_dir", default=env("weights_dir"), help=f"pretrained files <model>.safetensors|.pth|.bin [{ENV_VARS['weights_dir']}; default: CACHE_DIR/weights]")),
    ("--cache-dir", dict(dest="cache_dir", default=str(default_cache_dir()), help=f"generated datasets and weights [{ENV_VARS['cache_dir']}; default ~/.cache/trainbench]")),
    ("--checkpoint-dir", dict(dest="checkpoint_dirs", action="append", default=_split_dirs(env("checkpoint_dirs")), help=f"save every epoch's checkpoint here; repeat for several folders [{ENV_VARS['checkpoint_dirs']}, {os.pathsep}-separated; default: none, no checkpoints]")),
    ("--gcs-bucket", dict(dest="gcs_bucket", default=env("gcs_bucket"), help=f"also upload checkpoints to gs://BUCKET/PREFIX [{ENV_VARS['gcs_bucket']}; default: none]")),
    ("--gcs-retry-s", dict(dest="gcs_retry_s", type=float, default=env("gcs_retry_s", "120"), help=f"give up an upload after retrying this long [{ENV_VARS['gcs_retry_s']}; default 120]")),
    ("--rendezvous-timeout-s", dict(dest="rendezvous_timeout_s", type=float, default=env("rendezvous_timeout_s", "600"), help=f"how long DDP processes wait for each other (the nodes' rendezvous, every collective) before failing with a message [{ENV_VARS['rendezvous_timeout_s']}; default 600]")),
    ("--wandb", dict(dest="wandb", choices=("auto", "online", "offline", "off"), default=env("wandb", "auto"), help=f"wandb tracking; auto: online with WANDB_API_KEY, else offline, off without wandb installed [{ENV_VARS['wandb']}; default auto]")),
    ("--wandb-project", dict(dest="wandb_project", default=env("wandb_project", "trainbench"), help=f"wandb project [{ENV_VARS['wandb_project']}; default trainbench]")),
    ("--workers", dict(dest="workers", type=int, default=env("workers"), help=f"DataLoader worker processes per training process [{ENV_VARS['workers']}; default: with GPUs the CPU cores available to each process, at most 16; training on CPUs none; the recipe's published value is kept in the record]")),
    ("--no-decode-cache", dict(dest="decode_cache", action="store_false", help="decode every image from its file each time it is loaded (at the size the cache stores: the same tensors, more CPU), instead of once into the decoded-image cache under --cache-dir")),
    ("--compile", dict(dest="compile", action="store_true", help="torch.compile the model before training: slower first steps, then faster ones on a GPU; the record says so")),
    ("--fused-optimizer", dict(dest="fused_optimizer", action="store_true", help="the optimizer's fused (single-kernel) implementation, the same update in fewer kernel launches; the record says so")),
    ("--resume", dict(dest="resume", action="store_true", help="continue an interrupted run from its latest checkpoint (local folders first, else the bucket)")),
]
