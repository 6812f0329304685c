"""Every run is a wandb run: project, group = benchmark, name = run id, config = spec, tags.

Fed from the engine-neutral history rows, so a Poutyne run and a Lightning run of the same spec
produce the same keys (the engines' own wandb loggers name metrics differently). Mode `auto` is
`online` when WANDB_API_KEY is set, else `offline` (runs land in `<results>/wandb/offline-run-*`,
upload them later with `wandb sync`), and `off` when wandb is not installed. wandb failing never fails the run: it is printed and the
run goes on untracked.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from harness.settings import WandbMode
from harness.spec import BenchmarkSpec


def installed() -> bool:
    """wandb is an optional dependency (`pip install 'trainbench[wandb]'`), imported only when a run is tracked."""
    return importlib.util.find_spec("wandb") is not None


def resolve_mode(mode: WandbMode) -> str:
    """`auto`: online with WANDB_API_KEY, else offline; off when wandb is not installed (the mode
    itself was validated with the settings, `settings.WandbMode`)."""
    if mode == "auto":
        if not installed():
            return "off"
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


def summary_of(history: list[dict[str, float]], test: dict[str, float]) -> dict[str, float]:
    """Best validation loss and accuracy over epochs, and the final test metrics."""
    summary: dict[str, float] = dict(test)
    losses = [row["val_loss"] for row in history if "val_loss" in row]
    accuracies = [row["val_acc"] for row in history if "val_acc" in row]
    if losses:
        summary["best_val_loss"] = min(losses)
    if accuracies:
        summary["best_val_acc"] = max(accuracies)
    return summary


class WandbTracker:
    """A wandb run opened on the first epoch (rank 0 only), closed by `finish`."""

    def __init__(self, mode: str, project: str, spec: BenchmarkSpec, run_id: str, directory: Path) -> None:
        self.mode = resolve_mode(mode)
        self.project, self.spec, self.run_id, self.directory = project, spec, run_id, directory
        self.run = None
        self.error: str | None = None

    def _open(self) -> None:
        if self.run is not None or self.mode == "off" or self.error:
            return
        try:
            import wandb

            self.directory.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=self.project,
                group=self.spec.benchmark,
                name=self.run_id,
                config=self.spec.to_dict(),
                tags=[self.spec.engine, self.spec.precision, f"{self.spec.devices}dev", self.spec.weights],
                mode=self.mode,
                dir=str(self.directory),
                reinit="create_new",
                settings=wandb.Settings(silent=True),  # its banners said nothing the run's start-up line does not (engines.progress.data_line)
            )
        except Exception as error:  # tracking must never fail training
            self.error = f"{type(error).__name__}: {error}"[:500]
            print(f"[trainbench] wandb unavailable, run continues untracked: {self.error}", flush=True)

    def log_epoch(self, row: dict[str, float]) -> None:
        self._open()
        if self.run is None:
            return
        try:
            self.run.log({k: v for k, v in row.items() if k != "epoch"} | {"epoch": row["epoch"]}, step=int(row["epoch"]))
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"[:500]
            print(f"[trainbench] wandb log failed: {self.error}", flush=True)

    def finish(self, history: list[dict[str, float]], test: dict[str, float]) -> dict[str, Any]:
        """Write the summary, close the run; returns what the record should say about tracking."""
        if self.run is None:
            return {"mode": self.mode, "error": self.error} if self.error else {"mode": self.mode}
        info: dict[str, Any] = {"mode": self.mode, "id": self.run.id, "dir": str(Path(self.run.dir).parent)}
        try:
            self.run.summary.update(summary_of(history, test))
            self.run.finish()
        except Exception as error:
            info["error"] = f"{type(error).__name__}: {error}"[:500]
        return info
