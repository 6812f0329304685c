"""Offline stand-in for hub weights: pretrain an architecture on the generated source dataset.

In the smoke profile, when no weights file exists and the hub is out of reach, `pretrained` would
otherwise be meaningless. Instead the harness trains the same architecture once on
`synthetic-source` (other shapes, same generator) through the Poutyne engine and saves the weights
where timm's file loading finds them. Pretrained vs random is then a real transfer comparison.
"""

from __future__ import annotations

from pathlib import Path

from harness import data, engines, models
from harness.artifacts import RunArtifacts
from harness.engines import TrainingJob
from harness.hardware import detect
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec

SOURCE_DATASET = "synthetic-source"
SOURCE_EPOCHS = 6


def source_spec(spec: BenchmarkSpec) -> BenchmarkSpec:
    """The pretraining case: same model and recipe, on the source data, single process fp32."""
    return spec.replace(
        dataset=SOURCE_DATASET,
        engine="poutyne",
        weights="random",
        precision="32-true",
        devices=1,
        num_nodes=1,
        thresholds=(),
        benchmark="source-pretraining",
        target_accuracy=None,
        target_source=None,
    ).with_recipe(epochs=SOURCE_EPOCHS)


def generate(spec: BenchmarkSpec, settings: RunSettings) -> Path:
    """Train `spec.model` on the source dataset and save it as `<weights_dir>/<model>.safetensors`."""
    source = source_spec(spec)
    print(f"[trainbench] no weights file for {spec.model}: pretraining it on {SOURCE_DATASET} ({SOURCE_EPOCHS} epochs), once", flush=True)
    bundle = data.for_spec(source, settings.data_root, settings.cache_dir, models.data_stats(source.model))
    model = models.create(source.model, bundle.num_classes, "random", settings.resolved_weights_dir, allow_hub=False)
    run_dir = settings.cache_dir / "pretraining" / source.id
    quiet = settings.replace(wandb="off", checkpoint_dirs=(), gcs_bucket=None, resume=False)
    job = TrainingJob(source, model, bundle, source.id, run_dir, quiet, detect(), RunArtifacts(source, quiet, source.id, fingerprint=""))
    output = engines.get("poutyne").fit(job)
    path = settings.resolved_weights_dir / f"{spec.model}.safetensors"
    models.save_weights(
        model,
        path,
        {
            "generated_by": "trainbench source pretraining",
            "dataset": SOURCE_DATASET,
            "epochs": str(SOURCE_EPOCHS),
            "image_size": str(source.recipe.image_size),
            "source_test_acc": f"{output.test.get('test_acc', float('nan')):.4f}",
        },
    )
    return path
