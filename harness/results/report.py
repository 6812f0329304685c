"""Writing the tables: `summary.md`, `summary.csv` (one row per run), `cases.csv` (one row per case over its seeds)
and `report.html`.

Both the Markdown and the HTML open with a head that says when the report was made, what the runs
ran on (device, versions, git commit, as their records say) and what each derived column means.
The HTML page is self-contained (styles inline, the comparison figures and each run's learning
curves embedded as PNG data, the runs table's curve links pointing at them, a nightly's trend plots
too), so it can be published or mailed as one file; the figures are also PNGs in `figures/`.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from harness.results import figures
from harness.results.plots import plot_trend
from harness.results.record import CURVES_FILE, RunResult
from harness.results.table import Table
from harness.results.tables import COLUMN_NOTES, all_tables, cases_table, runs_table
from harness.results.trend import CaseTrend

STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid"
    " #ccc;padding:3px 8px;font-size:13px}th{background:#eee}img{max-width:900px}"
)
ENVIRONMENT_KEYS = (
    "device",
    "torch",
    "timm",
    "lightning",
    "poutyne",
    "torchmetrics",
    "albumentations",
    "cuda",
    "python",
    "project",
    "project_commit",
    "project_dirty",
    "trainbench",
    "git_commit",
)


def head(records: Sequence[RunResult], tables: Sequence[Table]) -> list[tuple[str, str]]:
    """(label, text) lines: date, the runs' environment (every distinct value), the derived columns."""
    lines = [("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")), ("runs", str(len(records)))]
    for key in ENVIRONMENT_KEYS:
        values = sorted({str(r.environment.get(key)) for r in records if r.environment.get(key) is not None})
        lines.append((key, ", ".join(values) if values else "none"))
    shown = {c for t in tables for c in t.columns}
    lines += [(f"column {column}", note) for column, note in COLUMN_NOTES.items() if column in shown]
    return lines


def markdown(records: Sequence[RunResult], tables: Sequence[Table], comparisons: Sequence[tuple[str, str]] = ()) -> str:
    about = "\n".join(f"- **{label}**: {text}" for label, text in head(records, tables))
    shown = "".join(f"\n### {caption}\n\n![{caption}]({png})\n" for caption, png in comparisons)
    return (
        "# trainbench results\n\n"
        + about
        + "\n\n"
        + "\n".join(t.markdown() for t in tables)
        + ("\n## Comparisons\n" + shown if shown else "")
    )


def _embedded(png: Path, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>"


def html_page(
    records: Sequence[RunResult],
    tables: Sequence[Table],
    records_dir: Path,
    trend_plots: Sequence[tuple[CaseTrend, Path]] = (),
    comparisons: Sequence[tuple[str, Path]] = (),
) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>trainbench"
        f" report</title><style>{STYLE}</style></head><body><h1>trainbench report</h1>"
    ]
    parts.append(
        "<ul>"
        + "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>" for label, text in head(records, tables))
        + "</ul>"
    )
    parts += [t.html() for t in tables]
    if comparisons:
        parts.append("<h2>Comparisons</h2>")
        parts += [f"<h4>{html.escape(caption)}</h4>" + _embedded(png, caption) for caption, png in comparisons]
    if trend_plots:
        nights = trend_plots[0][0].nights
        parts.append(
            f"<h2>Trend over the last {len(nights)} night(s)</h2><p>{html.escape(nights[0])} to"
            f" {html.escape(nights[-1])}; each point is a night's mean over its seeds, the dashed line the"
            " baseline.</p>"
        )
        parts += [f"<h4>{html.escape(t.case)}</h4>" + _embedded(png, f"trend of {t.case}") for t, png in trend_plots]
    parts.append("<h2>Learning curves</h2>")
    for r in sorted(records, key=lambda r: r.run_id):
        png = records_dir / r.run_id / CURVES_FILE
        if png.is_file():
            parts.append(
                f"<h4 id='curves-{html.escape(r.run_id)}'>{html.escape(r.run_id)}</h4>"
                + _embedded(png, f"curves of {r.run_id}")
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write(
    records: Sequence[RunResult], records_dir: Path, out: Path | None = None, trend: Sequence[CaseTrend] = ()
) -> list[Table]:
    """All report files into `out` (default: `records_dir`, where the runs' folders are), with a
    trend plot per case (`trend/*.png`) when given the last nights; returns the tables."""
    out = out or records_dir
    out.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(records_dir, out)
    tables = all_tables(records, relative)
    trend_plots = [(t, plot_trend(t, _trend_png(out, t.case))) for t in trend]
    comparisons = figures.write_all(records, out / "figures")
    (out / "summary.md").write_text(
        markdown(records, tables, [(caption, png.relative_to(out).as_posix()) for caption, png in comparisons])
    )
    (out / "summary.csv").write_text(runs_table(records, relative).csv())
    (out / "cases.csv").write_text(cases_table(records).csv())
    (out / "report.html").write_text(html_page(records, tables, records_dir, trend_plots, comparisons))
    return tables


def _trend_png(out: Path, case: str) -> Path:
    folder = out / "trend"
    folder.mkdir(exist_ok=True)
    return folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", case) + ".png")
