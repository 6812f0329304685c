"""Training with PyTorch Lightning, as the FastViT workflow did, on one device or many (DDP: gloo on CPU, NCCL on GPU).

Metrics are the shared torchmetrics collection; `compute()` syncs their states across ranks, so
every reported figure is the global one. Evaluation samplers do not pad (Lightning's
`UnrepeatedDistributedSampler`), so a multi-process test set counts every image exactly once.
Only rank 0 reports. Multi-process runs must start from the harness's entry point
(`python -m harness run`), never from inside pytest: see `harness.launch`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import cast

import lightning as L
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.distributed import DistStoreError
from torchmetrics import MeanMetric, Metric

from harness.artifacts import HARNESS_KEY, RunArtifacts, harness_state, load
from harness.artifacts.checkpoints import epoch_file, model_state, restore_rng
from harness.data import loading
from harness.data.device import DeviceNormalize, channels_last_helps
from harness.data.loading import DataBundle
from harness.engines.base import (
    Divergence,
    EngineOutput,
    ThroughputMeter,
    TrainingJob,
    compile_if_asked,
    divergence,
)
from harness.engines.history import history_row
from harness.engines.progress import Progress, quiet_notices
from harness.engines.training import LossFunction, loss_for, optimizer_for, set_epoch_lr
from harness.errors import RendezvousError
from harness.hardware import detect
from harness.metrics import COUNT, ClassificationMetrics, custom_metrics
from harness.spec import BenchmarkSpec, Recipe

PARTS = ("train", "val", "test")


class BundleDataModule(L.LightningDataModule):
    """DataLoaders of a DataBundle; under DDP each rank gets its shard (train shuffled by epoch) and
    its share of the recipe's global batch, so every device count trains the same recipe. Batches
    travel as uint8 and are normalised once on the device (`normalize`, data.device). A training
    batch reaches the meter as it leaves the loader, before its copy, where Poutyne and the plain
    loop mark it too."""

    def __init__(
        self, bundle: DataBundle, recipe: Recipe, workers: int, normalize: DeviceNormalize, meter: ThroughputMeter
    ) -> None:
        super().__init__()
        self.bundle, self.recipe, self.workers, self.normalize, self.meter = bundle, recipe, workers, normalize, meter

    @property
    def _trainer(self) -> L.Trainer:
        assert self.trainer is not None  # Lightning attaches its trainer before it calls any hook that reads it
        return self.trainer

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if self._trainer.training:
            self.meter.batch_start()
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        return self.normalize(x), y

    def _sampler(self, dataset, train: bool):
        world, rank = self._trainer.world_size, self._trainer.global_rank
        if train:  # Lightning calls set_epoch on it, which also seeds each sample's augmentation
            sampler = loading.train_sampler(dataset, self.recipe, world_size=world, rank=rank)
            # Resuming, Lightning creates the loader's iterator before it calls set_epoch, and loader
            # workers draw their first indices at once: without this, the first resumed epoch would
            # repeat the order and augmentations of epoch 1. The epoch is the one Lightning's fit
            # loop gives set_epoch (trainer.current_epoch counts completed epochs, one behind here).
            # Lightning types Progress.current as the base tracker; the fit loop's is a _ProcessedTracker
            sampler.set_epoch(self._trainer.fit_loop.epoch_progress.current.processed)  # type: ignore[attr-defined]
            return sampler
        return (
            UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
        )

    def _loader(self, dataset, train: bool):
        return loading.loader(
            dataset,
            self.recipe,
            workers=self.workers,
            sampler=self._sampler(dataset, train),
            processes=self._trainer.world_size,
            train=train,
        )

    def train_dataloader(self):
        return self._loader(self.bundle.train, True)

    def val_dataloader(self):
        return self._loader(self.bundle.val, False)

    def test_dataloader(self):
        return self._loader(self.bundle.test, False)


class StoreCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O, routed to the run's checkpoint store (folders + bucket).

    Lightning builds the checkpoint (model, optimizer, loop state) and calls this on rank 0;
    loading never executes code from the file (`weights_only=True`).
    """

    def __init__(self, artifacts: RunArtifacts) -> None:
        self.artifacts = artifacts

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        self.artifacts.save_checkpoint(checkpoint)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load(Path(path))

    def remove_checkpoint(self, path) -> None:
        raise NotImplementedError("trainbench keeps every epoch's checkpoint")


class ClassificationModule(L.LightningModule):
    """A timm model with the recipe's loss and optimizer, and the shared metrics per part."""

    def __init__(
        self,
        model: nn.Module,
        spec: BenchmarkSpec,
        num_classes: int,
        meter: ThroughputMeter,
        artifacts: RunArtifacts,
        label: str = "",
        *,
        fused_optimizer: bool = False,
    ) -> None:
        super().__init__()
        self.model, self.spec, self.meter, self.artifacts, self.label = model, spec, meter, artifacts, label
        self.fused_optimizer = fused_optimizer
        self.loss_fn: LossFunction = loss_for(spec.recipe)
        self.progress = Progress(spec.recipe.epochs, shown=False)
        # Keyed by prefix ("train_"): nn.ModuleDict refuses "train", which is nn.Module.train.
        self.metrics = nn.ModuleDict({f"{p}_": ClassificationMetrics(num_classes) for p in PARTS})
        # keyed "metric_<name>": a ModuleDict refuses keys that are nn.Module's attributes (a metric named "type")
        self.custom = nn.ModuleDict(
            {
                f"{p}_": nn.ModuleDict({f"metric_{k}": m for k, m in custom_metrics(spec.metrics, num_classes).items()})
                for p in PARTS
            }
        )
        # A nan loss must show: MeanMetric's default drops nan values with a warning, which hid a
        # diverging loss until every batch of an epoch was nan. nan_strategy="disable" would keep them
        # but ignores the weights (torchmetrics 1.9: `weight = torch.ones_like(x)`); a float strategy
        # puts that float (nan) in their place and keeps every other batch's weight.
        self.losses = nn.ModuleDict({f"{p}_": MeanMetric(nan_strategy=float("nan")) for p in PARTS})
        self.history: list[dict[str, float]] = []
        self.test_metrics: dict[str, float] = {}
        self.diverged: Divergence | None = None
        self._epoch_values: dict[str, dict[str, float]] = {}
        self._epoch_start = 0.0

    def setup(self, stage: str) -> None:
        self.progress = Progress(self.spec.recipe.epochs, shown=self.trainer.is_global_zero, label=self.label)
        devices = self.trainer.num_devices
        if self.trainer.accelerator.__class__.__name__ == "CPUAccelerator" and devices > 1:  # ranks share the cores
            torch.set_num_threads(max(1, min(torch.get_num_threads(), detect().cpu_cores // devices)))

    def configure_optimizers(self):
        return optimizer_for(self.spec.recipe, self.model.parameters(), fused=self.fused_optimizer)

    def _step(self, batch, part: str, padding: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's loss; its metrics, leaving out the images that `padding` marks (the sampler's
        repeats, which train like any image but are counted once, where they first came)."""
        x, y = batch
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        metrics, losses = self._of(part)
        counted, targets = logits.detach().float(), y
        if padding is None:
            losses.update(loss.detach().float(), weight=y.numel())
        else:
            kept = ~padding.to(y.device)
            if not kept.any():  # the recipe's loss is a batch mean, which an empty batch does not have
                return loss
            counted, targets = counted[kept], y[kept]
            losses.update(self.loss_fn(counted, targets).float(), weight=kept.sum())
        metrics.update(counted, targets)
        with torch.autocast(counted.device.type, enabled=False):  # float32, as Poutyne feeds them (AsLightningFeedsIt)
            for metric in self._custom(part).values():
                metric.update(counted, targets)
        return loss

    def _of(self, part: str) -> tuple[ClassificationMetrics, MeanMetric]:
        """`part`'s metrics and loss mean (nn.ModuleDict types what it holds as Module)."""
        return cast(ClassificationMetrics, self.metrics[f"{part}_"]), cast(MeanMetric, self.losses[f"{part}_"])

    def _custom(self, part: str) -> dict[str, Metric]:
        """`part`'s custom metrics by name (spec.metrics)."""
        held = cast(nn.ModuleDict, self.custom[f"{part}_"])
        return {key.removeprefix("metric_"): cast(Metric, metric) for key, metric in held.items()}

    def _finish(self, part: str) -> dict[str, float]:
        """Global (all-rank) epoch values of `part`, then reset for the next epoch."""
        metrics, loss = self._of(part)
        values = {k: float(v) for k, v in metrics.compute().items()}  # with COUNT, the images counted
        values["loss"] = float(loss.compute())
        values.update({name: float(metric.compute()) for name, metric in self._custom(part).items()})
        for each in (metrics, loss, *self._custom(part).values()):
            each.reset()
        # Already global; sync_dist averages identical values (and keeps Lightning from warning).
        self.log_dict({f"{part}_{k}": v for k, v in values.items()}, sync_dist=True)
        return values

    def training_step(self, batch, batch_idx):
        loader = self.trainer.train_dataloader
        assert loader is not None  # set while Lightning trains
        return self._step(batch, "train", loader.sampler.padding(batch_idx * loader.batch_size, len(batch[1])))

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _images(self, loader) -> int:
        return loading.images_in(loader, self.spec.limit_batches, self.trainer.world_size)

    def _advance(self, batch) -> None:
        self.progress.advance(len(batch[1]) * self.trainer.world_size)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        set_epoch_lr(self.trainer.optimizers[0], self.spec.recipe, self.current_epoch)
        self.meter.epoch_start()
        self.progress.begin("train", self._images(self.trainer.train_dataloader), self.current_epoch + 1)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.meter.batch_end(len(batch[1]) * self.trainer.world_size)
        self._advance(batch)

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self.progress.begin("val", self._images(self.trainer.val_dataloaders), self.current_epoch + 1)

    def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._advance(batch)

    def on_test_epoch_start(self) -> None:
        self.progress.begin("test", self._images(self.trainer.test_dataloaders))

    def on_test_batch_end(self, outputs, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._advance(batch)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._epoch_values["val"] = self._finish("val")

    def on_train_epoch_end(self) -> None:
        train = self._finish("train")
        row = history_row(
            self.current_epoch + 1,
            self.trainer.optimizers[0].param_groups[0]["lr"],
            time.perf_counter() - self._epoch_start,
            self.meter.epoch_figures(),
            train,
            self._epoch_values.pop("val", {}),
            self.spec.metric_names,
        )
        self.history.append(row)
        self.progress.epoch_done(row)
        if self.trainer.is_global_zero:
            self.artifacts.track(row)
        self.diverged = divergence(row)  # the loss is global (all ranks), so every rank stops here
        if self.diverged is not None:
            self.trainer.should_stop = True
        elif self.artifacts.checkpointing:  # on every rank: Lightning gathers state, rank 0 writes
            with self.artifacts.checkpoint_timer():
                self.trainer.save_checkpoint(epoch_file(self.current_epoch + 1))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[HARNESS_KEY] = harness_state(self.artifacts, self.current_epoch + 1, self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Before Lightning loads the state: the model's keys as this module names them (`model.` +
        the plain model's keys, whatever wrapper prefixes the checkpoint's model had)."""
        ours = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
        where = (self.artifacts.resumed_from or {}).get("checkpoint", "the checkpoint")
        checkpoint["state_dict"] = {
            **{k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("model.")},
            **{f"model.{k}": v for k, v in model_state(ours, self.model, where).items()},
        }
        saved = checkpoint[HARNESS_KEY]
        self.history = list(saved["history"])
        restore_rng(saved["rng"])
        if self.trainer.is_global_zero:
            self.artifacts.replay(self.history)

    def on_test_epoch_end(self) -> None:
        self.test_metrics = {f"test_{k}": v for k, v in self._finish("test").items() if k != COUNT}
        self.progress.end_phase()


def trainer_kwargs(
    spec: BenchmarkSpec, accelerator: str, plugins: list | None = None, rendezvous_timeout_s: float = 600.0
) -> dict:
    """Trainer settings from the spec: precision, devices, nodes and the DDP strategy when needed
    (whose process group gives up waiting for a missing process after `rendezvous_timeout_s`)."""
    limits = (
        {f"limit_{part}_batches": spec.limit_batches for part in ("train", "val", "test")} if spec.limit_batches else {}
    )
    return dict(
        **limits,
        accelerator=accelerator,
        devices=spec.devices,
        num_nodes=spec.num_nodes,
        strategy=DDPStrategy(timeout=timedelta(seconds=rendezvous_timeout_s)) if spec.world_size > 1 else "auto",
        precision=spec.precision,
        max_epochs=spec.recipe.epochs,
        sync_batchnorm=spec.recipe.sync_batchnorm,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=plugins or [],
    )


@contextmanager
def ctrl_c_as_keyboard_interrupt(trainer: L.Trainer) -> Iterator[None]:
    """Lightning turns a Ctrl-C into `sys.exit(1)` after setting SIGINT to be ignored; give it back
    as the KeyboardInterrupt it was, with Ctrl-C working again, so the command line ends it the way
    it ends every interrupt (exit 130, the uploads waited for or left local on a second Ctrl-C)."""
    try:
        yield
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt from None


class LightningEngine:
    name = "lightning"

    def fit(self, job: TrainingJob) -> EngineOutput:
        quiet_notices()
        meter = ThroughputMeter.for_job(job)
        channels_last = channels_last_helps("cuda" if job.hardware.accelerator == "gpu" else "cpu")
        if channels_last:
            job.model.to(memory_format=torch.channels_last)
        compile_if_asked(job.model, job.settings)
        module = ClassificationModule(
            job.model,
            job.spec,
            job.data.num_classes,
            meter,
            job.artifacts,
            job.label,
            fused_optimizer=job.settings.fused_optimizer,
        )
        datamodule = BundleDataModule(job.data, job.spec.recipe, job.workers, job.data.normalizer(channels_last), meter)
        timeout_s = job.settings.rendezvous_timeout_s
        trainer = L.Trainer(
            **trainer_kwargs(job.spec, job.hardware.accelerator, [StoreCheckpointIO(job.artifacts)], timeout_s)
        )
        try:
            with ctrl_c_as_keyboard_interrupt(trainer):
                trainer.fit(module, datamodule=datamodule, ckpt_path=job.artifacts.resume_path())
        except (
            DistStoreError
        ) as error:  # the store's own message: "Timed out after 6 seconds waiting for clients. 1/2 clients joined."
            where = f"{os.environ.get('MASTER_ADDR', '127.0.0.1')}:{os.environ.get('MASTER_PORT', '?')}"
            raise RendezvousError(
                f"{job.spec.world_size} DDP processes over {job.spec.num_nodes} node(s) did not all meet at {where}"
                f" within {timeout_s:g} s ({str(error).splitlines()[0]}); start every node with the same master"
                " address, port and --run-id, or raise --rendezvous-timeout-s"
            ) from None
        if module.diverged is None:
            with ctrl_c_as_keyboard_interrupt(trainer):
                trainer.test(module, datamodule=datamodule, verbose=False)
        return EngineOutput(
            history=module.history,
            test=module.test_metrics,
            is_main_process=trainer.is_global_zero,
            diverged=module.diverged,
        )
