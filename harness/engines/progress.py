"""What a run shows while it trains, the same in every engine.

On a terminal, each phase (train, val, test) gets a per-batch bar with images/s and ETA: a GPU
epoch of real data can take minutes, and a user must see it move. A finished epoch's bars give way
to one line of its figures, as Lightning's bar leaves its last state behind. Elsewhere (pytest's
capture, CI, nightly logs) bars would be noise: only the epoch lines are printed. Only rank 0 of a
multi-process run shows anything.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping
from typing import TextIO

from tqdm import tqdm

from harness import models
from harness.data.loading import DataBundle
from harness.engines.base import TrainingJob
from harness.extensions import is_import_path
from harness.hardware import Hardware
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, value_text

EPOCH_FIGURES = ("train_loss", "train_acc", "val_loss", "val_acc")


def epoch_line(row: Mapping[str, float], epochs: int, label: str = "") -> str:
    shown = " ".join(f"{k}={row[k]:.4f}" for k in EPOCH_FIGURES if k in row)
    return (
        f"{label}epoch {int(row['epoch'])}/{epochs} {shown} ({row['epoch_time']:.1f}s,"
        f" {row.get('images_per_s', 0.0):.1f} img/s)"
    )


class Progress:
    """Bars on a terminal (`stream` a TTY), epoch lines elsewhere; silent when `shown` is False.

    `label` tells a run's own epochs from a helper training's (the smoke stand-in's pretraining).
    """

    def __init__(self, epochs: int, *, shown: bool = True, label: str = "", stream: TextIO | None = None) -> None:
        self.epochs, self.shown, self.label = epochs, shown, label
        self.stream = stream or sys.stderr
        self.bars = shown and self.stream.isatty()
        self._train: tqdm | None = None
        self._phase: tqdm | None = None

    def begin(self, phase: str, images: int, epoch: int | None = None) -> None:
        """A phase of `images` images starts (`epoch` for train and val; None for test)."""
        if not self.bars:
            return
        where = f"epoch {epoch}/{self.epochs} " if epoch is not None else ""
        bar = tqdm(
            total=images,
            desc=f"{self.label}{where}{phase}",
            unit="img",
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
        )
        if phase == "train":
            self._train = bar
        else:
            self._phase = bar

    def advance(self, images: int) -> None:
        bar = self._phase or self._train
        if bar is not None:
            bar.update(images)

    def end_phase(self) -> None:
        """Val or test is over: its bar goes (the train bar stays until the epoch ends)."""
        if self._phase is not None:
            self._phase.close()
            self._phase = None

    def epoch_done(self, row: Mapping[str, float]) -> None:
        """The epoch's bars go; one line of its figures stays."""
        if not self.shown:
            return
        self.end_phase()
        if self._train is not None:
            self._train.close()
            self._train = None
        print(epoch_line(row, self.epochs, self.label), flush=True)


def quiet_notices() -> None:
    """Silence third-party notices that tell a user nothing about their run: Lightning's device and
    tip banners (the harness's start-up line names the device), its advice to add loader workers
    (the harness chose their number: none when training on CPUs) and a deprecation inside Lightning."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r".*does not have many workers")


def device_words(spec: BenchmarkSpec, hw: Hardware) -> str:
    """Where a case trains, as a user would say it: `1 x NVIDIA H100 80GB HBM3`, `CPU (2 cores)`."""
    nodes = f" on each of {spec.num_nodes} nodes" if spec.num_nodes > 1 else ""
    if hw.gpus:
        return f"{spec.devices} x {hw.gpu_name}{nodes}"
    processes = f", {spec.devices} processes" if spec.devices > 1 else ""
    return f"CPU ({hw.cpu_cores} cores{processes}){nodes}"


def startup_line(spec: BenchmarkSpec, settings: RunSettings, hw: Hardware) -> str:
    """The line a run prints at once, before any data or weights are touched: the recipe it took, and each value
    given over it with where it came from."""
    recipe = spec.recipe
    by_origin: dict[str, list[str]] = {}  # each origin once, its values in the order given
    for name, origin in spec.recipe_origin:
        if not origin.endswith(" profile"):
            by_origin.setdefault(origin, []).append(f"{name} {value_text(getattr(recipe, name))}")
    given = [f"{', '.join(values)} ({origin})" for origin, values in by_origin.items()]
    recipe_words = f"the {spec.recipe_name} recipe" if spec.recipe_name else "its own recipe"
    return (
        f"[trainbench] {spec.id}: {recipe_words} ({spec.profile} profile), {spec.engine} on {device_words(spec, hw)},"
        f" {spec.precision},"
        f" {recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''} of batch {recipe.batch_size} at {recipe.image_size}"
        f" px{'; given: ' + ', '.join(given) if given else ''}; results in {settings.results_dir}"
    )


def _unused(images: int) -> str:
    return f" ({images} in no part: the split asks for fewer)" if images else ""


def _split_by(bundle: DataBundle) -> str:
    if not bundle.split_folders:
        return ""
    return f" (split by its folders {'/, '.join(bundle.split_folders)}/; the recipe's split is not used)"


def data_line(job: TrainingJob, weights: Mapping[str, str]) -> str:
    """The line a run prints once its data and model are ready: what it trains on, from which
    weights (`identity.weights`), and where it writes."""
    bundle = job.data
    source = {"random": "random", "file": f"file {weights.get('path')}", "hub": f"hub {weights.get('id')}"}.get(
        weights["kind"], f"{weights['kind']} {weights.get('path', '')}".strip()
    )
    tracking = job.artifacts.tracker.mode
    if is_import_path(job.spec.model):  # a model of one's own: whose normalisation, said
        source += f" (input normalised with {models.normalisation_source(job.spec.model)})"
    execution = [
        words
        for words, used in (("torch.compile", job.settings.compile), ("fused optimizer", job.settings.fused_optimizer))
        if used
    ]
    loading = (
        f"{job.workers} loader workers"
        if job.workers
        else "batches loaded in the training process (--workers N for worker processes)"
    )
    return (
        f"[trainbench] data: {len(bundle.train)} train / {len(bundle.val)} val / {len(bundle.test)} test"
        f" images{_unused(bundle.unused)}{_split_by(bundle)}, {bundle.num_classes} classes; weights: {source};"
        f" {loading}; {''.join(w + '; ' for w in execution)}wandb {tracking}; record: {job.run_dir / 'result.json'}"
    )
