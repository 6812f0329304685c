"""Figures that compare runs, for the report and as PNGs beside it.

- pretrained vs random: validation curves of runs that differ in their weights alone, overlaid;
- engines: validation curves of runs that differ in their engine alone, overlaid;
- precision x devices: steady-state images/s and test accuracy of every cell, per workflow;
- ours vs published: test accuracy beside the write-up's figure, marked.

Colours mean one thing everywhere (weights: blue pretrained, orange random; engines: green Poutyne,
purple Lightning), epochs are whole numbers, and a run's target accuracy is drawn where it has one.
Runs repeated over seeds are drawn one line each (curves) or as mean and standard deviation (bars);
a run that diverged is left out of the bars, and its cell's label says how many did.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.catalog import WORKFLOWS
from harness.results.grouping import differing_in, experiments
from harness.results.record import RunResult, finished
from harness.results.stats import summarize
from harness.results.tables import not_comparable_because
from harness.spec import PRECISION_TAGS

COLOURS = {"pretrained": "tab:blue", "random": "tab:orange", "poutyne": "tab:green", "lightning": "tab:purple"}


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _title(record: RunResult, field: str) -> str:
    """The runs' shared case, with the compared field left out."""
    s = record.spec
    parts = {
        "model": s["model"],
        "dataset": s["dataset"],
        "engine": s["engine"],
        "precision": PRECISION_TAGS[s["precision"]],
        "devices": f"{s['devices']}dev",
        "weights": s["weights"],
        "profile": f"{s['profile']} profile",
    }
    parts.pop(field)
    return " ".join(parts.values())


def overlaid_curves(group: dict[str, list[RunResult]], field: str, path: Path) -> Path:
    """Validation loss and accuracy per epoch of runs differing in `field` alone, one colour per value."""
    return _save(curves_figure(group, field), path)


def curves_figure(group: dict[str, list[RunResult]], field: str) -> Figure:
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    for value, runs in sorted(group.items()):
        for index, run in enumerate(runs):
            epochs = [row["epoch"] for row in run.history]
            label = f"{value} (n={len(runs)})" if index == 0 else None
            loss_axis.plot(
                epochs,
                [row.get("val_loss") for row in run.history],
                "-o",
                color=COLOURS.get(value),
                markersize=3,
                label=label,
                alpha=0.85,
            )
            acc_axis.plot(
                epochs,
                [row.get("val_acc") for row in run.history],
                "-o",
                color=COLOURS.get(value),
                markersize=3,
                label=label,
                alpha=0.85,
            )
    first = next(iter(group.values()))[0]
    target = first.target.get("accuracy")
    if target:
        acc_axis.axhline(target, linestyle="--", color="grey", label=f"target {target:.3f}")
    for axis, label in ((loss_axis, "val loss"), (acc_axis, "val accuracy")):
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{field}: {_title(first, field)}", fontsize=9)
    return figure


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation; nan (no bar) when no run has the figure, as records older than it."""
    if not values:
        return float("nan"), 0.0
    summary = summarize(values)
    return summary.mean, summary.std


def _diverged(group: Sequence[RunResult]) -> str:
    """` (1 of 3 diverged)` under a cell's label when some of its runs did not finish."""
    left_out = len(group) - len(finished(group))
    return f"\n({left_out} of {len(group)} diverged)" if left_out else ""


def _unique(labels: list[str], groups: Sequence[Sequence[RunResult]]) -> list[str]:
    """Labels, with the recipe fingerprint added where two experiments would share one (a case run with two recipes)."""
    return [
        f"{label}\n@{g[0].gate_key.split('@')[-1]}" if labels.count(label) > 1 else label
        for label, g in zip(labels, groups, strict=True)
    ]


def precision_devices(records: Sequence[RunResult], benchmark: str, path: Path) -> Path:
    """Per cell of one workflow (engine, precision, devices, weights): steady images/s and test accuracy,
    mean ± std over seeds."""
    groups = sorted(
        (g for g in experiments(records) if g[0].benchmark == benchmark),
        key=lambda g: (g[0].spec["engine"], g[0].spec["precision"], g[0].spec["devices"], g[0].spec["weights"]),
    )
    labels = _unique(
        [
            f"{g[0].spec['engine']}\n{PRECISION_TAGS[g[0].spec['precision']]} {g[0].spec['devices']}dev" + _diverged(g)
            for g in groups
        ],
        groups,
    )
    colours = [COLOURS.get(g[0].spec["weights"]) for g in groups]
    figure, axes = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(groups) + 4), 3.8))
    for axis, (name, value_of) in zip(
        axes,
        (
            ("steady-state train images/s", lambda r: r.steady_images_per_s),
            ("test accuracy", lambda r: r.test.get("test_acc")),
        ),
        strict=True,
    ):
        stats = [_mean_std([v for v in map(value_of, finished(g)) if v is not None]) for g in groups]
        axis.bar(range(len(groups)), [m for m, _ in stats], yerr=[s for _, s in stats], color=colours, capsize=3)
        axis.set_xticks(range(len(groups)), labels, fontsize=7)
        axis.set_ylabel(name)
        axis.grid(alpha=0.3, axis="y")
    for weights in sorted({g[0].spec["weights"] for g in groups}):
        axes[1].bar([0], [0], color=COLOURS.get(weights), label=f"{weights} weights")  # legend entries only
    axes[1].legend(fontsize=8)
    figure.suptitle(f"{benchmark}: precision x devices (mean ± std over seeds)", fontsize=9)
    return _save(figure, path)


def distance_to_limit(records: Sequence[RunResult], benchmark: str, path: Path) -> Path | None:
    """Per cell of one workflow: achieved training TFLOP/s (mean over seeds) against the measured
    and the vendor's peak for its devices, log scale; None when no record has the figures."""
    groups = [
        g for g in experiments(records) if g[0].benchmark == benchmark and any(r.achieved_tflops for r in finished(g))
    ]
    if not groups:
        return None
    groups.sort(key=lambda g: (g[0].spec["engine"], g[0].spec["precision"], g[0].spec["devices"], g[0].spec["weights"]))
    labels = _unique(
        [f"{g[0].spec['engine']}\n{PRECISION_TAGS[g[0].spec['precision']]} {g[0].spec['devices']}dev" for g in groups],
        groups,
    )
    achieved = [_mean_std([r.achieved_tflops for r in finished(g) if r.achieved_tflops])[0] for g in groups]
    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(groups) + 3), 3.8))
    axis.bar(range(len(groups)), achieved, color=[COLOURS.get(g[0].spec["engine"]) for g in groups], label="achieved")
    for key, marker, name in (
        ("peak_measured_tflops", "_", "measured peak"),
        ("peak_vendor_tflops", "x", "vendor peak"),
    ):
        peaks = [(i, g[0].mfu[key] * g[0].mfu.get("devices", 1)) for i, g in enumerate(groups) if g[0].mfu.get(key)]
        if peaks:
            at, tflops = zip(*peaks, strict=True)
            axis.scatter(
                at,
                tflops,
                marker=marker,
                s=400 if marker == "_" else 60,
                color="black" if marker == "_" else "tab:red",
                label=name,
                zorder=3,
            )
    axis.set_yscale("log")
    axis.set_xticks(range(len(groups)), labels, fontsize=7)
    axis.set_ylabel("training TFLOP/s")
    axis.grid(alpha=0.3, axis="y", which="both")
    axis.legend(fontsize=8)
    figure.suptitle(f"{benchmark}: distance to the limit (achieved against the peaks of the run's devices)", fontsize=9)
    return _save(figure, path)


def ours_vs_published(records: Sequence[RunResult], path: Path) -> Path | None:
    """Test accuracy of every case with a published figure for its weights, the published value marked."""
    rows, groups = [], []
    for group in experiments(records):
        workflow = WORKFLOWS.get(group[0].benchmark)
        published = workflow.published_for(group[0].spec["weights"]) if workflow else None
        value = published.as_dict().get("test_acc") if published else None
        if value is None:
            continue
        groups.append(group)
        rows.append(
            (
                group[0].case_id + _diverged(group),
                _mean_std([r.test["test_acc"] for r in finished(group) if r.test.get("test_acc") is not None]),
                value,
                COLOURS.get(group[0].spec["weights"]),
            )
        )
    if not rows:
        return None
    labels = _unique([label for label, *_ in rows], groups)
    rows = [
        (
            label
            + (
                ""
                if not_comparable_because(g[0], WORKFLOWS[g[0].benchmark]) is None
                else "\n(not comparable: see the tables)"
            ),
            spread,
            value,
            colour,
        )
        for label, g, (_, spread, value, colour) in zip(labels, groups, rows, strict=True)
    ]
    figure, axis = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.4))
    for index, (_label, (mean, std), value, colour) in enumerate(rows):
        axis.barh(index, mean, xerr=std, color=colour, capsize=3)
        axis.plot([value], [index], marker="D", color="black", label="published" if index == 0 else None)
    axis.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    axis.set_xlim(0, 1)
    axis.set_xlabel("test accuracy (bar: ours, mean ± std over seeds; diamond: published)")
    axis.grid(alpha=0.3, axis="x")
    axis.legend(fontsize=8, loc="lower right")
    axis.invert_yaxis()
    return _save(figure, path)


def write_all(records: Sequence[RunResult], folder: Path) -> list[tuple[str, Path]]:
    """Every comparison the records allow, as (caption, PNG) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, Path]] = []
    for field, caption in (("weights", "Pretrained vs random weights"), ("engine", "Poutyne vs Lightning")):
        for group in differing_in(records, field):
            first = next(iter(group.values()))[0]
            made.append(
                (
                    f"{caption}: {_title(first, field)}",
                    overlaid_curves(group, field, folder / f"{field}-{_file_name(_title(first, field))}.png"),
                )
            )
    for benchmark in sorted({r.benchmark for r in records}):
        made.append(
            (
                f"Precision x devices: {benchmark}",
                precision_devices(records, benchmark, folder / f"precision-devices-{_file_name(benchmark)}.png"),
            )
        )
        limit = distance_to_limit(records, benchmark, folder / f"distance-to-limit-{_file_name(benchmark)}.png")
        if limit is not None:
            made.append((f"Distance to the limit: {benchmark}", limit))
    published = ours_vs_published(records, folder / "ours-vs-published.png")
    if published is not None:
        made.append(("Ours vs published", published))
    return made
