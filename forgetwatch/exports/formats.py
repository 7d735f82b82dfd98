"""The one formats table every export goes through (CSV, Markdown, LaTeX, XLSX, HTML).

Formats are rows of ``FORMATS``, each a function from a ``Report`` to bytes. The machine
formats (CSV, XLSX) live here and hold every column; the human ones lay a report out
through ``exports.layout`` (review table first, long text under its table) in
``exports.markdown``, ``exports.latex`` and ``exports.html`` (which also draws charts).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from forgetwatch.errors import BadInputError
from forgetwatch.exports.escaping import safe_filename, spreadsheet_safe
from forgetwatch.exports.latex import render_latex
from forgetwatch.exports.markdown import render_markdown
from forgetwatch.review.views import (
    NOISE_COLOR,
    POINTS,
    PVALUE,
    SIGNED,
    Report,
    View,
    is_missing,
    label,
)


def _plain(value: Any) -> Any:
    """A cell as a plain number/str/datetime for machine formats (CSV, XLSX)."""
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return spreadsheet_safe(value)


def render_csv(report: Report) -> bytes:
    """The primary view, numbers at full precision (points), labelled headers."""
    view = report.views[report.primary]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(label(c)) for c in view.frame.columns])
    for row in view.frame.itertuples(index=False, name=None):
        writer.writerow(["" if (v := _plain(x)) is None else v for x in row])
    return buffer.getvalue().encode("utf-8")


def _sheet_title(title: str, taken: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique in the book."""
    base = re.sub(r"[\[\]:*?/\\]", "_", title)[:31] or "Sheet"
    name, n = base, 2
    while name.lower() in taken:
        name = f"{base[:28]}~{n}"
        n += 1
    taken.add(name.lower())
    return name


def render_xlsx(report: Report) -> bytes:
    """One sheet per view; numbers stay numbers, with the page's display format applied."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    taken: set[str] = set()
    for view in report.views:
        sheet = book.create_sheet(_sheet_title(view.title, taken))
        columns = list(view.frame.columns)
        sheet.append([spreadsheet_safe(label(c)) for c in columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in view.frame.itertuples(index=False, name=None):
            sheet.append([_plain(v) for v in row])
        _grey_noise(sheet, view)
        for index, column in enumerate(columns, start=1):
            spec = view.number_format(column)
            excel = {
                SIGNED: "+0.0;-0.0;0.0",
                POINTS: "0.0",
                "d": "0",
                PVALUE: '[<0.001]"< 0.001";0.0##',  # the value stays a number
            }.get(spec or "")
            if excel:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = excel
    if report.notes:
        notes = book.create_sheet(_sheet_title("Notes", taken))
        for note in report.notes:
            notes.append([spreadsheet_safe(note)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _grey_noise(sheet: Any, view: View) -> None:
    """Grey the font of cells within noise (the sheet's ``significant`` column says why)."""
    from openpyxl.styles import Font

    if view.noise is None:
        return
    grey = Font(color="FF" + NOISE_COLOR.lstrip("#").upper())
    for index, column in enumerate(view.frame.columns, start=1):
        for i in range(len(view.frame)):
            if view.noise_at(i, column):
                sheet.cell(row=i + 2, column=index).font = grey


def _render_html(report: Report) -> bytes:
    from forgetwatch.exports.html import render_html

    return render_html(report)


@dataclass(frozen=True)
class Format:
    """One export format: its CLI name, what the user sees, and how to write it."""

    name: str
    label: str
    extension: str
    mime: str
    render: Callable[[Report], bytes]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("csv", "CSV", "csv", "text/csv", render_csv),
        Format("md", "Markdown", "md", "text/markdown", render_markdown),
        Format("latex", "LaTeX (booktabs)", "tex", "application/x-tex", render_latex),
        Format(
            "xlsx",
            "Excel",
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            render_xlsx,
        ),
        Format("html", "HTML report", "html", "text/html", _render_html),
    )
}


def get_format(name: str) -> Format:
    """The format called ``name``, or an error that lists the ones there are."""
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInputError(
            f"{name!r} is not a format forgetwatch can export",
            f"Try one of: {', '.join(FORMATS)}.",
        ) from None


def render(report: Report, format_name: str) -> bytes:
    """``report`` written in the named format."""
    return get_format(format_name).render(report)


def file_name(parts: Iterable[str], format_name: str) -> str:
    """A safe download name built from user strings (run names), e.g. ``compare-a-b.csv``."""
    return safe_filename("-".join(parts), get_format(format_name).extension)
