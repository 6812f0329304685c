"""A dataset's identity: its resolved path, and a fingerprint of its content.

The fingerprint hashes every image file's path relative to the dataset folder, its size and the
SHA-256 of all its bytes, so it changes whenever a file is added, removed, renamed, replaced or
edited (an edit in place that keeps the size and the first kilobytes included), and it is the same
wherever the same files lie: on another node, or on a fresh machine that downloaded them again
(modification times and the absolute path would differ there, so they are not part of it; the path
is recorded beside it). Each file is read in full once per version: later runs on this machine take
its hash from the table in the cache folder while the file is unchanged (`content_hashes`), and the
decode pass takes the duplicates' hashes from here (`file_hashes`) instead of reading the files again.
It walks the folder the way the scan does (`imagefolder.walk`: links followed, loops refused), so a
class folder that is a link is part of the identity, as it is part of the training data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.content_hashes import sizes_and_hashes
from harness.data.imagefolder import is_hidden, is_image_file, walk


@dataclass(frozen=True)
class DataIdentity:
    path: str
    fingerprint: str
    files: int
    bytes: int
    classes: tuple[str, ...] = ()  # the top-level folders: what a resume compares, not part of the fingerprint
    file_hashes: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # SHA-256 by relative path

    def as_dict(self) -> dict[str, str | int | list[str]]:
        return {
            "path": self.path,
            "fingerprint": self.fingerprint,
            "files": self.files,
            "bytes": self.bytes,
            "classes": list(self.classes),
        }


def fingerprint(folder: Path, cache_dir: Path | None = None) -> DataIdentity:
    """The identity of the dataset in `folder`; hashes of unchanged files come from the table under
    `cache_dir` when given (`content_hashes`), else every file is read."""
    root = Path(folder).resolve()
    if not root.is_dir():  # a missing folder: the scan names the problem
        return DataIdentity(str(root), hashlib.sha256().hexdigest()[:16], 0, 0)
    names = [
        (directory / name).relative_to(root).as_posix()
        for directory, names in walk(root)
        for name in names
        if is_image_file(name)
    ]
    read = sizes_and_hashes(root, names, cache_dir)
    digest = hashlib.sha256()
    for name, (size, content) in zip(names, read, strict=True):
        digest.update(f"{name}\0{size}\0{content}\n".encode())
    classes = tuple(sorted(e.name for e in root.iterdir() if e.is_dir() and not is_hidden(e.name)))
    hashes = {name: content for name, (_, content) in zip(names, read, strict=True)}
    return DataIdentity(str(root), digest.hexdigest()[:16], len(names), sum(size for size, _ in read), classes, hashes)
