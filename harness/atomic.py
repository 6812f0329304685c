"""Files and folders that appear under their final name only once complete, and leave nothing
behind on failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Yields a temporary name beside `path` to write a file or build a folder at; renames it to
    `path` on success, removes it on any failure (a full disk, an interrupted write) and lets the
    error through. A folder that another process completed at `path` first is kept, and this one
    removed: both were made from the same input (a cache, a generated dataset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _remove(tmp)
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError:
            if not (tmp.is_dir() and path.is_dir()):
                raise
        _remove(tmp)  # renaming onto another link of the same file does nothing (POSIX) and leaves tmp
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
