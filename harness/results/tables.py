"""Comparison tables built from result records alone (they know nothing of Poutyne or Lightning).

- runs: one row per run, with the published figures beside them;
- pretrained vs random, side by side, with the difference;
- ours vs published, per metric, with the difference;
- precision x devices: accuracy, images/s, time, and time to the case's target accuracy;
- each seed's own table, in the write-up's shape.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from harness.catalog import SEEDS
from harness.results.record import CURVES_FILE, RunResult


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()


def fmt(value: float | None, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "diff_pct":
        return f"{100 * value:+.2f}"
    if kind == "diff":
        return f"{value:+.4f}"
    if kind == "rate":
        return f"{value:.1f}"
    return f"{value:.4f}"


def _devices(spec: dict) -> str:
    return f"{spec['devices']}x{spec['num_nodes']}" if spec.get("num_nodes", 1) > 1 else str(spec["devices"])


def time_to_target(record: RunResult) -> str:
    target = record.spec.get("target_accuracy")
    reached = record.time_to_target(target)
    if target is None:
        return "-"
    return f"epoch {reached[0]} ({reached[1]:.0f}s)" if reached else f"not reached ({100 * target:.1f}%)"


RUN_COLUMNS = ("run", "model", "dataset", "weights", "engine", "precision", "devices", "acc %", "loss", "F1", "top-3", "top-5", "images/s", "time s", "curves")


def runs_table(records: Sequence[RunResult]) -> Table:
    rows = []
    for r in sorted(records, key=lambda r: r.run_id):
        s, t = r.spec, r.test
        rows.append(
            (r.run_id, s["model"], s["dataset"], s["weights"], s["engine"], s["precision"], _devices(s),
             fmt(t.get("test_acc"), "pct"), fmt(t.get("test_loss")), fmt(t.get("test_f1")), fmt(t.get("test_top3")), fmt(t.get("test_top5")),
             fmt(r.train_images_per_s, "rate"), fmt(r.wall_time_s, "rate"), f"[plot]({r.run_id}/{CURVES_FILE})")
        )  # fmt: skip
    for key in sorted({r.benchmark for r in records}):
        seed = SEEDS.get(key)
        for published in seed.published if seed else ():
            m = published.as_dict()
            rows.append(
                (f"published: {seed.key}", seed.model, seed.dataset, published.weights, seed.engine, "-", "-",
                 fmt(m.get("test_acc"), "pct"), fmt(m.get("test_loss")), fmt(m.get("test_f1")), fmt(m.get("test_top3")), fmt(m.get("test_top5")), "-", "-", "-")
            )  # fmt: skip
    return Table("Runs and published figures", RUN_COLUMNS, tuple(rows))


def _case_key(record: RunResult) -> tuple:
    s = record.spec
    return (s["model"], s["dataset"], s["engine"], s["precision"], _devices(s))


def pretrained_vs_random(records: Sequence[RunResult]) -> Table:
    by_case: dict[tuple, dict[str, RunResult]] = {}
    for r in records:
        by_case.setdefault(_case_key(r), {})[r.spec["weights"]] = r
    rows = []
    for key, pair in sorted(by_case.items()):
        if {"pretrained", "random"} <= set(pair):
            p, q = pair["pretrained"].test, pair["random"].test
            rows.append((*key, fmt(p["test_acc"], "pct"), fmt(q["test_acc"], "pct"), fmt(p["test_acc"] - q["test_acc"], "diff_pct"),
                         fmt(p["test_loss"]), fmt(q["test_loss"]), fmt(p["test_loss"] - q["test_loss"], "diff")))  # fmt: skip
    columns = ("model", "dataset", "engine", "precision", "devices", "pretrained acc %", "random acc %", "diff (points)", "pretrained loss", "random loss", "diff")
    return Table("Pretrained vs random weights", columns, tuple(rows))


METRIC_LABELS = {"test_acc": "accuracy %", "test_loss": "loss", "test_f1": "F1", "test_top3": "top-3", "test_top5": "top-5"}


def ours_vs_published(records: Sequence[RunResult]) -> Table:
    rows = []
    for r in sorted(records, key=lambda r: r.run_id):
        seed = SEEDS.get(r.benchmark)
        published = seed.published_for(r.spec["weights"]) if seed else None
        if published is None:
            continue
        for metric, value in published.metrics:
            ours = r.test.get(metric)
            kind, dkind = ("pct", "diff_pct") if metric != "test_loss" else ("", "diff")
            rows.append((r.run_id, r.spec["profile"], METRIC_LABELS[metric], fmt(ours, kind), fmt(value, kind), fmt(None if ours is None else ours - value, dkind)))
    return Table("Ours vs published", ("run", "profile", "metric", "ours", "published", "diff"), tuple(rows))


def precision_devices(records: Sequence[RunResult]) -> Table:
    rows = []
    for r in sorted(records, key=lambda r: (r.benchmark, r.spec["engine"], r.spec["precision"], r.spec["devices"], r.spec["weights"])):
        s = r.spec
        rows.append((r.benchmark, s["engine"], s["weights"], s["precision"], _devices(s), fmt(r.test.get("test_acc"), "pct"),
                     fmt(r.train_images_per_s, "rate"), fmt(r.wall_time_s, "rate"), time_to_target(r)))  # fmt: skip
    columns = ("benchmark", "engine", "weights", "precision", "devices", "acc %", "train images/s", "time s", "time to target")
    return Table("Precision x devices", columns, tuple(rows))


def seed_tables(records: Sequence[RunResult]) -> list[Table]:
    """The write-ups' own tables, filled with our runs: seed 1 (model, accuracy, loss), seed 2 (+F1, top-3, top-5)."""
    tables = []
    for key, metrics in (("efficientnetv2", ("test_acc", "test_loss")), ("fastvit", ("test_acc", "test_loss", "test_f1", "test_top3", "test_top5"))):
        mine = [r for r in records if r.benchmark == key]
        if not mine:
            continue
        rows = []
        for r in sorted(mine, key=lambda r: r.run_id):
            label = f"{r.spec['model']}-{'Weights' if r.spec['weights'] == 'pretrained' else 'Random_weights'} ({r.spec['engine']}, {r.spec['precision']}, {_devices(r.spec)}dev)"
            rows.append((label, *(fmt(r.test.get(m), "pct" if m in ("test_acc",) else "") for m in metrics)))
        tables.append(Table(f"{SEEDS[key].title} (the write-up's table)", ("Model", *(METRIC_LABELS[m] for m in metrics)), tuple(rows)))
    return tables


def all_tables(records: Sequence[RunResult]) -> list[Table]:
    tables = [runs_table(records), pretrained_vs_random(records), ours_vs_published(records), precision_devices(records), *seed_tables(records)]
    return [t for t in tables if t.rows]
