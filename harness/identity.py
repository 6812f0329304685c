"""Run identity: the readable case id plus a fingerprint of everything that determines the result.

The case id (`fastvit_t8-kvasir-lightning-bf16-2dev-pretrained`) names a cell of the matrix; the
same cell can be trained with another lr, seed, dataset or weights file. The fingerprint hashes the
spec's result fields (the whole recipe, profile, model, engine, precision, devices), the data's
content fingerprint and the weights' source (file sha256 or hub id), so two runs share a run id
only when they would train the same thing. Nothing machine-local enters it (absolute paths,
modification times): the same run on another node, or on a fresh machine resuming from the
bucket, has the same id.

Records and checkpoint folders key on the run id. Running an identical spec again never replaces
an earlier record: it becomes a new attempt beside it (`<run-id>-attempt2`, ...), which the tables
count as a repeat of the same case. Attempts are claimed, not guessed: a run takes the first attempt
with no record whose lock (`<results>/<run-id>/.attempt.lock`, an OS file lock through `filelock`)
it can hold, and holds it until it ends. Two runs started at once into one folder (or on two
machines sharing it) get two attempts; the OS releases the lock of a process that dies, so an
interrupted attempt is free again for `--resume`, which continues it by the same rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from harness.data.fingerprint import DataIdentity
from harness.results.record import RESULT_FILE
from harness.spec import BenchmarkSpec

FINGERPRINT_CHARS = 8  # shown in run ids; the record keeps 16
ATTEMPT_LOCK = ".attempt.lock"


@dataclass(frozen=True)
class RunIdentity:
    case_id: str
    fingerprint: str
    data: DataIdentity
    weights: dict[str, str]

    @classmethod
    def of(cls, spec: BenchmarkSpec, data: DataIdentity, weights: dict[str, str]) -> RunIdentity:
        portable = {k: v for k, v in weights.items() if k != "path"}  # the file's sha256 names it wherever it lies
        content = {"spec": spec.result_fields(), "data": data.fingerprint, "weights": portable}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
        return cls(spec.id, digest[:16], data, weights)

    @property
    def run_id(self) -> str:
        return f"{self.case_id}-{self.fingerprint[:FINGERPRINT_CHARS]}"

    def attempt(self, number: int) -> str:
        return self.run_id if number == 1 else f"{self.run_id}-attempt{number}"

    @contextmanager
    def claimed_attempt(self, results_dir: Path) -> Iterator[str]:
        """The run id this run writes under, held for as long as the context lasts: the first attempt
        without a record that no other process holds (module docstring). An interrupted attempt has
        checkpoints but no record and no holder, so `--resume` finds it by the same rule."""
        number = 1
        while True:
            run_id = self.attempt(number)
            folder = Path(results_dir) / run_id
            if not (folder / RESULT_FILE).exists():
                folder.mkdir(parents=True, exist_ok=True)
                lock = FileLock(folder / ATTEMPT_LOCK, timeout=0)  # Timeout at once when held
                try:
                    lock.acquire()
                except Timeout:  # another run holds this attempt
                    number += 1
                    continue
                try:
                    if not (folder / RESULT_FILE).exists():  # its holder may have finished just before
                        yield run_id
                        return
                finally:
                    lock.release()
            number += 1
