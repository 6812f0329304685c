"""A plain PyTorch training loop: the yardstick for the engines' overhead (Lightning's parity-test idea).

Same model, loaders, device normalisation, optimizer, precision and throughput meter as the engines, nothing else: no
metrics, no validation, no callbacks. Engine images/s divided by this loop's is the overhead ratio.
"""

from __future__ import annotations

import itertools

import torch

from harness.data import loading
from harness.data.device import channels_last_helps
from harness.engines.base import (
    ThroughputMeter,
    TrainingJob,
    autocast_dtype,
    compile_if_asked,
    device_list,
)
from harness.engines.training import loss_for, optimizer_for
from harness.results.speed import steady_data_wait_share, steady_images_per_s


def plain_loop_speed(job: TrainingJob) -> tuple[float, float | None]:
    """Train `job.model` for the recipe's epochs in a bare loop; return its steady training images/s
    (the median after the first epoch) and data-wait share, the figures the engines' records report
    as `steady_images_per_s` and `data_wait_share`."""
    spec = job.spec
    device = torch.device(device_list(spec, job.hardware)[0])
    model = job.model.to(device).train()
    compile_if_asked(model, job.settings)
    loss_fn = loss_for(spec.recipe, device)
    optimizer = optimizer_for(spec.recipe, model.parameters(), fused=job.settings.fused_optimizer)
    dtype = autocast_dtype(spec.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=spec.precision == "16-mixed")
    normalize = job.data.normalizer(channels_last_helps(device))
    if normalize.channels_last:
        model.to(memory_format=torch.channels_last)
    sampler = loading.train_sampler(job.data.train, spec.recipe)
    loader = loading.loader(job.data.train, spec.recipe, workers=job.workers, sampler=sampler, train=True)
    meter, epochs = ThroughputMeter(), []
    for epoch in range(spec.recipe.epochs):
        sampler.set_epoch(epoch)
        meter.epoch_start()
        for x, y in itertools.islice(loader, spec.limit_batches):
            meter.batch_start()
            x, y = normalize(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            meter.batch_end(len(y))
        epochs.append(meter.epoch_figures())
    return steady_images_per_s(epochs), steady_data_wait_share(epochs)
