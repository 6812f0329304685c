"""Files that appear under their final name only once complete, and leave nothing behind on failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Yields a temporary name beside `path` to write; renames it to `path` on success, removes it
    on any failure (a full disk, an interrupted write) and lets the error through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
        tmp.unlink(missing_ok=True)  # renaming onto another link of the same file does nothing (POSIX) and leaves tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
