"""The one small interface every training engine implements, and what engines share.

An engine takes a `TrainingJob` (spec, model, data, where to write) and returns an `EngineOutput`
(per-epoch history, test metrics, training throughput). It knows nothing of tables or pytest.
History rows use the same keys for every engine: epoch, lr, epoch_time, train_time, images_per_s,
train_<m>, val_<m>.

Divergence: every engine passes each epoch's row to `divergence`; a non-finite training or
validation loss ends the run after that epoch (no checkpoint of it, no test pass), and the output
says which phase and where. A non-finite test loss makes the output diverged too (`EngineOutput`
finds it), whatever the engine. A finite loss, however large, is not a divergence (docs/fail-fast.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from harness.artifacts import RunArtifacts
from harness.data.loading import DataBundle
from harness.efficiency.energy import EnergyCounter
from harness.hardware import Hardware
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec


@dataclass
class TrainingJob:
    spec: BenchmarkSpec
    model: nn.Module
    data: DataBundle
    run_id: str
    run_dir: Path
    settings: RunSettings
    hardware: Hardware
    artifacts: RunArtifacts
    workers: int  # DataLoader workers per process: the machine's, not the recipe's (data.workers_for)
    # before each progress line: "" for the run itself, a name for a helper training (the stand-in's pretraining)
    label: str = ""
    # the training devices' joules (efficiency.energy); None where there is no counter
    energy: EnergyCounter | None = None
    energy_note: str | None = None  # why there is no counter
    step_hook: Callable[[], None] | None = None  # called after every training batch (a profiler's step)


PHASE_NAMES = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class Divergence:
    """The phase and epoch whose mean loss was not a finite number, at which learning rate (a test
    loss counts at the last epoch trained)."""

    epoch: int
    lr: float
    loss: float
    phase: str = "train"  # train, val or test

    def message(self) -> str:
        when = f"after epoch {self.epoch}" if self.phase == "test" else f"at epoch {self.epoch}"
        return f"the {PHASE_NAMES[self.phase]} loss became {self.loss} {when} (lr {self.lr:g}): the run diverged"

    def as_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "epoch": self.epoch,
            "lr": self.lr,
            "loss": str(self.loss),
            "message": self.message(),
        }


def _non_finite(phase: str, loss: float | None, row: dict[str, float]) -> Divergence | None:
    if loss is None or math.isfinite(loss):
        return None
    return Divergence(int(row["epoch"]), float(row["lr"]), float(loss), phase)


def divergence(row: dict[str, float]) -> Divergence | None:
    """The divergence an epoch's history row shows (its mean training, else validation, loss is nan
    or infinite), or None."""
    return _non_finite("train", row.get("train_loss"), row) or _non_finite("val", row.get("val_loss"), row)


@dataclass
class EngineOutput:
    """What an engine returns. A non-finite test loss makes it diverged (at the last epoch trained),
    whichever engine tested: every phase's loss is checked, in one place per phase."""

    history: list[dict[str, float]]
    test: dict[str, float]  # empty when training or validation diverged: such a model is not tested
    is_main_process: bool = True
    diverged: Divergence | None = None

    def __post_init__(self) -> None:
        if self.diverged is None and self.history:
            self.diverged = _non_finite("test", self.test.get("test_loss"), self.history[-1])


class Engine(Protocol):
    name: str

    def fit(self, job: TrainingJob) -> EngineOutput: ...


class ThroughputMeter:
    """Training images/s, counting only the training batches of each epoch (not validation).

    Time runs from the start of an epoch (or the end of the previous training batch) to the end of
    each training batch, so loading, forward, backward and optimizer step are all inside, and the
    validation pass that follows the last batch is not. Every engine and the plain reference loop
    use this same meter, which is what makes their ratio meaningful. The engines put each epoch's
    figures in its history row, so a resumed run's speed still covers every epoch it trained.

    `batch_start` (as a batch leaves the loader, before its copy to the device) splits off the
    data wait: the device is synchronised at each batch end, so the time until the next batch
    arrives is time the device sat idle, waiting for the loader and for the engine's own
    between-batch work (its hooks, logging, progress).

    With an `energy` counter, each epoch's figures also hold the joules the devices drew from the
    epoch's start to its figures (validation included), per training image, and the mean watts.
    `step_hook` runs after every training batch (a profiler's schedule advances there).
    """

    def __init__(self, energy: EnergyCounter | None = None, step_hook: Callable[[], None] | None = None) -> None:
        self.images = self.epoch_images = 0
        self.seconds = self.epoch_seconds = self.epoch_wait = 0.0
        self._last: float | None = None
        self.energy, self.step_hook = energy, step_hook
        self._epoch_began = self._epoch_joules = 0.0

    @classmethod
    def for_job(cls, job: TrainingJob) -> ThroughputMeter:
        return cls(job.energy, job.step_hook)

    def epoch_start(self) -> None:
        self._sync()
        self._last = self._epoch_began = time.perf_counter()
        self.epoch_images, self.epoch_seconds, self.epoch_wait = 0, 0.0, 0.0
        if self.energy is not None:
            self._epoch_joules = self.energy()

    def batch_start(self) -> None:
        if self._last is not None:
            self.epoch_wait += time.perf_counter() - self._last

    def batch_end(self, batch_size: int) -> None:
        self._sync()
        now = time.perf_counter()
        if self._last is not None:
            self.seconds += now - self._last
            self.epoch_seconds += now - self._last
            self.images += batch_size
            self.epoch_images += batch_size
        self._last = now
        if self.step_hook is not None:
            self.step_hook()

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def epoch_figures(self) -> dict[str, float]:
        """This epoch's training speed (and energy, with a counter), in the history row's keys."""
        figures = {
            "train_time": self.epoch_seconds,
            "images_per_s": self.epoch_images / self.epoch_seconds if self.epoch_seconds else 0.0,
            "data_wait_time": self.epoch_wait,
        }
        if self.energy is not None:
            self._sync()
            joules, seconds = self.energy() - self._epoch_joules, time.perf_counter() - self._epoch_began
            figures.update(
                energy_j=joules,
                j_per_image=joules / self.epoch_images if self.epoch_images else 0.0,
                watts=joules / seconds if seconds else 0.0,
            )
        return figures

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()


def compile_if_asked(model: nn.Module, settings: RunSettings) -> None:
    """--compile: torch.compile `model` in place (`nn.Module.compile`), so its state_dict, the
    checkpoints and the saved weights keep the plain model's keys."""
    if settings.compile:
        model.compile()


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision setting (None: full fp32)."""
    return {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)


def device_list(spec: BenchmarkSpec, hw: Hardware) -> list[str]:
    """Devices for a one-process engine: the first N GPUs, or the CPU."""
    if hw.gpus:
        return [f"cuda:{i}" for i in range(spec.devices)]
    return ["cpu"]
