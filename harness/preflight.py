"""Checks that run before any training time is spent, each failing in one line that names the
problem, the offending path or option, and the fix.

`check` runs before data and weights are prepared (folders, resume, the bucket); `check_launcher` in the process
that is to train (a parent that starts torchrun nodes is not one); `check_disk` and
`check_batchnorm` once the model exists, before its first epoch (room for one checkpoint in every
folder; a batch BatchNorm can train on, found by a shape probe of the model).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from harness import models
from harness.artifacts import tracking
from harness.artifacts.gcs import BucketUploader
from harness.atomic import check_writable
from harness.data.transforms import check_augmentations
from harness.engines.training import check_recipe_extensions
from harness.errors import BucketAccessError, PreflightError
from harness.extensions import resolve_callable
from harness.results import mlflow_runs
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec

# Variables a multi-node launcher sets on every node: torchrun, SLURM, or Lightning's manual mode.
MULTI_NODE_LAUNCHERS = ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK")
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}  # state tensors per parameter (moments, momentum)


def check_parts(spec: BenchmarkSpec) -> None:
    """Every part the spec names resolves and agrees, however the spec was built (the command line and the
    plugin's catalog cases check them as they build it; a spec built in Python, an experiment file or a spec
    file is checked here): the model, the transforms, the loss, optimizer and schedule, the metrics."""
    where = f"{spec.id}'s recipe"
    models.check_name(spec.model)
    check_augmentations(spec.recipe.train_augmentations, where)
    check_recipe_extensions(spec.recipe, where)
    spec.recipe.check_schedule(where)
    for metric in spec.metrics:
        resolve_callable(metric.path, f"metric {metric.name}")


def check(spec: BenchmarkSpec, settings: RunSettings) -> None:
    check_parts(spec)
    check_writable(settings.results_dir, "results folder", "--results-dir")
    check_writable(settings.cache_dir, "cache folder", "--cache-dir (or TRAINBENCH_CACHE_DIR)")
    for folder in settings.checkpoint_dirs:
        check_writable(folder, "checkpoint folder", "--checkpoint-dir")
    weights_dir = settings.weights_dir
    # the smoke profile generates its stand-in into a missing folder; the full profile reads one
    if (
        spec.weights == "pretrained"
        and weights_dir is not None
        and (weights_dir.is_file() or (spec.profile == "full" and not weights_dir.is_dir()))
    ):
        raise PreflightError(
            f"weights folder {settings.weights_dir} is not a folder; give --weights-dir a folder holding"
            " <model>.safetensors (or .pth, .bin)"
        )
    if settings.resume and not (settings.checkpoint_dirs or settings.gcs_bucket):
        raise PreflightError(
            "--resume has nothing to resume from: give the --checkpoint-dir (or --gcs-bucket) the interrupted run"
            " saved to"
        )
    if settings.wandb in ("online", "offline") and not tracking.installed():
        raise PreflightError(
            f"--wandb {settings.wandb} needs wandb, which is not installed; pip install 'trainbench[wandb]' (or wandb),"
            " or give --wandb off"
        )
    mlflow_runs.check(settings.mlflow, settings.results_dir)
    if settings.gcs_bucket:
        check_bucket(settings.gcs_bucket, settings.gcs_retry_s)


def check_bucket(url: str, retry_s: float) -> None:
    """The bucket takes a write now (credentials, name, permission), not only after the first epoch."""
    try:
        BucketUploader(url, retry_s).probe()
    except BucketAccessError as error:
        raise PreflightError(str(error)) from None


def check_launcher(spec: BenchmarkSpec, run_id: str | None, environ: Mapping[str, str] = os.environ) -> None:
    """Several nodes: this process must have been started by a multi-node launcher, with a run id
    every node shares (attempts are counted in a node-local results folder). Several processes
    started together by torchrun or SLURM need one too: each would claim an attempt of its own."""
    if spec.num_nodes == 1:
        if (
            spec.world_size > 1
            and run_id is None
            and any(environ.get(v) for v in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS"))
        ):
            raise PreflightError(
                f"{spec.world_size} processes started by torchrun or SLURM must write under one run id; give every"
                " process the same --run-id NAME"
            )
        return
    if not any(environ.get(v) for v in MULTI_NODE_LAUNCHERS):
        raise PreflightError(
            f"--num-nodes {spec.num_nodes} needs a launcher on every node; alone this process would wait forever for"
            " the others: start each node with torchrun (docs/gpus.md: Several devices and nodes) or under SLURM"
        )
    if run_id is None:
        raise PreflightError(
            f"--num-nodes {spec.num_nodes}: every node must write under one run id; give each node the same --run-id"
            " NAME"
        )


def checkpoint_bytes(model: nn.Module, optimizer: str) -> int:
    """About what one checkpoint takes: the model's state plus the optimizer's per-parameter states."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return params * (1 + OPTIMIZER_STATES.get(optimizer, 2)) + buffers


def check_disk(model: nn.Module, spec: BenchmarkSpec, folders: list[Path]) -> None:
    """Room for one checkpoint in every checkpoint folder."""
    need = checkpoint_bytes(model, spec.recipe.optimizer)
    for folder in folders:
        existing = next(
            p for p in (Path(folder), *Path(folder).parents) if p.exists()
        )  # the run's folder appears at its first save
        free = shutil.disk_usage(existing).free
        if free < need:
            raise PreflightError(
                f"checkpoint folder {folder} has {free / 2**20:.1f} MiB free, one checkpoint of {spec.model} needs"
                f" about {need / 2**20:.1f} MiB; free some space or choose another --checkpoint-dir"
            )


def batchnorm_inputs(model: nn.Module, image_size: int) -> list[tuple[str, tuple[int, ...]]]:
    """(layer name, input shape) of every BatchNorm layer of `model` for one `image_size` image,
    from one forward pass in eval mode without gradients (nothing in the model changes)."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, name=name: seen.append((name, tuple(args[0].shape))))
        for name, m in layers
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return seen


def _values_per_channel(shape: tuple[int, ...]) -> int:
    """Values one image gives each channel of a BatchNorm input `(N, C, *spatial)`."""
    return int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1


def check_batchnorm(model: nn.Module, spec: BenchmarkSpec) -> None:
    """BatchNorm in training needs more than one value per channel: with one image per device, every
    BatchNorm layer's feature map must be larger than 1x1. Only a batch of one per device can fail,
    so only then does the probe run (one forward pass at the recipe's image size)."""
    per_device = spec.per_device_batch
    if per_device > 1 or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    size = spec.recipe.image_size
    inputs = batchnorm_inputs(model, size)
    if not inputs:  # no BatchNorm layer on the forward path
        return
    name, shape = min(inputs, key=lambda item: _values_per_channel(item[1]))
    if _values_per_channel(shape) > 1:
        return
    fixes = [f"--batch-size {2 * spec.world_size} or more ({2} images per device)"]
    larger = _smallest_trainable_size(model, size)
    if larger is not None:
        fixes.append(f"--image-size {larger} or more")
    raise PreflightError(
        f"{spec.model} at {size} px with {per_device} image per device gives its BatchNorm layer {name} one value per"
        f" channel (input {list(shape)}), which BatchNorm cannot train on; give {' or '.join(fixes)}"
    )


def _smallest_trainable_size(model: nn.Module, size: int, limit: int = 4) -> int | None:
    """The smallest image size above `size` (up to `limit` times it) at which one image gives every
    BatchNorm layer more than one value per channel (None: none there, or the model refuses other sizes)."""
    for larger in range(size + 1, size * limit + 1):
        try:
            inputs = batchnorm_inputs(model, larger)
        except (
            RuntimeError,
            AssertionError,
            ValueError,
        ):  # models built for one input size (position embeddings) refuse others
            return None
        if min((_values_per_channel(shape) for _, shape in inputs), default=2) > 1:
            return larger
    return None
