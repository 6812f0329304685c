"""A full decode of every image before any training, once per dataset version.

A truncated JPEG has a valid header, so the header check passes and the file fails mid-epoch, in a
loader worker, after training time was spent. This pass decodes every file (JPEG in draft mode,
which still reads every compressed byte) and lists every bad file in one error. The fingerprint
hashed every file's bytes already; those hashes find the byte-identical images (`duplicates`). A
passing dataset is remembered by its content fingerprint under the cache folder, with its duplicate
groups, so the pass costs once per dataset version, not once per run.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.atomic import written_atomically
from harness.data import duplicates
from harness.data.decode import image_problem
from harness.data.fingerprint import DataIdentity
from harness.data.imagefolder import ImageIndex
from harness.errors import DataError

SHOWN = 10  # bad files named in the one-line error; the rest are counted


def verified_marker(cache_dir: Path, identity: DataIdentity) -> Path:
    return Path(cache_dir) / "verified" / f"{identity.fingerprint}.json"


def verify_decodes(index: ImageIndex, identity: DataIdentity, cache_dir: Path) -> list[list[int]]:
    """Decode every sample of `index`; a DataError lists every file that fails. Returns the groups of
    byte-identical samples (positions in `index.samples`), by the hashes in `identity`."""
    marker = verified_marker(cache_dir, identity)
    relative = [Path(path).relative_to(index.root).as_posix() for path, _ in index.samples]
    if marker.is_file():
        position = {name: i for i, name in enumerate(relative)}
        return [[position[name] for name in group] for group in json.loads(marker.read_text())["duplicates"]]
    problems = [p for p in (image_problem(path, decode=True) for path, _ in index.samples) if p]
    if problems:
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise DataError(
            f"{len(problems)} of {len(index.samples)} images cannot be decoded: " + "; ".join(problems[:SHOWN]) + more
        )
    found = duplicates.groups([identity.file_hashes[name] for name in relative])
    with written_atomically(marker) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "path": identity.path,
                    "files_decoded": identity.files,
                    "duplicates": [[relative[i] for i in g] for g in found],
                },
                indent=1,
            )
        )
    return found
