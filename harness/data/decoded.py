"""The decoded-image cache: every image decoded once, kept as uint8 pixels in one memory-mapped file.

Decoding dominates a loader's cost on real photos (720x576 JPEGs, one core: a full PIL decode 125
img/s, the recipe's augmentations on decoded pixels 362 img/s). The cache decodes each image once
at the recipe's `needed_short_side` (`decode.load_rgb`: JPEG draft mode, then Lanczos; never
scaled up, so nothing the transforms use is lost; the uncached path reads files the same way, so
both give the same pixels), and appends its pixels to `pixels.u8`; `index.npy` holds each image's
offset, height and width. Every loader worker and every DDP rank maps the same file read-only, so
the page cache holds one copy. The folder is keyed by the data's content fingerprint, a digest of
the scan it was built from (every sample's path and label, in order: the index maps sample numbers
to pixels, so it is never used for another scan) and the stored size; it is built under a temporary
name and renamed into place, so a changed dataset, or a recipe that needs more pixels, gets a cache
of its own and a crash leaves no half-built one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import written_atomically
from harness.data.decode import load_rgb
from harness.data.fingerprint import DataIdentity
from harness.data.imagefolder import ImageIndex

PIXELS_FILE, INDEX_FILE, META_FILE = "pixels.u8", "index.npy", "meta.json"
IMAGES_PER_PROCESS = 256  # below this many images per process, decoding in this process is faster than starting a pool


@dataclass
class DecodedImages:
    """A built cache: `read(sample)` gives the sample's stored pixels. The memory map is opened on
    first read in each process (a pickled dataset carries only the folder to its workers)."""

    folder: Path
    short_side: int
    _index: np.ndarray | None = field(default=None, repr=False)
    _pixels: np.memmap | None = field(default=None, repr=False)

    def read(self, sample: int) -> np.ndarray:
        if self._pixels is None or self._index is None:  # set together, on first read
            self._index = np.load(self.folder / INDEX_FILE)
            self._pixels = np.memmap(self.folder / PIXELS_FILE, dtype=np.uint8, mode="r")
        offset, height, width = (int(v) for v in self._index[sample])
        return np.array(self._pixels[offset : offset + height * width * 3]).reshape(height, width, 3)

    __call__ = read  # a dataset's reader (`dataset.Reader`)

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "short_side": self.short_side, "_index": None, "_pixels": None}

    def meta(self) -> dict[str, Any]:
        """What the record says about the cache: where, the stored size, bytes, build time."""
        return json.loads((self.folder / META_FILE).read_text())


def scan_digest(index: ImageIndex) -> str:
    """8 hex digits of the scan's samples (path relative to the root, label), in order."""
    listed = "\n".join(f"{Path(path).relative_to(index.root).as_posix()}\0{label}" for path, label in index.samples)
    return hashlib.sha256(listed.encode()).hexdigest()[:8]


def cache_folder(cache_dir: Path, identity: DataIdentity, index: ImageIndex, short_side: int) -> Path:
    return Path(cache_dir) / "decoded" / f"{identity.fingerprint}-{scan_digest(index)}-short{short_side}"


def ensure(
    index: ImageIndex, identity: DataIdentity, short_side: int, cache_dir: Path, processes: int
) -> DecodedImages:
    """The cache of `index` at `short_side`, built now (with `processes` processes) if missing."""
    folder = cache_folder(cache_dir, identity, index, short_side)
    if not (folder / INDEX_FILE).is_file():
        _build(index, identity, short_side, folder, processes)
    return DecodedImages(folder, short_side)


def _build(index: ImageIndex, identity: DataIdentity, short_side: int, folder: Path, processes: int) -> None:
    paths = [path for path, _ in index.samples]
    print(f"[trainbench] decoding {len(paths)} images once into {folder} (shorter side {short_side} px)", flush=True)
    start = time.perf_counter()
    rows, offset = [], 0
    with written_atomically(folder) as tmp:
        tmp.mkdir()
        with (tmp / PIXELS_FILE).open("wb") as out:
            for pixels in _decode_all(paths, short_side, processes):
                rows.append((offset, pixels.shape[0], pixels.shape[1]))
                out.write(pixels.tobytes())
                offset += pixels.nbytes
        np.save(tmp / INDEX_FILE, np.array(rows, dtype=np.int64).reshape(-1, 3))
        meta = {
            "path": str(folder),
            "short_side": short_side,
            "images": len(paths),
            "bytes": offset,
            "build_s": round(time.perf_counter() - start, 2),
            "data": identity.fingerprint,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))


def _decode_all(paths: list[str], short_side: int, processes: int):
    if processes <= 1 or len(paths) < IMAGES_PER_PROCESS * 2:
        yield from (load_rgb(p, short_side) for p in paths)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        yield from pool.map(load_rgb, paths, [short_side] * len(paths), chunksize=32)
