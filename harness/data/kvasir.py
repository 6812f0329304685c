"""Kvasir v2 (8 classes of GI endoscopy, 1000 JPEGs each) as a named dataset."""

from __future__ import annotations

from pathlib import Path

from harness.catalog import KVASIR_CLASSES
from harness.errors import DataError

FOLDER_NAME = "kvasir-dataset-v2"


def locate(data_root: Path | None) -> Path:
    """`DATA_ROOT/kvasir-dataset-v2/`, or DATA_ROOT itself when it holds the class folders."""
    if data_root is None:
        raise DataError(
            f"Kvasir v2 needs --data-root (or TRAINBENCH_DATA_ROOT): a folder holding {FOLDER_NAME}/ "
            "as unpacked from the official kvasir-dataset-v2.zip"
        )
    data_root = Path(data_root)
    candidates = [data_root / FOLDER_NAME, data_root]
    for folder in candidates:
        if folder.is_dir() and any((folder / c).is_dir() for c in KVASIR_CLASSES):
            check_classes(folder)
            return folder
    raise DataError(
        f"Kvasir v2 not found: looked for class folders in {', '.join(str(c) for c in candidates)}; unpack"
        " kvasir-dataset-v2.zip under --data-root"
    )


def check_classes(folder: Path) -> None:
    """All 8 Kvasir classes must be there; the error lists exactly which are missing."""
    missing = [c for c in KVASIR_CLASSES if not (folder / c).is_dir()]
    if missing:
        raise DataError(
            f"{folder} is not a complete Kvasir v2: missing class folder(s) {', '.join(missing)} (expected all of"
            f" {', '.join(KVASIR_CLASSES)})"
        )
