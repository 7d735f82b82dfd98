"""GitHub-flavoured Markdown: a report that reads as a compact table in a pull request.

The review table comes first (capability × model, verdict row, legend), then each
model's reasons as bullets, then the notes, then every other view folded in a
``<details>`` block. No table cell is longer than ``CELL_LIMIT`` characters: longer
text is listed under its table, one bullet per row.
"""

from __future__ import annotations

from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.exports.layout import layout, long_columns, split_long
from forgetwatch.review.budget import BADGES
from forgetwatch.review.report_table import VERDICT_ROW, ReviewTable
from forgetwatch.review.views import Report, View, text_rows

CELL_LIMIT = 80  # characters a pasted table cell may hold before its text moves below


class Names:
    """Names too long for a cell, shortened in the middle and listed in full under the table."""

    def __init__(self) -> None:
        self.full: dict[str, str] = {}

    def fit(self, text: str) -> str:
        """``text`` escaped, shortened to ``CELL_LIMIT`` characters when longer."""
        escaped = escape_markdown(text)
        if len(escaped) <= CELL_LIMIT:
            return escaped
        keep = (CELL_LIMIT - 1) // 2 - 2
        short = escape_markdown(text[:keep].rstrip("\\") + "…" + text[-keep:])
        self.full[short] = escaped
        return short

    def lines(self) -> list[str]:
        if not self.full:
            return []
        return ["**Names in full**", "", *(f"- {s}: {f}" for s, f in self.full.items()), ""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    """A pipe table; ``headers`` are escaped here (already ``Names.fit``), ``rows`` are not."""
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    return [_row(headers), rule, *(_row(r) for r in rows)]


def badge(status: str) -> str:
    """A verdict as the check comment shows it ("❌ FAIL"); an unknown status as itself."""
    return BADGES.get(status, escape_markdown(status))


def review_lines(review: ReviewTable) -> list[str]:
    """The compact table, its legend, and each model's reasons as nested bullets."""
    cells = review.cells
    names = Names()
    rows = []
    for _, row in cells.iterrows():
        first = str(row.iloc[0])
        if first == VERDICT_ROW:
            rows.append([f"**{VERDICT_ROW}**", *(badge(str(v)) for v in row.iloc[1:])])
        else:
            rows.append([escape_markdown(str(v)) for v in row])
    numeric = [False, *([True] * (len(cells.columns) - 1))]
    headers = [names.fit(str(h)) for h in cells.columns]
    lines = [f"## {escape_markdown(review.title)}", ""]
    lines += [*_table(headers, rows, numeric), "", escape_markdown(review.legend), ""]
    lines += names.lines()
    if any(review.reasons.values()):
        lines += ["**Why**", ""]
        for model, reasons in review.reasons.items():
            lines.append(f"- **{escape_markdown(model)}**: {badge(review.verdicts[model])}")
            lines += [f"  - {escape_markdown(r)}" for r in reasons]
        lines.append("")
    return lines


def view_lines(view: View, *, folded: bool = False) -> list[str]:
    """A view as a pipe table with its long text below (folded under its title, if asked)."""
    measure = lambda text: len(escape_markdown(text))  # noqa: E731 - the cell as pasted
    table, lists = split_long(view, long_columns(view, CELL_LIMIT, measure))
    headers, rows = text_rows(table)
    numeric = [table.number_format(c) is not None for c in table.frame.columns]
    names = Names()  # run names in key columns and model column headers can be long
    escaped = [[names.fit(c) for c in row] for row in rows]
    title = escape_markdown(view.title)
    lines = [f"<details><summary>{title}</summary>", ""] if folded else [f"## {title}", ""]
    lines += [*_table([names.fit(h) for h in headers], escaped, numeric), "", *names.lines()]
    for title, items in lists:
        lines += [f"**{escape_markdown(title)}**", ""]
        lines += [f"- {escape_markdown(name)}: {escape_markdown(text)}" for name, text in items]
        lines.append("")
    return [*lines, "</details>", ""] if folded else lines


def render_markdown(report: Report) -> bytes:
    """The review table and its reasons, the notes, then the other views (folded after a
    review table, so a pull-request comment opens on the compact table)."""
    shown = layout(report)
    lines = [f"# {escape_markdown(shown.title)}", ""]
    if shown.review is not None:
        lines += review_lines(shown.review)
    for note in shown.notes:
        lines += [f"> {escape_markdown(note)}", ""]
    for view in shown.views:
        lines += view_lines(view, folded=shown.review is not None)
    return "\n".join(lines).encode("utf-8")
