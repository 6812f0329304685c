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
count as a repeat of the same case.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.data import DataIdentity
from harness.results.record import RESULT_FILE
from harness.spec import BenchmarkSpec

FINGERPRINT_CHARS = 8  # shown in run ids; the record keeps 16


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

    def attempt_id(self, results_dir: Path) -> str:
        """The run id this run writes under: the first attempt without a record. An interrupted
        attempt has checkpoints but no record, so `--resume` finds it by the same rule."""
        attempt, run_id = 1, self.run_id
        while (Path(results_dir) / run_id / RESULT_FILE).exists():
            attempt += 1
            run_id = f"{self.run_id}-attempt{attempt}"
        return run_id
