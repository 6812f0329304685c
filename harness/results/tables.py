"""Comparison tables built from result records alone (they know nothing of Poutyne or Lightning).

- runs: one row per run (its recipe in one column), with the published figures beside them;
- pretrained vs random: only runs whose specs differ in weights alone, side by side;
- ours vs published: full-profile reproductions of a workflow's unchanged recipe, and separately the
  other runs of a workflow, labelled with why they are not comparable;
- precision x devices: accuracy, images/s, time, and time to a named target accuracy;
- each workflow's own table, in the write-up's shape.

A run that did not finish (`RunResult.ok` false: it diverged) shows its status in place of its
metrics and never enters a mean or a difference (`finished`); the counts say how many were left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from harness.catalog import WORKFLOWS, Workflow
from harness.results.grouping import differing_in, experiments
from harness.results.record import CURVES_FILE, RunResult, finished
from harness.results.stats import Summary, difference, summaries, summarize
from harness.results.table import Cell, Link, Table
from harness.spec import BenchmarkSpec


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


def metric_cell(record: RunResult, metric: str, kind: str = "") -> str:
    """A run's test metric, or its status when it did not finish."""
    return fmt(record.test.get(metric), kind) if record.ok else record.status


def _devices(spec: dict[str, Any]) -> str:
    return f"{spec['devices']}x{spec['num_nodes']}" if spec.get("num_nodes", 1) > 1 else str(spec["devices"])


def recipe_summary(spec: dict[str, Any], seeds: bool = True) -> str:
    """The recipe fields a sweep varies, in one cell: `lr 0.001 · batch 64 · 40 ep · 384 px · seed 42`
    (without the seed for rows that pool seeds)."""
    r = spec["recipe"]
    text = f"lr {r['lr']:g} · batch {r['batch_size']} · {r['epochs']} ep · {r['image_size']} px"
    return f"{text} · seed {r['seed']}" if seeds else text


def target_cell(record: RunResult) -> str:
    target, source = record.spec.get("target_accuracy"), record.spec.get("target_source")
    return (
        f"{100 * target:.2f} % ({source or 'origin not recorded'})"
        if target is not None
        else "none (no published figure; give --target-acc)"
    )


def time_to_target_cell(record: RunResult) -> str:
    target = record.spec.get("target_accuracy")
    if target is None:
        return "-"
    reached = record.time_to_target(target)
    return f"epoch {reached[0]} ({reached[1]:.0f}s)" if reached else "not reached"


RUN_COLUMNS = (
    "run",
    "model",
    "dataset",
    "profile",
    "weights",
    "engine",
    "precision",
    "devices",
    "recipe",
    "acc %",
    "loss",
    "F1",
    "top-3",
    "top-5",
    "images/s",
    "steady images/s",
    "time s",
    "curves",
    "GFLOPs/image",
    "TFLOP/s",
    "MFU %",
)


def curves_link(record: RunResult, records_dir: str) -> Cell:
    """A link to the run's learning curves (`records_dir` relative to where the table is written),
    or `-` for a run without epochs, which has no curves."""
    if not record.history:
        return "-"
    folder = "" if records_dir == "." else f"{records_dir}/"
    return Link("plot", f"{folder}{record.run_id}/{CURVES_FILE}", anchor=f"curves-{record.run_id}")


def runs_table(records: Sequence[RunResult], records_dir: str = ".") -> Table:
    rows: list[tuple[Cell, ...]] = []
    for r in sorted(records, key=lambda r: r.run_id):
        s = r.spec
        rows.append(
            (
                r.run_id,
                s["model"],
                s["dataset"],
                s["profile"],
                s["weights"],
                s["engine"],
                s["precision"],
                _devices(s),
                recipe_summary(s),
                metric_cell(r, "test_acc", "pct"),
                metric_cell(r, "test_loss"),
                metric_cell(r, "test_f1"),
                metric_cell(r, "test_top3"),
                metric_cell(r, "test_top5"),
                fmt(r.train_images_per_s, "rate"),
                fmt(r.steady_images_per_s, "rate"),
                fmt(r.wall_time_s, "rate"),
                curves_link(r, records_dir),
                _gflops(r.flops.get("train_per_image")),
                _tflops(r.achieved_tflops),
                fmt(r.mfu.get("measured"), "pct"),
            )
        )
    for key in sorted({r.benchmark for r in records}):
        workflow = WORKFLOWS.get(key)
        if workflow is None:
            continue
        for published in workflow.published:
            m = published.as_dict()
            rows.append(
                (
                    f"published: {workflow.key}",
                    workflow.model,
                    workflow.dataset,
                    "full",
                    published.weights,
                    workflow.engine,
                    "-",
                    "-",
                    recipe_summary({"recipe": dataclasses.asdict(workflow.recipe)}),
                    fmt(m.get("test_acc"), "pct"),
                    fmt(m.get("test_loss")),
                    fmt(m.get("test_f1")),
                    fmt(m.get("test_top3")),
                    fmt(m.get("test_top5")),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                )
            )
    return Table("Runs and published figures", RUN_COLUMNS, tuple(rows))


def _values(records: Sequence[RunResult], metric: str) -> list[float]:
    return [r.test[metric] for r in finished(records) if r.test.get(metric) is not None]


def _counted(runs: Sequence[RunResult]) -> str:
    """`3`, or `2 (+1 diverged)` when some runs did not finish."""
    left_out = len(runs) - len(finished(runs))
    return f"{len(runs) - left_out}" + (f" (+{left_out} diverged)" if left_out else "")


def _shown(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> str:
    return summarize(values).show(scale, digits) if values else "diverged"


def pretrained_vs_random(records: Sequence[RunResult]) -> Table:
    """Pairs only runs whose specs differ in weights (and seed) alone; repeats over seeds give each
    difference a 95 % Welch interval and p-value."""
    rows = []
    for pair in differing_in(records, "weights"):
        pre, rnd = pair["pretrained"], pair["random"]
        s = pre[0].spec
        values = {
            (side, m): _values(runs, m)
            for side, runs in (("pre", pre), ("rnd", rnd))
            for m in ("test_acc", "test_loss")
        }
        both = all(values.values())
        acc = difference(values["pre", "test_acc"], values["rnd", "test_acc"]).show(100) if both else "-"
        loss = difference(values["pre", "test_loss"], values["rnd", "test_loss"]).show(digits=4) if both else "-"
        rows.append(
            (
                s["model"],
                s["dataset"],
                s["profile"],
                s["engine"],
                s["precision"],
                _devices(s),
                recipe_summary(s, seeds=False),
                f"{_counted(pre)}/{_counted(rnd)}",
                _shown(values["pre", "test_acc"], 100, 2),
                _shown(values["rnd", "test_acc"], 100, 2),
                acc,
                _shown(values["pre", "test_loss"]),
                _shown(values["rnd", "test_loss"]),
                loss,
            )
        )
    columns = (
        "model",
        "dataset",
        "profile",
        "engine",
        "precision",
        "devices",
        "recipe",
        "runs (pre/rnd)",
        "pretrained acc %",
        "random acc %",
        "diff (points)",
        "pretrained loss",
        "random loss",
        "diff",
    )
    return Table(
        "Pretrained vs random weights",
        columns,
        tuple(sorted(rows)),
        "Each row pairs runs that differ in their weights (and seed) alone: same recipe, profile and data.",
    )


CASE_METRICS = ("test_acc", "test_loss", "test_f1", "test_top3", "test_top5")


def _published_cells(group: Sequence[RunResult], acc: Summary | None) -> tuple[str, str]:
    """The published accuracy beside a case, and whether it lies inside the case's spread."""
    first = group[0]
    workflow = WORKFLOWS.get(first.benchmark)
    if workflow is None:
        return "-", "-"
    published = workflow.published_for(first.spec["weights"])
    value = published.as_dict().get("test_acc") if published else None
    if value is None:
        return "-", "-"
    why = not_comparable_because(first, workflow)
    inside = ("yes" if acc.contains(value) else "no") if acc is not None and why is None else f"not comparable: {why}"
    return fmt(value, "pct"), inside


def _case_cell(summary: dict[str, Summary], metric: str, any_finished: bool) -> str:
    if metric in summary:
        return summary[metric].show(100, 2) if metric == "test_acc" else summary[metric].show()
    return "-" if any_finished else "diverged"


def custom_metrics_of(records: Sequence[RunResult]) -> dict[str, bool]:
    """The custom metrics (spec.metrics) the records report, in the order first met: name -> higher is better."""
    found: dict[str, bool] = {}
    for record in records:
        for metric in record.spec.get("metrics", ()):
            found.setdefault(metric["name"], metric["higher_is_better"])
    return found


def cases_table(records: Sequence[RunResult]) -> Table:
    """One row per experiment: mean ± standard deviation (n) of every metric over its seeds, the
    custom metrics of any record in columns of their own (`auroc ↑`: higher is better)."""
    custom = custom_metrics_of(records)
    metrics = (*CASE_METRICS, *(f"test_{name}" for name in custom))
    rows = []
    for group in experiments(records):
        s, done = group[0].spec, finished(group)
        summary = summaries([r.test for r in done], metrics)
        steady = [r.steady_images_per_s for r in done if r.steady_images_per_s is not None]
        cells = [_case_cell(summary, m, bool(done)) for m in metrics]
        rows.append(
            (
                group[0].case_id,
                recipe_summary(s, seeds=False),
                ",".join(str(r.spec["recipe"]["seed"]) for r in group),
                _counted(group),
                *cells,
                summarize(steady).show(digits=1) if steady else "-",
                *_published_cells(group, summary.get("test_acc")),
            )
        )
    columns = (
        "case",
        "recipe",
        "seeds",
        "n",
        "acc %",
        "loss",
        "F1",
        "top-3",
        "top-5",
        *(f"{name} {'↑' if higher else '↓'}" for name, higher in custom.items()),
        "steady images/s",
        "published acc %",
        "published inside spread",
    )
    return Table(
        "Cases over seeds",
        columns,
        tuple(rows),
        "Mean ± sample standard deviation over the seeds of each case (n runs); one run shows its value alone. Diverged"
        " runs are counted apart and left out of the means.",
    )


METRIC_LABELS = {
    "test_acc": "accuracy %",
    "test_loss": "loss",
    "test_f1": "F1",
    "test_top3": "top-3",
    "test_top5": "top-5",
}


def not_comparable_because(record: RunResult, workflow: Workflow) -> str | None:
    """Why a run of `workflow` is not a reproduction of its published figures (None: it is one)."""
    spec = BenchmarkSpec.from_dict(record.spec)
    if spec.profile != "full":
        return f"{spec.profile} profile: generated data, {spec.recipe.image_size} px, {spec.recipe.epochs} epochs"
    if spec.dataset != workflow.dataset:
        return f"dataset {spec.dataset}, not {workflow.dataset}"
    names = [f.name for f in dataclasses.fields(spec.recipe)]
    changed = [
        f"{n} {getattr(spec.recipe, n)} (published {getattr(workflow.recipe, n)})"
        for n in names
        if getattr(spec.recipe, n) != getattr(workflow.recipe, n)
    ]
    return "recipe changed: " + ", ".join(changed) if changed else None


def _against_published(records: Sequence[RunResult], reproductions: bool) -> list[tuple[str, ...]]:
    rows = []
    for r in sorted(records, key=lambda r: r.run_id):
        workflow = WORKFLOWS.get(r.benchmark)
        published = workflow.published_for(r.spec["weights"]) if workflow else None
        if workflow is None or published is None:
            continue
        why = not_comparable_because(r, workflow)
        if (why is None) != reproductions:
            continue
        for metric, value in published.metrics:
            ours = r.test.get(metric) if r.ok else None
            kind, dkind = ("pct", "diff_pct") if metric != "test_loss" else ("", "diff")
            rows.append(
                (
                    r.run_id,
                    METRIC_LABELS[metric],
                    metric_cell(r, metric, kind),
                    fmt(value, kind),
                    fmt(None if ours is None else ours - value, dkind),
                    *(() if reproductions else (why,)),
                )
            )
    return rows


def ours_vs_published(records: Sequence[RunResult]) -> Table:
    """Full-profile runs of a workflow's unchanged recipe on its dataset: the reproduction."""
    return Table(
        "Ours vs published (reproductions)",
        ("run", "metric", "ours", "published", "diff"),
        tuple(_against_published(records, True)),
        "Full profile, the write-up's recipe unchanged, on its dataset.",
    )


def not_comparable_to_published(records: Sequence[RunResult]) -> Table:
    """Every other run of a workflow, beside the published figures, labelled with why it is no reproduction."""
    return Table(
        "Other runs beside the published figures (not comparable)",
        ("run", "metric", "ours", "published", "diff", "not comparable because"),
        tuple(_against_published(records, False)),
        "Shown for orientation only: these runs are not the published setting.",
    )


def precision_devices(records: Sequence[RunResult]) -> Table:
    rows = []
    for r in sorted(
        records,
        key=lambda r: (
            r.benchmark,
            r.spec["engine"],
            r.spec["precision"],
            r.spec["devices"],
            r.spec["weights"],
            r.run_id,
        ),
    ):
        s = r.spec
        rows.append(
            (
                r.benchmark,
                s["engine"],
                s["weights"],
                s["precision"],
                _devices(s),
                str(s["recipe"]["batch_size"]),
                str(s["recipe"]["seed"]),
                metric_cell(r, "test_acc", "pct"),
                fmt(r.train_images_per_s, "rate"),
                fmt(r.steady_images_per_s, "rate"),
                fmt(r.wall_time_s, "rate"),
                target_cell(r),
                time_to_target_cell(r),
                _tflops(r.achieved_tflops),
                fmt(r.mfu.get("measured"), "pct"),
                fmt(r.mfu.get("vendor"), "pct"),
                _joules(r),
            )
        )
    columns = (
        "benchmark",
        "engine",
        "weights",
        "precision",
        "devices",
        "global batch",
        "seed",
        "acc %",
        "images/s",
        "steady images/s",
        "time s",
        "target val acc",
        "time to target",
        "TFLOP/s",
        "MFU %",
        "MFU % vendor",
        "J/image",
    )
    return Table("Precision x devices", columns, tuple(rows))


def _gflops(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e9:.3g}"


def _tflops(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _joules(record: RunResult) -> str:
    """J/image of the training epochs, or `-` (the note says why in the record: no counter on CPUs)."""
    value = (record.energy or {}).get("joules_per_image")
    return "-" if value is None else f"{value:.3g}"


def workflow_tables(records: Sequence[RunResult]) -> list[Table]:
    """The write-ups' own tables, filled with our runs: EfficientNetV2 (model, accuracy, loss),
    FastViT (+F1, top-3, top-5)."""
    tables = []
    for key, metrics in (
        ("efficientnetv2", ("test_acc", "test_loss")),
        ("fastvit", ("test_acc", "test_loss", "test_f1", "test_top3", "test_top5")),
    ):
        mine = [r for r in records if r.benchmark == key]
        if not mine:
            continue
        rows = []
        for r in sorted(mine, key=lambda r: r.run_id):
            label = (
                f"{r.spec['model']}-{'Weights' if r.spec['weights'] == 'pretrained' else 'Random_weights'}"
                f" ({r.spec['profile']}, {r.spec['engine']}, {r.spec['precision']}, {_devices(r.spec)}dev)"
            )
            rows.append((label, *(metric_cell(r, m, "pct" if m == "test_acc" else "") for m in metrics)))
        tables.append(
            Table(
                f"{WORKFLOWS[key].title} (the write-up's table)",
                ("Model", *(METRIC_LABELS[m] for m in metrics)),
                tuple(rows),
            )
        )
    return tables


COLUMN_NOTES: dict[str, str] = {
    "recipe": "learning rate, global batch (shared by all processes), epochs, image size and seed of the run",
    "images/s": (
        "training images per second over the training batches only (loading, forward, backward, optimizer step), all"
        " processes together, every epoch"
    ),
    "steady images/s": (
        "the median of the per-epoch images/s after the first (warm-up) epoch: the figure to compare speed with (the"
        " regression gate uses it)"
    ),
    "acc %": (
        "in 'cases over seeds': mean ± sample standard deviation over the case's seeds (n=...), a single run's value"
        " alone"
    ),
    "published inside spread": (
        "whether the published accuracy lies within the case's mean ± std (or min..max); only for reproductions of the"
        " published setting"
    ),
    "time s": "wall time of the whole run: data, training, validation, test, checkpoints",
    "GFLOPs/image": (
        "training FLOPs of one image (a multiply-add is 2 FLOPs; training = 3 x the forward pass that torch's"
        " FlopCounterMode counts)"
    ),
    "TFLOP/s": (
        "achieved training TFLOP/s of all devices: FLOPs per image (forward counted by torch's FlopCounterMode,"
        " training = 3 x forward) x steady images/s"
    ),
    "MFU %": (
        "model FLOPs utilisation: TFLOP/s over this machine's measured dense matmul peak at the run's precision (per"
        " device x devices)"
    ),
    "MFU % vendor": (
        "TFLOP/s over the datasheet's dense tensor-core peak of the GPU (H100, H200, A100, L4, L40S); - on CPUs and"
        " other GPUs"
    ),
    "J/image": (
        "joules the GPUs drew per training image over the training epochs (NVML); - where there is no counter (CPUs)"
    ),
    "diff (points)": (
        "pretrained minus random mean test accuracy, in percentage points, with its 95 % Welch interval and p-value"
        " when both sides have several seeds"
    ),
    "runs (pre/rnd)": "how many runs (seeds, attempts) each side averages",
    "diff": (
        "in 'ours vs published': ours minus published (accuracy-like metrics in points); in 'pretrained vs random':"
        " pretrained minus random loss"
    ),
    "target val acc": (
        "the val accuracy time-to-target counts to, and its origin: a published figure, the smoke floor, or"
        " --target-acc"
    ),
    "time to target": "the first epoch, and the training seconds until then, at which val accuracy reached the target",
}


def all_tables(records: Sequence[RunResult], records_dir: str = ".") -> list[Table]:
    tables = [
        runs_table(records, records_dir),
        cases_table(records),
        pretrained_vs_random(records),
        ours_vs_published(records),
        not_comparable_to_published(records),
        precision_devices(records),
        *workflow_tables(records),
    ]
    return [t for t in tables if t.rows]
