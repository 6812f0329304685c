"""Where things live and how a run is tracked: everything about a run that is not its spec.

Each setting has a command-line option and an environment-variable twin (TRAINBENCH_*), read here
in one place so that pytest, the CLI and child processes agree.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

ENV_VARS = {
    "profile": "TRAINBENCH_PROFILE",
    "data_root": "TRAINBENCH_DATA_ROOT",
    "weights_dir": "TRAINBENCH_WEIGHTS_DIR",
    "results_dir": "TRAINBENCH_RESULTS_DIR",
    "epochs": "TRAINBENCH_EPOCHS",
    "cache_dir": "TRAINBENCH_CACHE_DIR",
    "checkpoint_dirs": "TRAINBENCH_CHECKPOINT_DIRS",
    "gcs_bucket": "TRAINBENCH_GCS_BUCKET",
    "wandb": "TRAINBENCH_WANDB",
    "wandb_project": "TRAINBENCH_WANDB_PROJECT",
}


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
    def from_json(cls, text: str) -> RunSettings:
        raw = json.loads(text)
        paths = ("results_dir", "cache_dir", "data_root", "weights_dir")
        for key in paths:
            raw[key] = Path(raw[key]) if raw.get(key) else None
        raw["checkpoint_dirs"] = tuple(Path(p) for p in raw.get("checkpoint_dirs", ()))
        return cls(**raw)
