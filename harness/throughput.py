"""Where a recipe's training time goes on this machine, measured in one run (`trainbench throughput`).

Four figures in training images/s, side by side, so their ratios hold on a noisy machine:
- the loader alone, through the decoded-image cache and from the files: the recipe's train
  transform in `workers` processes, batches drawn and dropped, no model;
- the model's training step alone on one fixed batch already on the device: normalisation,
  forward, loss, backward and optimizer step under the spec's precision, as timm's benchmark.py
  measures a model;
- the engine end to end (`runner.run` with --limit-batches): loader, transfer, step, metrics and
  callbacks together, the steady second epoch, with the share of it spent waiting for batches.
The bottleneck is the slower of loader and model; the engine's figure says how close the whole
gets to it.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harness import models, runner
from harness.data import loading
from harness.data.device import channels_last_helps
from harness.engines.base import (
    autocast_dtype,
    compile_if_asked,
    device_list,
)
from harness.engines.training import loss_for, optimizer_for
from harness.errors import DataError
from harness.hardware import detect
from harness.results.record import RunResult
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec

WARMUP_BATCHES = 3  # not timed: worker start-up, cuDNN autotuning, allocator growth


@dataclass(frozen=True)
class Throughput:
    loader_images_per_s: float
    loader_images_per_s_uncached: float
    model_images_per_s: float
    engine_images_per_s: float
    engine_data_wait_share: float  # of the engine's training time, waiting for the loader
    workers: int
    device: str
    case: str
    batch_size: int
    batches: int
    precision: str
    compile: bool
    fused_optimizer: bool
    flops_train_per_image: float  # training FLOPs of one image (efficiency.flops: 3 x forward)
    peak_tflops: float  # this machine's measured dense matmul peak at the precision (efficiency.peak)
    vendor_peak_tflops: float | None  # the GPU's datasheet dense peak (None: a CPU, a GPU not in the table)

    def tflops(self, images_per_s: float) -> float:
        return self.flops_train_per_image * images_per_s / 1e12

    @property
    def model_tflops(self) -> float:
        return self.tflops(self.model_images_per_s)

    @property
    def engine_tflops(self) -> float:
        return self.tflops(self.engine_images_per_s)

    @property
    def bottleneck(self) -> str:
        return "loader" if self.loader_images_per_s < self.model_images_per_s else "model"

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            **asdict(self),
            "bottleneck": self.bottleneck,
            "model_tflops": self.model_tflops,
            "engine_tflops": self.engine_tflops,
            "model_mfu": self.model_tflops / self.peak_tflops,
            "engine_mfu": self.engine_tflops / self.peak_tflops,
            "model_mfu_vendor": self.model_tflops / self.vendor_peak_tflops if self.vendor_peak_tflops else None,
            "engine_mfu_vendor": self.engine_tflops / self.vendor_peak_tflops if self.vendor_peak_tflops else None,
        }

    def table(self) -> str:
        rows = [
            ("loader, decoded cache", self.loader_images_per_s),
            ("loader, from the files", self.loader_images_per_s_uncached),
            ("model step on a fixed batch", self.model_images_per_s),
            ("engine end to end", self.engine_images_per_s),
        ]
        execution = "".join(
            f", {name}"
            for name, used in (("torch.compile", self.compile), ("fused optimizer", self.fused_optimizer))
            if used
        )
        lines = [
            (
                f"{self.case} on {self.device}, {self.precision}{execution}, {self.workers} loader workers, batch"
                f" {self.batch_size}, {self.batches} timed batches"
            ),
            "",
        ]
        lines += [f"  {name:<30} {rate:>9.1f} img/s" for name, rate in rows]
        for index, rate in ((2, self.model_images_per_s), (3, self.engine_images_per_s)):
            vendor = (
                f", {self.tflops(rate) / self.vendor_peak_tflops:.1%} of the datasheet's {self.vendor_peak_tflops:g}"
                if self.vendor_peak_tflops
                else ""
            )
            lines[index + 2] += (
                f"  {self.tflops(rate):.3g} TFLOP/s, MFU {self.tflops(rate) / self.peak_tflops:.1%} of the measured"
                f" {self.peak_tflops:.3g}{vendor}"
            )
        lines[-1] += f"  (waiting for batches {self.engine_data_wait_share:.0%} of the time)"
        slower, faster = sorted((self.loader_images_per_s, self.model_images_per_s))
        other = "model" if self.bottleneck == "loader" else "loader"
        lines += [
            "",
            (
                f"bottleneck: the {self.bottleneck} at {slower:.1f} img/s (the {other} gives {faster / slower:.1f}x"
                f" that); the engine end to end reaches {self.engine_images_per_s / slower:.0%} of it"
            ),
        ]
        return "\n".join(lines)


def _timed(batches, count: int, images_of) -> float:
    """Images/s over `count` items of `batches`, after WARMUP_BATCHES untimed ones."""
    for _ in itertools.islice(batches, WARMUP_BATCHES):
        pass
    start, images = time.perf_counter(), 0
    for item in itertools.islice(batches, count):
        images += images_of(item)
    return images / (time.perf_counter() - start)


def _endless(dataset, spec: BenchmarkSpec, workers: int):
    """Training batches epoch after epoch, the way the engines draw them."""
    sampler = loading.train_sampler(dataset, spec.recipe)
    loader = loading.loader(dataset, spec.recipe, workers=workers, sampler=sampler, train=True)
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        yield from loader


def loader_images_per_s(bundle: loading.DataBundle, spec: BenchmarkSpec, workers: int, batches: int) -> float:
    return _timed(_endless(bundle.train, spec, workers), batches, lambda batch: len(batch[1]))


def model_images_per_s(spec: BenchmarkSpec, settings: RunSettings, bundle: loading.DataBundle, steps: int) -> float:
    """The training step alone, on one random uint8 batch kept on the device."""
    device = torch.device(device_list(spec, detect())[0])
    model = runner.obtain_model(spec, settings, bundle.num_classes).to(device).train()
    channels_last = channels_last_helps(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    normalize = bundle.normalizer(channels_last)
    compile_if_asked(model, settings)
    loss_fn = loss_for(spec.recipe, device)
    optimizer = optimizer_for(spec.recipe, model.parameters(), fused=settings.fused_optimizer)
    dtype = autocast_dtype(spec.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=spec.precision == "16-mixed")
    size, batch = spec.recipe.image_size, spec.per_process_batch
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, bundle.num_classes, (batch,), device=device)

    def step() -> int:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(model(normalize(x)), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return batch

    return _timed((step() for _ in itertools.count()), steps, lambda images: images)


def engine_run(spec: BenchmarkSpec, settings: RunSettings, batches: int) -> RunResult:
    """Two epochs of `batches` batches through the engine: its record has the steady (second)
    epoch's images/s, without the start-up, the share of its training time spent waiting for
    batches, and the FLOPs and peaks of the case."""
    with tempfile.TemporaryDirectory(prefix="trainbench-throughput-") as tmp:
        quiet = settings.quiet(results_dir=Path(tmp))
        two = spec.replace(limit_batches=batches).with_recipe(epochs=2, warmup_epochs=min(1, spec.recipe.warmup_epochs))
        record = runner.run(two, quiet, run_id="throughput")
    assert record is not None  # one training process (measure refuses more), so this one has the record
    return record


def measure(spec: BenchmarkSpec, settings: RunSettings, batches: int) -> Throughput:
    if spec.processes > 1:
        raise DataError(
            "throughput measures one training process; give --devices 1 (multi-device speed: run the case and read its"
            " steady images/s)"
        )
    identity = runner.prepare(
        spec, settings.replace(decode_cache=True)
    )  # checks, dataset, weights, decoded cache: before any timing
    workers = loading.prep_processes(spec, settings)  # as a GPU's one process has them, even on a CPU
    stats = models.data_stats(spec.model)
    cached = loading.for_spec(spec, settings.replace(decode_cache=True), stats, identity.data)
    uncached = loading.for_spec(spec, settings.replace(decode_cache=False), stats)
    loader_cached = loader_images_per_s(cached, spec, workers, batches)
    loader_uncached = loader_images_per_s(uncached, spec, workers, batches)
    model = model_images_per_s(spec, settings, cached, batches)
    engine = engine_run(spec, settings.replace(workers=workers), batches)
    assert engine.steady_images_per_s is not None  # a record made now has it (only older records lack it)
    hw = detect()
    device = hw.gpu_name or f"CPU ({hw.cpu_cores} cores)"
    return Throughput(
        loader_cached,
        loader_uncached,
        model,
        engine.steady_images_per_s,
        engine.data_wait_share or 0.0,
        workers,
        device,
        spec.id,
        spec.per_process_batch,
        batches,
        spec.precision,
        settings.compile,
        settings.fused_optimizer,
        engine.flops["train_per_image"],
        engine.mfu["peak_measured_tflops"],
        engine.mfu["peak_vendor_tflops"],
    )
