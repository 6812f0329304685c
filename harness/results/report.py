"""Writing the tables: `summary.md`, `summary.csv` (one row per run) and `report.html`.

The HTML page is self-contained (styles inline, each run's learning curves embedded as PNG data),
so it can be published or mailed as one file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from harness.results.record import CURVES_FILE, RunResult
from harness.results.tables import Table, all_tables, runs_table

STYLE = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eee}img{max-width:900px}"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    return f"<h3>{html.escape(table.title)}</h3><table><tr>{head}</tr>{body}</table>"


def html_page(records: Sequence[RunResult], results_dir: Path) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>trainbench report</title><style>{STYLE}</style></head><body><h1>trainbench report</h1>"]
    parts += [_html_table(t) for t in all_tables(records)]
    parts.append("<h2>Learning curves</h2>")
    for r in sorted(records, key=lambda r: r.run_id):
        png = results_dir / r.run_id / CURVES_FILE
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<h4>{html.escape(r.run_id)}</h4><img alt='curves of {html.escape(r.run_id)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(records: Sequence[RunResult], results_dir: Path) -> list[Table]:
    """All report files into `results_dir`; returns the tables (for printing)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    tables = all_tables(records)
    (results_dir / "summary.md").write_text("# trainbench results\n\n" + "\n".join(t.markdown() for t in tables))
    (results_dir / "summary.csv").write_text(runs_table(records).csv())
    (results_dir / "report.html").write_text(html_page(records, results_dir))
    return tables
