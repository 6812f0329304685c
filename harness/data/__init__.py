"""Data: from a dataset name to split, transformed datasets and DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from harness.data import kvasir, synthetic
from harness.data.imagefolder import DataError, ImageClassificationDataset, ImageIndex, scan
from harness.data.split import SplitIndices, stratified_split
from harness.data.transforms import Stats, eval_transform, train_transform
from harness.spec import BenchmarkSpec, Recipe

__all__ = ["DataBundle", "DataError", "build", "for_spec", "loader", "locate", "num_classes"]


@dataclass(frozen=True)
class DataBundle:
    """The three parts of one dataset, ready for any engine."""

    classes: tuple[str, ...]
    train: ImageClassificationDataset
    val: ImageClassificationDataset
    test: ImageClassificationDataset

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def locate(name: str, data_root: Path | None, cache_dir: Path) -> Path:
    """Where dataset `name` lives: generated into the cache, Kvasir under the data root, else the root itself."""
    if name == "kvasir-synthetic":  # the stand-in goes through the same Kvasir checks
        return kvasir.locate(synthetic.ensure(name, cache_dir))
    if name in synthetic.DATASETS:
        return synthetic.ensure(name, cache_dir)
    if name == "kvasir":
        return kvasir.locate(data_root)
    if data_root is None:
        raise DataError(f"dataset {name!r} is not generated; point --data-root (or TRAINBENCH_DATA_ROOT) at its ImageFolder directory")
    return Path(data_root)


def num_classes(name: str) -> int | None:
    """Known class count of a named dataset without touching the disk (None: read from the folder)."""
    if name in synthetic.DATASETS:
        return len(synthetic.DATASETS[name].classes)
    if name == "kvasir":
        return len(kvasir.KVASIR_CLASSES)
    return None


def build(folder: Path, recipe: Recipe, stats: Stats) -> DataBundle:
    """Scan, split (seeded, stratified) and attach the recipe's transforms."""
    index: ImageIndex = scan(folder)
    parts: SplitIndices = stratified_split(index.labels, recipe.split, recipe.seed)
    train_tf, eval_tf = train_transform(recipe, stats), eval_transform(recipe, stats)
    return DataBundle(
        classes=index.classes,
        train=ImageClassificationDataset(index, parts.train, train_tf),
        val=ImageClassificationDataset(index, parts.val, eval_tf),
        test=ImageClassificationDataset(index, parts.test, eval_tf),
    )


def _seed_worker(worker_id: int) -> None:
    """Reseed each worker's copy of the albumentations pipeline from torch's per-worker seed.

    torch derives that seed from the loader's seeded generator, per epoch and worker, so the
    augmentations are reproducible yet differ across workers and epochs.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    worker = get_worker_info()
    if worker is not None and hasattr(worker.dataset, "transform"):
        worker.dataset.transform.set_random_seed(seed)


def loader(
    dataset: Dataset,
    recipe: Recipe,
    *,
    train: bool,
    sampler: Sampler | None = None,
    batch_size: int | None = None,
) -> DataLoader:
    """A DataLoader as the recipe says (batch size, workers), seeded so that shuffling repeats."""
    generator = torch.Generator()
    generator.manual_seed(recipe.seed)
    return DataLoader(
        dataset,
        batch_size=batch_size or recipe.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=recipe.workers,
        persistent_workers=recipe.workers > 0,
        worker_init_fn=_seed_worker,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )


def for_spec(spec: BenchmarkSpec, data_root: Path | None, cache_dir: Path, stats: Stats) -> DataBundle:
    """The DataBundle a spec trains on: its dataset located (or generated), split and transformed."""
    return build(locate(spec.dataset, data_root, cache_dir), spec.recipe, stats)
