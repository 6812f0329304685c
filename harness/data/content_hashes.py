"""Each file's SHA-256 over all its bytes, remembered on this machine by what `stat` says of the file.

The data's fingerprint hashes every byte of every image (an image edited in place keeps its name and
size, and an uncompressed one its first kilobytes too). Reading the whole dataset at every run's start,
and again in each DDP rank, would cost seconds to minutes, so the hashes are remembered in the cache
folder: one table per dataset folder, each entry with the file's size, inode, modification and change
times, as git's index does. An entry is used only while all four are unchanged. The kernel sets the
change time (ctime) on every write, and tools cannot set it back (`touch -d`, `cp -p` and `rsync -t`
set the modification time only), so a file written again is always read again. A file whose ctime is
within RACY_NS of the moment it is hashed gets no entry (it is read again next time), so a write in
the same timestamp tick as its hashing is never hidden. The table holds machine-local facts (inodes,
times); the hashes it gives are the same everywhere.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

from harness.atomic import written_atomically

CHUNK = 1 << 20
RACY_NS = 2 * 10**9  # a ctime this close to the hashing is not trusted later (FAT's 2 s timestamps, coarse clocks)
TABLES = "content-hashes"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def table_path(root: Path, cache_dir: Path) -> Path:
    """The table of the dataset folder `root` (resolved) under `cache_dir`."""
    return Path(cache_dir) / TABLES / f"{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.json"


def sizes_and_hashes(root: Path, names: Sequence[str], cache_dir: Path | None) -> list[tuple[int, str]]:
    """(size, SHA-256) of each file `root / name`: from the table under `cache_dir` where the file is
    unchanged since it was hashed, else read in full (the table then updated). No `cache_dir`: all read."""
    table = table_path(root, cache_dir) if cache_dir is not None else None
    known = _read(table) if table is not None else {}
    start = time.time_ns()
    kept: dict[str, list] = {}
    out = []
    for name in names:
        st = (root / name).stat()
        seen = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
        entry = known.get(name)
        digest = entry[4] if entry is not None and entry[:4] == seen else sha256_of(root / name)
        if start - st.st_ctime_ns > RACY_NS:
            kept[name] = [*seen, digest]
        out.append((st.st_size, digest))
    if table is not None and kept != known:
        try:
            with written_atomically(table) as tmp:
                tmp.write_text(json.dumps(kept))
        except OSError as error:  # the table only saves reading: a run never fails for it
            print(
                f"[trainbench] warning: the table of file hashes {table} could not be written ({error}); the"
                " dataset is read in full next time",
                flush=True,
            )
    return out


def _read(table: Path) -> dict[str, list]:
    """The remembered entries; none where the table is missing or cannot be read as one (it is written anew)."""
    try:
        known = json.loads(table.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}
