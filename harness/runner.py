"""One run, end to end: spec -> data + model -> engine -> result record.

Both the CLI and the pytest layer call `run`; nothing else trains.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch
from lightning.fabric.utilities.seed import seed_everything
from torch import nn

from harness import models, preflight, pretrain
from harness.artifacts import RunArtifacts, process_rank, resume, tracking
from harness.data import loading, named
from harness.data.duplicates import describe as describe_duplicates
from harness.data.imagefolder import left_out_counts, left_out_line
from harness.efficiency import energy, flops, peak
from harness.efficiency.figures import achieved_tflops, energy_summary, mfu
from harness.efficiency.flops import Flops
from harness.engines import progress, registry
from harness.engines.base import TrainingJob
from harness.errors import RecordError, UnsupportedCase
from harness.hardware import detect, skip_reason
from harness.identity import RunIdentity
from harness.inference import is_reparameterizable, reparameterization_check
from harness.results.plots import plot_curves
from harness.results.record import RunResult, environment
from harness.results.speed import (
    overall_images_per_s,
    steady_data_wait_share,
    steady_images_per_s,
)
from harness.settings import RunSettings, default_cache_dir
from harness.spec import BenchmarkSpec

CLAIMED_RUN_ID = (  # the attempt rank 0 claimed, for the processes Lightning starts from the same command line
    "TRAINBENCH_CLAIMED_RUN_ID"
)


def ensure_weights(spec: BenchmarkSpec, settings: RunSettings) -> None:
    """Smoke profile: the offline stand-in weights file, generated once when none exists (or when
    the one there came from an older version of the pretraining)."""
    if spec.weights != "pretrained" or spec.profile != "smoke":
        return
    file = models.find_weight_file(spec.model, settings.resolved_weights_dir)
    stand_in = models.stand_in_metadata(spec.model, settings.resolved_weights_dir)
    if file is None or (stand_in is not None and not pretrain.is_current(stand_in)):
        pretrain.generate(spec, settings)  # an older stand-in is made again; a user's own file never is


def obtain_model(spec: BenchmarkSpec, settings: RunSettings, num_classes: int) -> nn.Module:
    """The spec's model, random or pretrained (a weights file; the hub only in the full profile),
    with its classifier drawn at the recipe's `head_init_std` when the recipe gives one."""
    return models.create(
        spec.model,
        num_classes,
        spec.weights,
        settings.resolved_weights_dir,
        allow_hub=spec.profile == "full",
        head_init_std=spec.recipe.head_init_std,
    )


def prepare(spec: BenchmarkSpec, settings: RunSettings, run_id: str | None = None) -> RunIdentity:
    """Checks, then everything that must exist before training (dataset files, weights), and the
    run's identity. The harness's launcher calls this in the parent before it starts the ranks, so
    they find everything made (and the decode pass remembered); each rank's own call is then cheap.
    Under --resume, a checkpoint of another run of the case is explained before the decode pass.
    """
    preflight.check(spec, settings)
    stand_in = spec.weights == "pretrained" and spec.profile == "smoke"  # generated below when missing
    weights = (
        None
        if stand_in
        else models.weights_source(
            spec.model, spec.weights, settings.resolved_weights_dir, allow_hub=spec.profile == "full"
        )
    )  # before the data pass: an unreachable hub fails in seconds
    folder = named.locate(spec.dataset, settings.data_root, settings.cache_dir)
    content = loading.fingerprint(folder, settings.cache_dir)
    if settings.resume:
        check_resume(spec, settings, content, weights, run_id)
    data_identity = loading.check(folder, spec.recipe, settings.cache_dir, content)
    if settings.decode_cache:  # built here, once, before a launcher starts the ranks that share it
        loading.decoded_images(
            folder, spec.recipe, data_identity, settings.cache_dir, loading.prep_processes(spec, settings)
        )
    if stand_in:
        ensure_weights(spec, settings)
        weights = models.weights_source(spec.model, spec.weights, settings.resolved_weights_dir, allow_hub=False)
    assert weights is not None  # found before the data pass, or for the stand-in just made
    return RunIdentity.of(spec, data_identity, weights)


def check_resume(
    spec: BenchmarkSpec,
    settings: RunSettings,
    content: loading.DataIdentity,
    weights: dict[str, str] | None,
    run_id: str | None,
) -> None:
    """`resume.check` with this run's identity; a stand-in not generated yet has no checkpoint to continue."""
    if weights is None and models.find_weight_file(spec.model, settings.resolved_weights_dir) is None:
        return
    identity = RunIdentity.of(
        spec,
        content,
        weights or models.weights_source(spec.model, spec.weights, settings.resolved_weights_dir, allow_hub=False),
    )
    resume.check(
        spec, settings, run_id or identity.run_id, identity.fingerprint, content.as_dict(), given=run_id is not None
    )


def build_job(
    spec: BenchmarkSpec, settings: RunSettings, identity: RunIdentity, run_id: str | None = None
) -> TrainingJob:
    """Seeded data and model for `spec`: what an engine (or the plain reference loop) trains."""
    hw = detect()
    reason = skip_reason(spec.engine, spec.precision, spec.devices, hw, spec.num_nodes, spec.recipe.sync_batchnorm)
    if reason:
        raise UnsupportedCase(f"{spec.id} cannot run here: {reason}")
    run_id = run_id or identity.run_id
    seed_everything(spec.recipe.seed, verbose=False)
    bundle = loading.for_spec(spec, settings, models.data_stats(spec.model), identity.data)
    model = obtain_model(spec, settings, bundle.num_classes)
    preflight.check_batchnorm(model, spec)
    artifacts = RunArtifacts(spec, settings, run_id, identity.fingerprint, identity.data.as_dict())
    if artifacts.store is not None:
        preflight.check_disk(model, spec, artifacts.store.folders)
    meter, no_meter = energy.counter(hw, spec.devices)
    return TrainingJob(
        spec,
        model,
        bundle,
        run_id,
        settings.results_dir / run_id,
        settings,
        hw,
        artifacts,
        loading.workers_for(spec, settings),
        energy=meter,
        energy_note=no_meter,
    )


def provenance(job: TrainingJob, identity: RunIdentity, duplicates: dict | None) -> dict[str, Any]:
    """What produced a record, beyond its spec: data (with its byte-identical images), weights,
    batch per process and device, target."""
    spec, bundle = job.spec, job.data
    return {
        "fingerprint": identity.fingerprint,
        "data": {
            **identity.data.as_dict(),
            "classes": list(bundle.classes),
            "split": {
                **{p: len(getattr(bundle, p)) for p in ("train", "val", "test")},
                "unused": bundle.unused,
                "by": f"the folders {', '.join(bundle.split_folders)}" if bundle.split_folders else "the recipe",
            },
            "duplicates": duplicates,
            "left_out": left_out_counts(bundle.train.index.left_out) or None,
            "normalisation": {
                "mean": list(bundle.stats[0]),
                "std": list(bundle.stats[1]),
                "from": models.normalisation_source(spec.model),
            },
        },
        "weights": identity.weights,
        "loader": {
            "workers": job.workers,
            "workers_from": "--workers" if job.settings.workers is not None else "machine",
            "recipe_workers": spec.recipe.workers,
            "decode_cache": bundle.decoded.meta() if bundle.decoded is not None else None,
        },
        "batch": {
            "global": spec.recipe.batch_size,
            "processes": spec.processes,
            "per_process": spec.per_process_batch,
            "per_device": spec.per_device_batch,
        },
        "target": {"accuracy": spec.target_accuracy, "source": spec.target_source},
        "execution": {
            "compile": job.settings.compile,
            "fused_optimizer": job.settings.fused_optimizer,
            **({"by_epoch": job.artifacts.execution} if len(job.artifacts.execution) > 1 else {}),
        },  # a resume that ran another way says so
    }


def distance_to_limit(job: TrainingJob, counted: Flops, history: list[dict[str, float]]) -> dict[str, Any]:
    """The record's FLOPs per image, achieved TFLOP/s (at the steady speed, else the overall one),
    MFU against this machine's measured peak (measured once per machine) and the vendor's, and energy."""
    achieved = achieved_tflops(counted, steady_images_per_s(history) or overall_images_per_s(history))
    device = torch.device("cuda" if job.hardware.gpus else "cpu")
    used = energy_summary(history)
    return {
        "flops": counted.as_dict(),
        "achieved_tflops": achieved,
        "mfu": mfu(
            achieved, job.spec, peak.cached(device, job.spec.precision, default_cache_dir()), job.hardware.gpu_name
        ),
        "energy": used,
        "energy_note": None if used is not None else job.energy_note or "the run trained no epoch",
    }


def peak_gpu_memory_gib(job: TrainingJob) -> float | None:
    """The most this process's tensors held at once on its (first) GPU since training began."""
    return torch.cuda.max_memory_allocated() / 2**30 if job.hardware.gpus else None


def finished_record(
    spec: BenchmarkSpec, settings: RunSettings, identity: RunIdentity, run_id: str | None
) -> RunResult | None:
    """Under --resume, the record of the run it would continue when that run already finished
    (`resume.finished`), said in one line by rank 0; else None. The launcher asks before it starts any process."""
    done = resume.finished(settings, identity.attempt, run_id)
    if done is None:
        return None
    if process_rank() == 0:
        print(
            f"[trainbench] --resume: {spec.id} already finished (record {done}); nothing to resume; "
            "drop --resume to train a new attempt",
            flush=True,
        )
    return RunResult.load(done)


def run(
    spec: BenchmarkSpec, settings: RunSettings, run_id: str | None = None, step_hook: Callable[[], None] | None = None
) -> RunResult | None:
    """Train and evaluate `spec`; rank 0 writes and returns the record, other ranks return None.
    A run whose loss diverged returns its record too, with status `diverged` (callers fail on it).
    Under --resume, a run that already finished is not trained again: its record is returned
    (`resume.finished`).

    Without `run_id`, the run claims its identity's first free attempt (`RunIdentity.claimed_attempt`)
    and holds it to the end, so an earlier record of the same spec, or a run of it going on at the
    same time, is never overwritten. `step_hook` runs after every training batch (a profiler's step;
    one process only).
    """
    preflight.check_launcher(spec, run_id)
    if process_rank() == 0:
        print(progress.startup_line(spec, settings, detect()), flush=True)
        settings = tracking.settle(settings)  # the one process that tracks
    identity = prepare(spec, settings, run_id)
    if (done := finished_record(spec, settings, identity, run_id)) is not None:
        return done if process_rank() == 0 else None
    inherited = (
        os.environ.get(CLAIMED_RUN_ID) if spec.world_size > 1 and os.environ.get("LOCAL_RANK", "0") != "0" else None
    )
    given = run_id or inherited
    if given:  # Lightning's DDP children write under the attempt their rank 0 holds
        return _train(spec, settings, identity, given, step_hook)
    with identity.claimed_attempt(settings.results_dir) as claimed:
        if spec.world_size > 1:
            os.environ[CLAIMED_RUN_ID] = claimed  # inherited by the processes Lightning starts during fit
        return _train(spec, settings, identity, claimed, step_hook)


def _train(
    spec: BenchmarkSpec,
    settings: RunSettings,
    identity: RunIdentity,
    run_id: str,
    step_hook: Callable[[], None] | None = None,
) -> RunResult | None:
    main_process = process_rank() == 0
    job = build_job(spec, settings, identity, run_id)
    job.step_hook = step_hook
    copies = loading.duplicate_summary(job.data, identity.data, settings.cache_dir)
    if main_process:
        print(progress.data_line(job, identity.weights), flush=True)
        if copies is not None:
            print(f"[trainbench] duplicates: {describe_duplicates(copies)}", flush=True)
        if (left_out := left_out_line(job.data.train.index)) is not None:
            print(f"[trainbench] left out: {left_out}", flush=True)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    counted = (
        flops.cached(job.model, spec.model, spec.recipe.image_size, job.data.num_classes, settings.cache_dir)
        if main_process
        else None
    )  # before any device or compile
    if job.hardware.gpus:
        torch.cuda.reset_peak_memory_stats()
    try:
        output = registry.get(spec.engine).fit(job)
    except BaseException as error:
        job.artifacts.abandon(error)
        raise
    if not output.is_main_process:
        return None
    assert counted is not None  # the main process counted them before training
    extra = {"artifacts": job.artifacts.finish(output.history, output.test)}
    if output.diverged is not None:
        extra["divergence"] = output.diverged.as_dict()
    elif is_reparameterizable(job.model):
        device = torch.device("cuda" if job.hardware.gpus else "cpu")
        extra["reparameterization"] = reparameterization_check(
            job.model,
            itertools.islice(loading.loader(job.data.test, spec.recipe, workers=job.workers), spec.limit_batches),
            job.data.normalizer(),
            device,
        )
    record = RunResult(
        run_id=job.run_id,
        spec=spec.to_dict(),
        history=output.history,
        test=output.test,
        wall_time_s=time.perf_counter() - start,
        train_images_per_s=overall_images_per_s(
            output.history
        ),  # from every epoch's row: a resumed run counts the epochs before it too
        steady_images_per_s=steady_images_per_s(output.history),
        data_wait_share=steady_data_wait_share(output.history),
        peak_gpu_memory_gib=peak_gpu_memory_gib(job),
        environment=environment(job.settings.project_dir),
        started_at=started_at,
        extra=extra,
        status="ok" if output.diverged is None else "diverged",
        **provenance(job, identity, copies),
        **distance_to_limit(job, counted, output.history),
    )
    try:
        record.save(job.run_dir, plot_curves)
    except RecordError as error:
        print(record.summary(), flush=True)  # the trained result is never lost: it is on the screen
        job.artifacts.abandon(error)
        raise
    job.artifacts.publish(record, job.run_dir)
    return record
