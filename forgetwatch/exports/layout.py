"""What the human-readable formats (Markdown, HTML, LaTeX) show, decided once for all three.

A review file leads with the compact capability × model table and its verdicts'
reasons; the other views follow, less what only a machine needs (hashes, file paths,
eval ids: the XLSX export keeps them) and less the verdict reasons, which the bullets
under the review table already list. Text too long for a table cell is listed under
its table, one bullet per row, so a pasted table stays compact. CSV and XLSX never go
through here: they hold every column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from forgetwatch.review.report_table import ReviewTable
from forgetwatch.review.views import Report, View, label, text_rows

# Columns a reader cannot act on in a table; the XLSX export has them.
MACHINE_ONLY = ("task_hashes", "source_file", "eval_id")
MACHINE_NOTE = "Task hashes, results files and eval ids are in the XLSX export."
SHOWN_ELSEWHERE = ("verdict_reasons",)  # the bullets under the review table
# Columns that name a row in the bullets under a table, in this order.
ROW_KEYS = ("run_name", "step", "capability", "task", "metric", "doc_id")


@dataclass
class Layout:
    """A report as a human format lays it out: review table first, then the other views."""

    title: str
    review: ReviewTable | None
    views: list[View]
    notes: list[str]


def _without(view: View, columns: set[str]) -> View:
    keep = [c for c in view.frame.columns if c not in columns]
    if len(keep) == len(view.frame.columns):
        return view
    noise = None if view.noise is None else view.noise[[c for c in view.noise if c in keep]]
    return replace(view, frame=view.frame[keep], noise=noise)


def layout(report: Report) -> Layout:
    """``report`` for a reader: the review table apart, machine-only columns left out."""
    review = next((v for v in report.views if isinstance(v, ReviewTable)), None)
    dropped = set(MACHINE_ONLY) | (set(SHOWN_ELSEWHERE) if review is not None else set())
    others = [_without(v, dropped) for v in report.views if v is not review]
    machine = any(c in v.frame.columns for v in report.views for c in MACHINE_ONLY)
    notes = [*report.notes, *([MACHINE_NOTE] if machine else [])]
    return Layout(report.title, review, others, notes)


def long_columns(view: View, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Text columns with a cell longer than ``limit`` (as ``measure`` counts it)."""
    _, rows = text_rows(view)
    columns = list(view.frame.columns)
    numeric = {c for c in columns if view.number_format(c) is not None}
    return [
        c
        for i, c in enumerate(columns)
        if c not in numeric and c not in ROW_KEYS and any(measure(r[i]) > limit for r in rows)
    ]


def row_names(view: View) -> list[str]:
    """A short name per row for the bullets under a table: "ft-full @140 · facts_new"."""
    _, rows = text_rows(view)
    columns = list(view.frame.columns)
    keys = [k for k in ROW_KEYS if k in columns]
    names = []
    for n, row in enumerate(rows, start=1):
        cell = {k: row[columns.index(k)] for k in keys}
        name = cell.pop("run_name", "") or (row[columns.index("kind")] if "kind" in columns else "")
        run = " @".join(t for t in (name, cell.pop("step", "")) if t)
        parts = [t for t in (run, *cell.values()) if t]
        names.append(" · ".join(parts) if parts else f"row {n}")
    return names


def split_long(
    view: View, columns: list[str]
) -> tuple[View, list[tuple[str, list[tuple[str, str]]]]]:
    """``view`` without ``columns``, and those columns as (label, [(row name, text)]) lists."""
    if not columns:
        return view, []
    _, rows = text_rows(view)
    names = row_names(view)
    index = {c: i for i, c in enumerate(view.frame.columns)}
    lists = [
        (label(c), [(names[n], row[index[c]]) for n, row in enumerate(rows) if row[index[c]]])
        for c in columns
    ]
    return _without(view, set(columns)), [(title, items) for title, items in lists if items]
