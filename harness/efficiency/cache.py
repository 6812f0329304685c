"""A small JSON file of measured values (FLOP counts, peaks), each under a key, kept under the cache folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.atomic import written_atomically


def json_cached(
    path: Path, key: str, compute: Callable[[], dict[str, Any]], valid: Callable[[dict[str, Any]], Any]
) -> Any:
    """`valid(value)` of the value stored under `key` in the JSON file `path`; when there is none (or
    `valid` raises TypeError or KeyError on an older layout), `compute()` it, store it and return
    `valid` of it. A file that cannot be read or written costs a new computation, nothing else."""
    try:
        known = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    if isinstance(known.get(key), dict):
        try:
            return valid(known[key])
        except (TypeError, KeyError):
            pass
    value = compute()
    try:
        with written_atomically(Path(path)) as tmp:
            tmp.write_text(json.dumps({**known, key: value}, indent=2, sort_keys=True))
    except OSError:
        pass
    return valid(value)
