"""ImageFolder scanning and validation with clear errors: the layout, not the pixels.

Bad input fails early with a message that names the problem and the fix: a missing folder, a file
given for a folder, no class folders, an empty class, a single class, a link loop. Hidden entries
(`.ipynb_checkpoints/`, `.DS_Store`, `._*` AppleDouble files) are never classes or samples. Links to
folders and files are followed (as torchvision's ImageFolder does); `walk` is the one traversal,
used by the scan and by the content fingerprint alike, so the data's identity covers exactly what
the loader reads. The images read are those of torchvision's ImageFolder (its IMG_EXTENSIONS; timm
reads fewer): not .gif, so a dataset gives the same samples here as there. Other files in the class
folders are left out, and named (`left_out_line`: one line before training, counts in the record),
never in silence. Decoding the pixels: `data.decode`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

# folder names of a pre-split dataset's parts (train/val/test each with class folders), never taken for classes:
# the part each name gives
SPLIT_FOLDER_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
PART_ORDER = ("train", "val", "test")
# torchvision's ImageFolder's IMG_EXTENSIONS, in its order
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageIndex:
    """The classes of an ImageFolder and its (path, label) samples in a stable order."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]
    left_out: tuple[str, ...] = ()  # files in the class folders that are no images of a kind read, relative to root
    # a pre-split layout's part of each sample (0 train, 1 val, 2 test; `data.split.split_of`); () for one ImageFolder
    part_of: tuple[int, ...] = ()
    part_folders: tuple[str, ...] = ()  # the folders of those parts, in train, val, test order

    @property
    def pre_split(self) -> bool:
        return bool(self.part_of)

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


def is_hidden(name: str) -> bool:
    """Dot entries: notebook checkpoints, Finder's .DS_Store, macOS AppleDouble `._x.jpg` files."""
    return name.startswith(".")


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden(Path(path).name)


def walk(folder: Path, _ancestors: frozenset[Path] = frozenset()) -> Iterator[tuple[Path, list[str]]]:
    """`folder` and every folder under it, each with its file names (both in name order; hidden
    folders left out), following links; a link back to a folder it lies in is a DataError."""
    real = folder.resolve()
    if real in _ancestors:
        raise DataError(
            f"{folder} is a link to {real}, a folder it lies in: a link loop, which would be read for ever; remove or"
            " replace the link"
        )
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:  # a folder this user cannot read
        raise DataError(
            f"folder {folder} cannot be read ({error.strerror or error}); give read access or remove it from the"
            " dataset"
        ) from None
    yield folder, [e.name for e in entries if e.is_file()]  # is_file and is_dir follow links
    for entry in entries:
        if entry.is_dir() and not is_hidden(entry.name):
            yield from walk(Path(entry.path), _ancestors | {real})


def scan(root: str | Path) -> ImageIndex:
    """Index an ImageFolder (one sub-folder per class) and validate its layout (pixels: see verify). A pre-split
    layout (`train/`, `val/`, `test/`, each with the class folders) is indexed as one dataset whose samples keep
    their part (`ImageIndex.part_of`), never as three classes."""
    root = Path(root)
    if root.is_file():
        raise DataError(
            f"{root} is a file, not a folder; pass an ImageFolder directory (one sub-folder of images per class)"
        )
    if not root.is_dir():
        raise DataError(
            f"data folder {root} does not exist; give an ImageFolder directory (one sub-folder per class): --data for"
            " `harness run`, --data-root for the benchmarks"
        )
    folders = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not is_hidden(entry.name))
    parts = [name for name in folders if name.lower() in SPLIT_FOLDER_NAMES]
    if parts:
        return _scan_pre_split(root, folders, parts)
    return _scan_classes(root, folders)


def _scan_pre_split(root: Path, folders: list[str], parts: list[str]) -> ImageIndex:
    """`train/`, `val/`, `test/` (or their other spellings), each an ImageFolder whose classes are train's."""
    if len(parts) < len(folders):
        others = ", ".join(name + "/" for name in folders if name not in parts)
        raise DataError(
            f"{root} holds {', '.join(p + '/' for p in parts)}, the parts of a pre-split dataset, beside {others}:"
            " neither one ImageFolder nor a pre-split one; move the class folders into the parts, or rename them"
        )
    roles = {SPLIT_FOLDER_NAMES[name.lower()]: name for name in parts}
    if len(roles) < len(parts) or set(roles) != set(PART_ORDER):
        raise DataError(
            f"{root} holds {', '.join(p + '/' for p in parts)}: a pre-split dataset needs exactly one each of train/,"
            " val/ and test/ (each with the same class folders); add the missing part, or merge the parts into one"
            " folder of class folders and let --split cut it"
        )
    indexed = [_scan_classes(root / roles[part], _class_folders(root / roles[part])) for part in PART_ORDER]
    classes = indexed[0].classes
    for part, index in zip(PART_ORDER[1:], indexed[1:], strict=True):
        unknown = sorted(set(index.classes) - set(classes))
        if unknown:
            raise DataError(
                f"{root / roles[part]} has class folder(s) {', '.join(unknown)} that {roles['train']}/ lacks; every"
                " class of val and test must be one the model trains on: add its training images or remove it"
            )
    samples, part_of, left_out = [], [], []
    for number, index in enumerate(indexed):
        samples += [(path, classes.index(index.classes[label])) for path, label in index.samples]
        part_of += [number] * len(index.samples)
        left_out += [f"{roles[PART_ORDER[number]]}/{name}" for name in index.left_out]
    return ImageIndex(
        root,
        classes,
        tuple(samples),
        tuple(left_out),
        tuple(part_of),
        tuple(roles[part] for part in PART_ORDER),
    )


def _class_folders(root: Path) -> list[str]:
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not is_hidden(entry.name))


def _scan_classes(root: Path, classes: list[str]) -> ImageIndex:
    """The ImageFolder at `root` whose class folders are `classes`."""
    if not classes:
        raise DataError(f"{root} has no class sub-folders; an ImageFolder needs one sub-folder of images per class")
    if len(classes) < 2:
        raise DataError(f"{root} has only one class ({classes[0]}); classification needs at least 2 class folders")
    above = frozenset({root.resolve()})  # a link inside a class folder back to the root is a loop too
    files = {
        c: [folder / name for folder, names in walk(root / c, above) for name in names if not is_hidden(name)]
        for c in classes
    }
    per_class = {
        c: [(str(path), label) for path in files[c] if is_image_file(path.name)] for label, c in enumerate(classes)
    }
    left_out = {
        c: sorted(path.relative_to(root).as_posix() for path in files[c] if not is_image_file(path.name))
        for c in classes
    }
    empty = [f"{c}{_holding(left_out[c])}" for c, items in per_class.items() if not items]
    if empty:
        raise DataError(
            f"class folder(s) with no images in {root}: {', '.join(empty)}; add images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or remove the empty folder(s)"
        )
    samples = tuple(item for c in classes for item in sorted(per_class[c]))
    return ImageIndex(root, tuple(classes), samples, tuple(name for c in classes for name in left_out[c]))


def left_out_counts(names: tuple[str, ...]) -> dict[str, int]:
    """Files by extension (lower case; "(none)" without one), most first."""
    counts = Counter(Path(name).suffix.lower() or "(none)" for name in names)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _holding(names: list[str]) -> str:
    if not names:
        return ""
    kinds = ", ".join(left_out_counts(tuple(names)))
    return f" ({len(names)} file{'s' if len(names) > 1 else ''} of a kind not read: {kinds})"


def left_out_line(index: ImageIndex) -> str | None:
    """One line naming the files of the class folders that are left out (None: there are none)."""
    if not index.left_out:
        return None
    counts = ", ".join(f"{kind}: {n}" for kind, n in left_out_counts(index.left_out).items())
    return (
        f"{len(index.left_out)} files in the class folders are not images of a kind read here and are left out "
        f"({counts}; e.g. {index.left_out[0]}); the kinds read are torchvision ImageFolder's: "
        f"{', '.join(IMAGE_EXTENSIONS)}; "
        "convert the images among them (e.g. to PNG) to train on them, or remove them"
    )
