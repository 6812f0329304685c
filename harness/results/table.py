"""The table type and its three renderings: Markdown (summary.md, the terminal), CSV, HTML (report.html)."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Link:
    """A table cell that points somewhere: a Markdown link (the target percent-encoded: a run id
    holds the dataset's name, which may hold spaces), an HTML anchor (`anchor` when the page embeds
    the target itself), the bare target in CSV."""

    label: str
    target: str
    anchor: str | None = None

    def __str__(self) -> str:
        return self.target


Cell = str | Link


@dataclass(frozen=True)
class Table:
    """A titled table of cells, rendered as Markdown, CSV or HTML."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""] + ([self.note, ""] if self.note else [])
        lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += [
            "| " + " | ".join(f"[{c.label}]({quote(c.target)})" if isinstance(c, Link) else c for c in row) + " |"
            for row in self.rows
        ]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        writer.writerows([str(c) for c in row] for row in self.rows)
        return out.getvalue()

    def _repr_markdown_(self) -> str:
        """A notebook shows a table as a table (IPython's rich display)."""
        return self.markdown()

    def html(self) -> str:
        head_row = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{_html_cell(v)}</td>" for v in row) + "</tr>" for row in self.rows)
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3>{note}<table><tr>{head_row}</tr>{body}</table>"


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return (
            f"<a href='{html.escape('#' + cell.anchor if cell.anchor else cell.target)}'>{html.escape(cell.label)}</a>"
        )
    return html.escape(cell)
