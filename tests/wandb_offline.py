"""Read a wandb offline run (`run-<id>.wandb`) back from disk, for the tests.

wandb >= 0.19 no longer ships a Python reader: the file is a LevelDB-style log (32 KiB blocks,
records framed by crc32/length/type, a ':W&B' header) of protobuf `Record`s, whose schema wandb
still ships (`wandb.proto.wandb_internal_pb2`). This reads the three things the tests check.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
FILE_HEADER = struct.Struct("<4sHB")  # ident ':W&B', magic 0xBEE1, version
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type (1 full, 2 first, 3 middle, 4 last)


def _payloads(data: bytes):
    ident, magic, _ = FILE_HEADER.unpack_from(data, 0)
    assert ident == b":W&B" and magic == 0xBEE1, "not a wandb run file"
    pos, pending = FILE_HEADER.size, b""
    while pos + RECORD_HEADER.size <= len(data):
        room = BLOCK - pos % BLOCK
        if room < RECORD_HEADER.size:  # block trailer padding
            pos += room
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:
            break
        chunk = data[pos + RECORD_HEADER.size : pos + RECORD_HEADER.size + length]
        pos += RECORD_HEADER.size + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            yield pending
            pending = b""


@dataclass
class OfflineRun:
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def read(run_dir: Path) -> OfflineRun:
    """The run, config, history rows and final summary of an offline run folder."""
    (path,) = Path(run_dir).glob("run-*.wandb")
    run = OfflineRun()
    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group, run.tags = record.run.display_name, record.run.run_group, list(record.run.tags)
            run.config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run.history.append(
                {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            run.summary.update(
                {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.summary.update}
            )
    return run
