"""LaTeX: a complete A4 ``article`` (booktabs, longtable) whose every table fits the page.

Every column is a ``p{}`` column whose width is estimated from its text (characters ×
an em estimate at ``\\small``) and capped, long unspaced text may break
(``escaping.breakable_latex``), and a view with more columns than fit 16 cm is split
into several tables that repeat its key columns. The review table leads, each cell
on two lines (change and mark, then the CI), with the legend and each model's reasons
as an ``itemize`` under it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from forgetwatch.exports.escaping import breakable_latex, escape_latex, latex_tokens
from forgetwatch.exports.layout import layout
from forgetwatch.review.report_table import VERDICT_COLORS, VERDICT_ROW, ReviewTable
from forgetwatch.review.views import NOISE_COLOR, Report, View, text_rows

TEXT_WIDTH_CM = 16.0  # A4 (21 cm) less the 2.5 cm margins the preamble sets
FONT_PT = 9.0  # tables are set \small in a 10pt article
CHAR_EM = 0.55  # a character's average advance, in em (Computer Modern digits: 0.5)
TABCOLSEP_PT = 6.0  # LaTeX's default, on each side of every column
PT_PER_CM = 72.27 / 2.54
MAX_COLUMN_CM = 4.5
KEY_COLUMN_CM = 3.0  # key columns repeat in every split table, so they are kept narrow
KEYS = ("run_name", "step", "task")  # a split table repeats these (or capability)
PREAMBLE = (
    r"\documentclass[10pt]{article}",
    r"\usepackage[a4paper,margin=2.5cm]{geometry}",
    r"\usepackage[T1]{fontenc}",
    r"\usepackage[utf8]{inputenc}",
    r"\usepackage{booktabs}",
    r"\usepackage{longtable}",
    r"\usepackage{array}",
    r"\usepackage{xcolor}",
)


def text_cm(chars: int) -> float:
    """The estimated width of ``chars`` characters at the tables' font size."""
    return chars * CHAR_EM * FONT_PT / PT_PER_CM


def column_sep_cm() -> float:
    """The space LaTeX adds around each column (``\\tabcolsep`` on both sides)."""
    return 2 * TABCOLSEP_PT / PT_PER_CM


@dataclass
class Column:
    """One table column as LaTeX sets it: header, cells (lines of raw text), alignment."""

    header: str
    cells: list[list[str]]  # per row, the cell's lines
    numeric: bool
    key: bool = False
    colors: list[str | None] | None = None  # per row, a text colour (hex) or None

    def width_cm(self, cap: float) -> float:
        """The narrowest width that shows every cell's lines unbroken, up to ``cap``; never
        narrower than the longest piece LaTeX cannot break (the header wraps)."""
        lines = [self.header, *(line for cell in self.cells for line in cell)]
        natural = max((len(line) for cell in self.cells for line in cell), default=1)
        unbreakable = max((len(t) for line in lines for t in latex_tokens(line)), default=1)
        width = max(text_cm(unbreakable), min(text_cm(natural), cap))
        return math.ceil(width * 100) / 100  # the spec's two decimals, never narrower


def _cell(lines: list[str], color: str | None) -> str:
    text = r"\newline{}".join(breakable_latex(line) for line in lines)
    text = "{}" + text if text.startswith("[") else text  # not an optional argument of \\
    return rf"\textcolor[HTML]{{{color.lstrip('#').upper()}}}{{{text}}}" if color else text


def _spec(column: Column, width: float) -> str:
    align = r"\raggedleft" if column.numeric else r"\raggedright"
    return rf">{{{align}\arraybackslash}}p{{{width:.2f}cm}}"


def _chunks(columns: list[Column]) -> list[list[Column]]:
    """Columns split into tables that each fit the text width, key columns in each."""
    keys = [c for c in columns if c.key]
    rest = [c for c in columns if not c.key]
    room = TEXT_WIDTH_CM - sum(c.width_cm(KEY_COLUMN_CM) + column_sep_cm() for c in keys)
    chunks: list[list[Column]] = [[]]
    used = 0.0
    for column in rest:
        width = column.width_cm(MAX_COLUMN_CM) + column_sep_cm()
        if chunks[-1] and used + width > room:
            chunks.append([])
            used = 0.0
        chunks[-1].append(column)
        used += width
    return [keys + chunk for chunk in chunks]


def _longtable(title: str, columns: list[Column]) -> list[str]:
    widths = [c.width_cm(KEY_COLUMN_CM if c.key else MAX_COLUMN_CM) for c in columns]
    spec = "".join(_spec(c, w) for c, w in zip(columns, widths, strict=True))
    head = " & ".join(_cell([c.header], None) for c in columns) + r" \\"
    rows = []
    for i in range(len(columns[0].cells) if columns else 0):
        cells = [_cell(c.cells[i], c.colors[i] if c.colors else None) for c in columns]
        rows.append(" & ".join(cells) + r" \\")
    return [
        r"\begingroup\small",
        rf"\begin{{longtable}}{{{spec}}}",
        rf"\caption{{{escape_latex(title)}}} \\",
        r"\toprule", head, r"\midrule", r"\endfirsthead",
        r"\toprule", head, r"\midrule", r"\endhead",
        *rows,
        r"\bottomrule",
        r"\end{longtable}",
        r"\endgroup",
    ]  # fmt: skip


def tables(title: str, columns: list[Column]) -> list[str]:
    """One ``longtable`` per chunk of columns; "(part 2 of 3)" when split."""
    chunks = _chunks(columns)
    out: list[str] = []
    for n, chunk in enumerate(chunks, start=1):
        part = f" (part {n} of {len(chunks)})" if len(chunks) > 1 else ""
        out += ["", *_longtable(title + part, chunk)]
    return out


def view_columns(view: View) -> list[Column]:
    """A view's columns with its page formats and noise marks (``text_rows``)."""
    headers, rows = text_rows(view)
    names = list(view.frame.columns)
    keys = [k for k in KEYS if k in names] or [k for k in ("capability",) if k in names]
    grey = NOISE_COLOR
    return [
        Column(
            header,
            [[row[i]] for row in rows],
            view.number_format(name) is not None,
            key=name in keys,
            colors=[
                VERDICT_COLORS.get(row[i])
                if name == "verdict"
                else (grey if view.noise_at(n, name) else None)
                for n, row in enumerate(rows)
            ],
        )  # fmt: skip
        for i, (header, name) in enumerate(zip(headers, names, strict=True))
    ]


def review_columns(review: ReviewTable) -> list[Column]:
    """The review table's columns: each change over its CI, verdicts coloured."""
    cells = review.cells
    first = cells.columns[0]
    columns = [Column(str(first), [[str(v)] for v in cells[first]], False, key=True)]
    for model in review.models:
        lines, colors = [], []
        for i, text in enumerate(cells[model].astype(str)):
            if cells[first].iloc[i] == VERDICT_ROW:
                lines.append([text])
                colors.append(VERDICT_COLORS.get(text))
                continue
            change, _, ci = text.partition(" [")
            mark = " *" if ci.endswith(" *") else ""
            ci = ci.removesuffix(" *")
            lines.append([change + mark, f"[{ci}"] if ci else [change])
            colors.append(NOISE_COLOR if review.cell_noise[model].iloc[i] else None)
        columns.append(Column(model, lines, True, colors=colors))
    return columns


def _itemize(items: Sequence[str]) -> list[str]:
    return [r"\begin{itemize}", *(rf"\item{{}} {item}" for item in items), r"\end{itemize}"]


def review_lines(review: ReviewTable) -> list[str]:
    """The review table(s), the legend, and each model's reasons as nested lists."""
    lines = tables(review.title, review_columns(review))
    lines += ["", rf"\noindent{{\small {escape_latex(review.legend)}}}"]
    if not any(review.reasons.values()):
        return lines
    items = []
    for model, reasons in review.reasons.items():
        status = review.verdicts[model]
        color = VERDICT_COLORS.get(status, "#000000").lstrip("#").upper()
        head = rf"\textbf{{{breakable_latex(model)}}}: \textcolor[HTML]{{{color}}}{{{status}}}"
        inner = _itemize([breakable_latex(r) for r in reasons]) if reasons else []
        items.append("\n".join([head, *inner]))
    return [*lines, "", r"\paragraph{Why}", *_itemize(items)]


def render_latex(report: Report) -> bytes:
    """A complete ``article``: title, review table and reasons, notes, then every view."""
    shown = layout(report)
    lines = [*PREAMBLE, r"\begin{document}", rf"\section*{{{breakable_latex(shown.title)}}}"]
    if shown.review is not None:
        lines += review_lines(shown.review)
    if shown.notes:
        lines += ["", r"\paragraph{Notes}", *_itemize([breakable_latex(n) for n in shown.notes])]
    for view in shown.views:
        if len(view.frame.columns):
            lines += tables(view.title, view_columns(view))
    lines += ["", r"\end{document}"]
    return ("\n".join(lines) + "\n").encode("utf-8")
