"""Datasets by name: the generated ones (`synthetic`), Kvasir v2 (`kvasir`), or any ImageFolder."""

from __future__ import annotations

from pathlib import Path

from harness.data import kvasir, synthetic
from harness.errors import DataError


def locate(name: str, data_root: Path | None, cache_dir: Path) -> Path:
    """Where dataset `name` lives: generated into the cache, Kvasir under the data root, else the root itself."""
    if name == "kvasir-synthetic":  # the stand-in goes through the same Kvasir checks
        return kvasir.locate(synthetic.ensure(name, cache_dir))
    if name in synthetic.DATASETS:
        return synthetic.ensure(name, cache_dir)
    if name == "kvasir":
        return kvasir.locate(data_root)
    if data_root is None:
        raise DataError(
            f"dataset {name!r} is not generated; point --data-root (or TRAINBENCH_DATA_ROOT) at its ImageFolder"
            " directory"
        )
    return Path(data_root)


def num_classes(name: str) -> int | None:
    """Known class count of a named dataset without touching the disk (None: read from the folder)."""
    if name in synthetic.DATASETS:
        return len(synthetic.DATASETS[name].classes)
    if name == "kvasir":
        return len(kvasir.KVASIR_CLASSES)
    return None
