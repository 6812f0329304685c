"""Training with Poutyne (`poutyne.Model.fit_generator`), as the EfficientNetV2 workflow did.

Poutyne has no mixed precision of its own: `MixedPrecisionModel` runs its forward pass and loss
under `torch.autocast` and, for fp16, scales gradients with `torch.amp.GradScaler`. Several GPUs go
through Poutyne's own device list (one process, data parallel).
"""

from __future__ import annotations

from collections.abc import Callable

import poutyne
import torch
from torch import nn
from torch.utils.data import DataLoader

from harness.artifacts import HARNESS_KEY, harness_state, load
from harness.artifacts.checkpoints import model_state, restore_rng
from harness.data import loading
from harness.data.device import channels_last_helps
from harness.data.loading import EpochSampler
from harness.engines.base import (
    Divergence,
    EngineOutput,
    ThroughputMeter,
    TrainingJob,
    autocast_dtype,
    compile_if_asked,
    device_list,
    divergence,
)
from harness.engines.history import history_row
from harness.engines.progress import Progress
from harness.engines.training import LossFunction, loss_for, optimizer_for, set_epoch_lr
from harness.metrics import COUNT, AsLightningFeedsIt, ClassificationMetrics, custom_metrics
from harness.spec import CustomMetric


class MixedPrecisionModel(poutyne.Model):
    """A `poutyne.Model` whose forward/loss run under autocast, with loss scaling for fp16, and
    whose uint8 batches become model input on the device (`normalize`; None: batches used as they come)."""

    def __init__(
        self, *args, precision: str, normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.autocast_dtype = autocast_dtype(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "16-mixed" else None
        self.normalize = normalize

    def preprocess_input(self, x, y=None):
        if self.normalize is None:
            return super().preprocess_input(x, y)
        if self.device is not None:  # from pinned memory, the copy overlaps the previous step
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True) if y is not None else None
        x = (self.normalize(x),)
        return (x, y) if y is not None else x

    def _compute_loss_and_metrics(self, x, y, **kwargs):
        if self.autocast_dtype is None:
            return super()._compute_loss_and_metrics(x, y, **kwargs)
        with torch.autocast(torch.device(self.device or "cpu").type, dtype=self.autocast_dtype):
            return super()._compute_loss_and_metrics(x, y, **kwargs)

    def _fit_batch(self, x, y, *, callback=None, step=None, return_pred=False, convert_to_numpy=True):
        if self.scaler is None:
            return super()._fit_batch(
                x, y, callback=callback, step=step, return_pred=return_pred, convert_to_numpy=convert_to_numpy
            )
        self.optimizer.zero_grad()
        loss, batch_metrics, pred_y = self._compute_loss_and_metrics(
            x, y, return_loss_tensor=True, return_pred=return_pred, convert_to_numpy=convert_to_numpy
        )
        self.scaler.scale(loss).backward()
        if callback is not None:
            callback.on_backward_end(step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()), batch_metrics, pred_y


class _Recorder(poutyne.Callback):
    """Per epoch: seeds the sampler, feeds the throughput meter, records the history row in the
    engines' common keys, and hands the row and a checkpoint to the run's artifacts. Per batch of
    every phase: feeds the run's progress (`images` per phase)."""

    def __init__(
        self,
        job: TrainingJob,
        meter: ThroughputMeter,
        optimizer: torch.optim.Optimizer,
        sampler: EpochSampler,
        rows: list[dict[str, float]],
        progress: Progress,
        images: dict[str, int],
    ) -> None:
        super().__init__()
        self.job, self.meter, self.optimizer, self.sampler = job, meter, optimizer, sampler
        self.rows, self.progress, self.images, self.epoch = rows, progress, images, 0
        self.diverged: Divergence | None = None

    def on_valid_begin(self, logs: dict) -> None:
        self.progress.begin("val", self.images["val"], self.epoch)

    def on_valid_batch_end(self, batch_number: int, logs: dict) -> None:
        self.progress.advance(int(logs["size"]))

    def on_test_begin(self, logs: dict) -> None:
        self.progress.begin("test", self.images["test"])

    def on_test_batch_end(self, batch_number: int, logs: dict) -> None:
        self.progress.advance(int(logs["size"]))

    def on_test_end(self, logs: dict) -> None:
        self.progress.end_phase()

    def on_epoch_begin(self, epoch_number: int, logs: dict) -> None:
        self.sampler.set_epoch(epoch_number - 1)  # 0-based, as Lightning counts: same batches in both engines
        set_epoch_lr(self.optimizer, self.job.spec.recipe, epoch_number - 1)
        self.meter.epoch_start()
        self.epoch = epoch_number
        self.progress.begin("train", self.images["train"], epoch_number)

    def on_train_batch_begin(self, batch_number: int, logs: dict) -> None:
        self.meter.batch_start()

    def on_train_batch_end(self, batch_number: int, logs: dict) -> None:
        self.meter.batch_end(int(logs["size"]))
        self.progress.advance(int(logs["size"]))

    def on_epoch_end(self, epoch_number: int, logs: dict) -> None:
        train = {k: v for k, v in logs.items() if k not in ("epoch", "time") and not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        row = history_row(
            epoch_number,
            self.optimizer.param_groups[0]["lr"],
            logs["time"],
            self.meter.epoch_figures(),
            train,
            val,
            self.job.spec.metric_names,
        )
        self.rows.append(row)
        self.progress.epoch_done(row)
        self.job.artifacts.track(row)
        self.diverged = divergence(row)
        if self.diverged is not None:
            self.model.stop_training = True  # Poutyne's own stop, after this epoch
        elif self.job.artifacts.checkpointing:
            with self.job.artifacts.checkpoint_timer():
                self.job.artifacts.save_checkpoint(
                    {
                        HARNESS_KEY: harness_state(self.job.artifacts, epoch_number, self.rows),
                        "state_dict": self.job.model.state_dict(),
                        "optimizer_states": [self.optimizer.state_dict()],
                    }
                )


def poutyne_model(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    num_classes: int,
    precision: str,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    loss: LossFunction | str = "cross_entropy",
    custom: tuple[CustomMetric, ...] = (),
) -> MixedPrecisionModel:
    """`loss` (the recipe's: `engines.training.loss_for`) and the shared metrics (as Poutyne epoch
    metrics) around `net`, with the `custom` ones (spec.metrics) beside them."""
    metrics = ClassificationMetrics(num_classes)
    return MixedPrecisionModel(
        net,
        optimizer,
        loss,
        epoch_metrics=[
            (metrics.names, metrics),
            *((name, AsLightningFeedsIt(metric)) for name, metric in custom_metrics(custom, num_classes).items()),
        ],
        precision=precision,
        normalize=normalize,
    )


def evaluate(
    model: poutyne.Model, loader: DataLoader, steps: int | None = None, callbacks: list[poutyne.Callback] | None = None
) -> dict[str, float]:
    """Test metrics in the engines' common keys (`test_loss`, `test_acc`, ...), over `steps` batches (None: all)."""
    logs = model.evaluate_generator(loader, steps=steps, return_dict_format=True, verbose=False, callbacks=callbacks)
    return {k: float(v) for k, v in logs.items() if k.startswith("test_") and k not in ("test_time", f"test_{COUNT}")}


def _limited(limit: int | None, loader: DataLoader) -> int | None:
    """Batches per phase under --limit-batches, as Lightning counts them: never more than the loader has
    (Poutyne would cycle through it again)."""
    return min(limit, len(loader)) if limit else None


class PoutyneEngine:
    name = "poutyne"

    def fit(self, job: TrainingJob) -> EngineOutput:
        spec, recipe = job.spec, job.spec.recipe
        devices = device_list(spec, job.hardware)
        channels_last = channels_last_helps(devices[0])
        if channels_last:
            job.model.to(memory_format=torch.channels_last)
        compile_if_asked(job.model, job.settings)
        optimizer = optimizer_for(recipe, job.model.parameters(), fused=job.settings.fused_optimizer)
        model = poutyne_model(
            job.model,
            optimizer,
            job.data.num_classes,
            spec.precision,
            job.data.normalizer(channels_last),
            loss_for(recipe),
            spec.metrics,
        )
        rows, first_epoch = self._resume(job, optimizer)
        model.to(devices if len(devices) > 1 else devices[0])
        meter = ThroughputMeter.for_job(job)
        sampler = loading.train_sampler(job.data.train, recipe)
        train_loader = loading.loader(job.data.train, recipe, workers=job.workers, sampler=sampler, train=True)
        val_loader = loading.loader(job.data.val, recipe, workers=job.workers)
        test_loader = loading.loader(job.data.test, recipe, workers=job.workers)
        loaders = {"train": train_loader, "val": val_loader, "test": test_loader}
        images = {part: loading.images_in(loader, spec.limit_batches) for part, loader in loaders.items()}
        recorder = _Recorder(job, meter, optimizer, sampler, rows, Progress(recipe.epochs, label=job.label), images)
        train_steps, val_steps, test_steps = (_limited(spec.limit_batches, loader) for loader in loaders.values())
        model.fit_generator(
            train_loader,
            val_loader,
            epochs=recipe.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=train_steps,
            validation_steps=val_steps,
            callbacks=[recorder],
            verbose=False,
        )
        if recorder.diverged is not None:
            return EngineOutput(history=rows, test={}, diverged=recorder.diverged)
        test = evaluate(model, test_loader, steps=test_steps, callbacks=[recorder])
        return EngineOutput(history=rows, test=test)

    @staticmethod
    def _resume(job: TrainingJob, optimizer: torch.optim.Optimizer) -> tuple[list[dict[str, float]], int]:
        """(history so far, first epoch to run): from the latest checkpoint under --resume, else ([], 1)."""
        path = job.artifacts.resume_path()
        if path is None:
            return [], 1
        checkpoint = load(path)
        job.model.load_state_dict(model_state(checkpoint["state_dict"], job.model, path))
        optimizer.load_state_dict(checkpoint["optimizer_states"][0])
        saved = checkpoint[HARNESS_KEY]
        restore_rng(saved["rng"])
        job.artifacts.replay(saved["history"])
        return list(saved["history"]), saved["epoch"] + 1
