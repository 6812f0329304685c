"""Files and folders that appear under their final name only once complete, and leave nothing
behind on failure; and the check that a folder can be written at all, before any work."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import PreflightError


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Yields a temporary name beside `path` to write a file or build a folder at; renames it to
    `path` on success, removes it on any failure (a full disk, an interrupted write) and lets the
    error through. A folder that another process completed at `path` first is kept, and this one
    removed: both were made from the same input (a cache, a generated dataset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )  # unique even for two hosts with one pid sharing a folder
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


def check_writable(folder: Path, what: str, option: str, make: bool = True) -> None:
    """`folder` exists or can be made, and a file can be written in it. With `make` False nothing is made or
    written (a dry run): the folder, or the nearest one above it that exists, must let this user write."""
    try:
        if not make:
            existing = next(p for p in (Path(folder).absolute(), *Path(folder).absolute().parents) if p.exists())
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"{existing} is not writable")
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".trainbench-probe-"):
            pass
    except OSError as error:
        raise PreflightError(
            f"{what} {folder} cannot be written ({error.strerror or error}); choose another {option}"
        ) from None
