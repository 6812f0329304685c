"""Data: from a dataset name to split, transformed datasets and DataLoaders."""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from harness.data import decoded, duplicates
from harness.data.dataset import FileReader, ImageClassificationDataset
from harness.data.decoded import DecodedImages
from harness.data.device import DeviceNormalize, Stats
from harness.data.fingerprint import DataIdentity, fingerprint
from harness.data.imagefolder import ImageIndex, scan
from harness.data.named import locate
from harness.data.split import SplitIndices, split_of
from harness.data.transforms import eval_transform, needed_short_side, train_transform
from harness.data.verify import verify_decodes
from harness.hardware import loader_workers, machine_cores
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, Recipe


@dataclass(frozen=True)
class DataBundle:
    """The three parts of one dataset, ready for any engine: uint8 samples, and the model's
    mean/std that `normalizer` applies on the device."""

    classes: tuple[str, ...]
    train: ImageClassificationDataset
    val: ImageClassificationDataset
    test: ImageClassificationDataset
    stats: Stats
    unused: int = 0  # images the split leaves out on purpose (a count split, fractions under 1: see data.split)
    decoded: DecodedImages | None = None  # the decoded-image cache the parts read from (None: the files)
    split_folders: tuple[str, ...] = ()  # a pre-split layout's train, val and test folders (the recipe's split unused)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalizer(self, channels_last: bool = False) -> DeviceNormalize:
        return DeviceNormalize(self.stats, channels_last)


def check(folder: Path, recipe: Recipe, cache_dir: Path, identity: DataIdentity | None = None) -> DataIdentity:
    """Before any training: the layout, the split and every image's pixels are usable; returns the
    data's identity. The decode pass (which also finds byte-identical images) is remembered per
    content fingerprint (see verify). `identity`: the folder's fingerprint, when the caller has it."""
    identity = identity or fingerprint(folder, cache_dir)
    index = scan(folder)
    split_of(index, recipe.split, recipe.seed)
    verify_decodes(index, identity, cache_dir)
    return identity


def duplicate_summary(bundle: DataBundle, identity: DataIdentity, cache_dir: Path) -> dict | None:
    """The byte-identical images of the bundle's dataset, counted within and across classes and
    split parts (`duplicates.summary`); None when there are none. The groups come from the decode
    pass's marker (`check` runs first)."""
    index = bundle.train.index
    found = verify_decodes(index, identity, cache_dir)
    if not found:
        return None
    parts = {"train": bundle.train.indices, "val": bundle.val.indices, "test": bundle.test.indices}
    return duplicates.summary(found, index.labels, [path for path, _ in index.samples], parts)


def decoded_images(
    folder: Path, recipe: Recipe, identity: DataIdentity, cache_dir: Path, processes: int
) -> DecodedImages:
    """The decoded-image cache of `folder` at the size `recipe` needs, built once (see decoded)."""
    return decoded.ensure(scan(folder), identity, needed_short_side(recipe), cache_dir, processes)


def build(folder: Path, recipe: Recipe, stats: Stats, images: DecodedImages | None = None) -> DataBundle:
    """Scan, split (seeded, stratified) and attach the recipe's transforms; pixels come from
    `images` (the decoded cache) when given, else from the files at the size the cache stores."""
    index: ImageIndex = scan(folder)
    parts: SplitIndices = split_of(index, recipe.split, recipe.seed)
    train_tf, eval_tf = train_transform(recipe), eval_transform(recipe)
    read = images if images is not None else FileReader(index, needed_short_side(recipe))
    return DataBundle(
        classes=index.classes,
        train=ImageClassificationDataset(index, parts.train, train_tf, recipe.seed, read),
        val=ImageClassificationDataset(index, parts.val, eval_tf, recipe.seed, read),
        test=ImageClassificationDataset(index, parts.test, eval_tf, recipe.seed, read),
        stats=stats,
        unused=parts.unused,
        decoded=images,
        split_folders=index.part_folders,
    )


class EpochSampler(DistributedSampler):
    """Shuffles by (seed, epoch) like DistributedSampler, and yields `(index, epoch)` keys.

    The epoch in each key seeds that sample's augmentation (see ImageClassificationDataset), so an
    epoch's batches and augmentations are a pure function of seed and epoch: a resumed run sees
    exactly what an uninterrupted one did. Lightning calls `set_epoch` itself; Poutyne's engine
    calls it from a callback. With one replica it is a seeded per-epoch shuffle.
    """

    def __iter__(self):
        return ((i, self.epoch) for i in super().__iter__())

    def padding(self, first: int, count: int) -> torch.Tensor | None:
        """Which of this rank's samples `first` .. `first + count - 1` (positions in its shard) are
        DistributedSampler's padding: repeats of the epoch's first images, added so every rank gets
        as many. Rank r's k-th sample is position r + k x replicas of the epoch's padded list, whose
        positions from len(dataset) on are the repeats. None when this epoch has no padding."""
        images = len(cast(Sized, self.dataset))  # a DistributedSampler's dataset is sized; torch types it Dataset
        if self.total_size == images:
            return None
        positions = self.rank + (first + torch.arange(count)) * self.num_replicas
        return positions >= images


def train_sampler(dataset: Dataset, recipe: Recipe, *, world_size: int = 1, rank: int = 0) -> EpochSampler:
    return EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=recipe.seed)


def loader(
    dataset: Dataset,
    recipe: Recipe,
    *,
    workers: int,
    sampler: Sampler | None = None,
    processes: int = 1,
    train: bool = False,
) -> DataLoader:
    """A DataLoader of the recipe's global batch shared by `processes`, with `workers` loader
    processes; order comes from `sampler` (None: in order). Each sample's augmentation is seeded by
    (seed, epoch, sample), so the worker count changes speed, never results.

    A training epoch whose last batch would hold a single image drops it: BatchNorm cannot
    normalise one image, and every engine and process makes the same choice (each rank's shard has
    the same length). Larger incomplete batches are kept.
    """
    batch_size = recipe.batch_size // processes
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        # the datasets and samplers here are sized (torch types them without __len__)
        drop_last=train and len(cast(Sized, sampler if sampler is not None else dataset)) % batch_size == 1,
    )


def images_in(loader: DataLoader, limit: int | None = None, processes: int = 1) -> int:
    """Images one pass over `loader` yields in all `processes` together (its first `limit` batches)."""
    samples = len(cast(Sized, loader.sampler))  # `loader`'s samplers are sized (torch types it Iterable)
    batch_size = loader.batch_size
    assert batch_size is not None  # `loader` always batches (no batch_sampler of its own)
    if loader.drop_last:
        samples -= samples % batch_size
    if limit is not None:
        samples = min(samples, limit * batch_size)
    return samples * processes


def workers_for(spec: BenchmarkSpec, settings: RunSettings) -> int:
    """Loader workers per training process: --workers when given, else what the machine has for
    each of this node's training processes (hardware.loader_workers; none when training on CPUs)."""
    return settings.workers if settings.workers is not None else loader_workers(spec.processes_per_node)


def prep_processes(spec: BenchmarkSpec, settings: RunSettings) -> int:
    """Processes for work before training (the decode pass; the loader measured alone): --workers
    when given (a nightly task's share of its node), else this node's cores shared by its training
    processes, since under torchrun each of them prepares at once."""
    return settings.workers if settings.workers is not None else max(1, machine_cores() // spec.processes_per_node)


def for_spec(
    spec: BenchmarkSpec, settings: RunSettings, stats: Stats, identity: DataIdentity | None = None
) -> DataBundle:
    """The DataBundle a spec trains on: its dataset located (or generated), split and transformed,
    read through the decoded-image cache unless settings turn it off (`identity`: the data's
    fingerprint when the caller has it)."""
    folder = locate(spec.dataset, settings.data_root, settings.cache_dir)
    images = None
    if settings.decode_cache:
        identity = identity or fingerprint(folder, settings.cache_dir)
        images = decoded_images(folder, spec.recipe, identity, settings.cache_dir, prep_processes(spec, settings))
    return build(folder, spec.recipe, stats, images)
