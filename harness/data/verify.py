"""A full decode of every image before any training, once per dataset version.

A truncated JPEG has a valid header, so the header check passes and the file fails mid-epoch, in a
loader worker, after training time was spent. This pass decodes every file (JPEG in draft mode,
which still reads every compressed byte) and lists every bad file in one error. A passing dataset
is remembered by its content fingerprint (paths, sizes, mtimes) under the cache folder, so the
pass costs once per dataset version, not once per run.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.data.fingerprint import DataIdentity
from harness.data.imagefolder import DataError, ImageIndex, image_problem

SHOWN = 10  # bad files named in the one-line error; the rest are counted


def verified_marker(cache_dir: Path, identity: DataIdentity) -> Path:
    return Path(cache_dir) / "verified" / f"{identity.fingerprint}.ok"


def verify_decodes(index: ImageIndex, identity: DataIdentity, cache_dir: Path) -> None:
    """Decode every sample of `index`; a DataError lists every file that fails."""
    marker = verified_marker(cache_dir, identity)
    if marker.is_file():
        return
    problems = [p for p in (image_problem(path, decode=True) for path, _ in index.samples) if p]
    if problems:
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise DataError(f"{len(problems)} of {len(index.samples)} images cannot be decoded: " + "; ".join(problems[:SHOWN]) + more)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{identity.path}\n{identity.files} files decoded\n")
    os.replace(tmp, marker)
