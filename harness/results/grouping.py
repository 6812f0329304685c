"""Which records belong together: repeats of one experiment, and runs that differ in one spec field alone."""

from __future__ import annotations

import json
from collections.abc import Sequence

from harness.results.record import RunResult
from harness.spec import BenchmarkSpec


def all_but(record: RunResult, field: str) -> str:
    """Everything that determines a result except the spec's `field` and the seed (data content
    included): runs with equal keys differ in that field (and seed) alone."""
    fields = BenchmarkSpec.from_dict(record.spec).result_fields()
    fields.pop(field)
    fields["recipe"].pop("seed")
    return json.dumps({"spec": fields, "data": record.data.get("fingerprint")}, sort_keys=True)


def differing_in(records: Sequence[RunResult], field: str) -> list[dict[str, list[RunResult]]]:
    """Groups of runs that differ in the spec's `field` (and seed) alone, keyed by its value;
    only groups with two values or more."""
    groups: dict[str, dict[str, list[RunResult]]] = {}
    for r in sorted(records, key=lambda r: r.run_id):
        groups.setdefault(all_but(r, field), {}).setdefault(str(r.spec[field]), []).append(r)
    return [group for group in groups.values() if len(group) > 1]


def experiments(records: Sequence[RunResult]) -> list[list[RunResult]]:
    """Records grouped into experiments: the same case, recipe (seed aside) and data; repeats differ in seed."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in sorted(records, key=lambda r: (r.gate_key, r.spec["recipe"]["seed"], r.run_id)):
        groups.setdefault((r.gate_key, str(r.data.get("fingerprint"))), []).append(r)
    return list(groups.values())
