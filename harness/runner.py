"""One run, end to end: spec -> data + model -> engine -> result record.

Both the CLI and the pytest layer call `run`; nothing else trains.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import torch
from lightning.fabric.utilities.seed import seed_everything
from torch import nn

from harness import data, engines, models, pretrain
from harness.artifacts import RunArtifacts
from harness.engines import TrainingJob
from harness.hardware import detect, skip_reason
from harness.inference import is_reparameterizable, reparameterization_check
from harness.results.record import RunResult, environment
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec


class UnsupportedCase(RuntimeError):
    """This machine cannot run the case as specified (never silently run another way)."""


def obtain_model(spec: BenchmarkSpec, settings: RunSettings, num_classes: int) -> nn.Module:
    """The spec's model; in the smoke profile, missing pretrained weights are generated once."""
    weights_dir = settings.resolved_weights_dir
    allow_hub = spec.profile == "full"
    try:
        return models.create(spec.model, num_classes, spec.weights, weights_dir, allow_hub=allow_hub)
    except models.WeightsNotFound:
        if spec.profile != "smoke":
            raise
    pretrain.generate(spec, settings)
    seed_everything(spec.recipe.seed, verbose=False)  # pretraining must not shift the run's randomness
    return models.create(spec.model, num_classes, spec.weights, weights_dir, allow_hub=False)


def prepare(spec: BenchmarkSpec, settings: RunSettings) -> None:
    """Everything that must exist before worker processes start: dataset files and weights.

    A multi-process launcher calls this once in the parent, so ranks never race to generate.
    """
    data.locate(spec.dataset, settings.data_root, settings.cache_dir)
    if spec.weights == "pretrained" and models.find_weight_file(spec.model, settings.resolved_weights_dir) is None:
        obtain_model(spec, settings, num_classes=2)  # generates the file (smoke) or fills the hub cache (full); this head is thrown away


def build_job(spec: BenchmarkSpec, settings: RunSettings, run_id: str | None = None) -> TrainingJob:
    """Seeded data and model for `spec`: what an engine (or the plain reference loop) trains."""
    hw = detect()
    reason = skip_reason(spec.engine, spec.precision, spec.devices, hw, spec.num_nodes)
    if reason:
        raise UnsupportedCase(f"{spec.id} cannot run here: {reason}")
    run_id = run_id or spec.id
    seed_everything(spec.recipe.seed, verbose=False)
    bundle = data.for_spec(spec, settings.data_root, settings.cache_dir, models.data_stats(spec.model))
    model = obtain_model(spec, settings, bundle.num_classes)
    return TrainingJob(spec, model, bundle, run_id, settings.results_dir / run_id, settings, hw, RunArtifacts(spec, settings, run_id))


def run(spec: BenchmarkSpec, settings: RunSettings, run_id: str | None = None) -> RunResult | None:
    """Train and evaluate `spec`; rank 0 writes and returns the record, other ranks return None."""
    job = build_job(spec, settings, run_id)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    output = engines.get(spec.engine).fit(job)
    if not output.is_main_process:
        return None
    extra = {"artifacts": job.artifacts.finish(output.history, output.test)}
    if is_reparameterizable(job.model):
        device = torch.device("cuda" if job.hardware.gpus else "cpu")
        extra["reparameterization"] = reparameterization_check(job.model, data.loader(job.data.test, spec.recipe), device)
    record = RunResult(
        run_id=job.run_id,
        spec=spec.to_dict(),
        history=output.history,
        test=output.test,
        wall_time_s=time.perf_counter() - start,
        train_images_per_s=output.train_images_per_s,
        environment=environment(),
        started_at=started_at,
        extra=extra,
    )
    record.save(job.run_dir)
    return record
