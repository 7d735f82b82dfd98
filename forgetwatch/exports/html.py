"""A self-contained HTML report: tables, notes and static charts in one file.

The file must open offline and be safe to mail around, so it carries no
scripts, no external CSS/fonts/images: charts are drawn to SVG by kaleido (which
drives the system chromium; ``kaleido.get_chrome_sync`` is never called because
it downloads) and inlined as base64 data URIs, and every user string is
HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from forgetwatch.exports.layout import layout
from forgetwatch.review.report_table import VERDICT_COLORS, VERDICT_ROW, ReviewTable
from forgetwatch.review.views import NOISE_COLOR, Report, View, label, text_rows

STYLE = """
:root { color-scheme: light dark; --fg: #1f1f1f; --bg: #ffffff; --muted: #666; --rule: #ddd; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e8e6e3; --bg: #171614; --muted: #aaa; --rule: #444; }
  img.chart { background: #ffffff; }
}
body { font-family: system-ui, sans-serif; color: var(--fg); background: var(--bg);
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; box-sizing: border-box; }
h1, h2, p, li { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.5rem 0 1.5rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid var(--rule); padding: 0.25rem 0.6rem; text-align: left;
         vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
th { overflow-wrap: anywhere; min-width: 6rem; }
td .long { min-width: 14rem; max-width: 32rem; overflow-wrap: anywhere; }
td.noise { color: NOISE_COLOR; }
table.review td, table.review th { padding: 0.35rem 0.8rem; }
.legend { color: var(--muted); font-size: 0.85rem; }
.verdict { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 0.75rem;
           font-weight: 600; border: 1px solid var(--rule); }
VERDICT_CSS
.note { color: var(--muted); border-left: 3px solid #0072B2; padding-left: 0.6rem; }
img.chart { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
""".replace("NOISE_COLOR", NOISE_COLOR).replace(
    "VERDICT_CSS",
    "\n".join(
        f".verdict-{status} {{ border-color: {color}; "
        f"background: color-mix(in srgb, {color} 24%, transparent); }}"
        for status, color in VERDICT_COLORS.items()
    ),
)
LONG_TEXT = 40  # characters past which a text cell wraps in a bounded box


# kaleido renders in a Chromium tab; on a loaded machine it can call into the tab before
# its page script ran ("kaleido_scopes is not defined"). A second try finds it loaded.
RENDER_ATTEMPTS = 3


def _svg(figure: Any) -> bytes:
    for attempt in range(RENDER_ATTEMPTS):
        try:
            return bytes(figure.to_image(format="svg", width=1000, height=560))
        except Exception as exc:  # kaleido's JavascriptError lives in a private module
            if "kaleido_scopes is not defined" not in str(exc) or attempt == RENDER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def chart_image(figure: Any) -> str:
    """``figure`` as an ``<img>`` with an inline SVG data URI (kaleido, system chromium)."""
    svg = _svg(figure)
    data = base64.b64encode(svg).decode("ascii")
    return f'<img class="chart" alt="chart" src="data:image/svg+xml;base64,{data}">'


def verdict_html(status: str) -> str:
    """A verdict as a coloured pill (the dashboard's colours; the text says it too)."""
    known = status if status in VERDICT_COLORS else "unknown"
    return f'<span class="verdict verdict-{known}">{html.escape(status)}</span>'


def _text(text: str) -> str:
    escaped = html.escape(text)
    return f'<div class="long">{escaped}</div>' if len(text) > LONG_TEXT else escaped


def table_html(view: View) -> str:
    """One view as an HTML table with the page's number formats; every cell escaped.

    Cells within noise get the ``noise`` class (grey) as well as the text marker;
    long text wraps in a bounded box and a wide table scrolls inside its own box.
    """
    headers, rows = text_rows(view)
    columns = list(view.frame.columns)
    numeric = [view.number_format(c) is not None for c in columns]
    cls = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{c}>{html.escape(h)}</th>" for h, c in zip(headers, cls, strict=True))

    def cell(i: int, column: str, text: str, numeric: bool) -> str:
        classes = " ".join(
            name for name, on in (("num", numeric), ("noise", view.noise_at(i, column))) if on
        )
        attr = f' class="{classes}"' if classes else ""
        if column == "verdict" and text:
            return f"<td{attr}>{verdict_html(text)}</td>"
        return f"<td{attr}>{html.escape(text) if numeric else _text(text)}</td>"

    body = "".join(
        "<tr>"
        + "".join(cell(i, c, v, n) for c, v, n in zip(columns, row, numeric, strict=True))
        + "</tr>"
        for i, row in enumerate(rows)
    )
    title = html.escape(view.title)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<h2>{title}</h2>\n<div class="scroll">{table}</div>'


def review_html(review: ReviewTable) -> str:
    """The compact capability × model table, its legend, and each model's reasons."""
    cells = review.cells
    models = review.models
    head = "<th>Capability</th>" + "".join(f'<th class="num">{html.escape(m)}</th>' for m in models)
    rows = []
    for i, row in cells.iterrows():
        first = str(row.iloc[0])
        if first == VERDICT_ROW:
            tds = "".join(f'<td class="num">{verdict_html(str(row[m]))}</td>' for m in models)
        else:
            tds = "".join(
                f'<td class="num{" noise" if review.cell_noise[m].iloc[i] else ""}">'
                f"{html.escape(str(row[m]))}</td>"
                for m in models
            )
        rows.append(f"<tr><th>{html.escape(first)}</th>{tds}</tr>")
    body = "".join(rows)
    table = f'<table class="review"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    parts = [
        f"<h2>{html.escape(review.title)}</h2>",
        f'<div class="scroll">{table}</div>',
        f'<p class="legend">{html.escape(review.legend)}</p>',
    ]
    if any(review.reasons.values()):
        items = "".join(
            f"<li><strong>{html.escape(model)}</strong> {verdict_html(review.verdicts[model])}"
            + ("<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in reasons) + "</ul>")
            + "</li>"
            for model, reasons in review.reasons.items()
        )
        parts += ["<h3>Why</h3>", f'<ul class="why">{items}</ul>']
    return "\n".join(parts)


def render_html(report: Report) -> bytes:
    """The whole report as one UTF-8 HTML document with no external references."""
    shown = layout(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(shown.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(shown.title)}</h1>",
        *([review_html(shown.review)] if shown.review is not None else []),
        *(f'<p class="note">{html.escape(note)}</p>' for note in shown.notes),
        *(chart_image(figure) for figure in report.figures),
        *(table_html(view) for view in shown.views),
        f'<p class="note">Columns: {html.escape(", ".join(_legend(shown.views)))}</p>',
        "</body></html>",
    ]
    return "\n".join(parts).encode("utf-8")


def _legend(views: list[View]) -> list[str]:
    """Header names used, so a reader of a forwarded file can map them back to fields."""
    seen = dict.fromkeys(c for v in views for c in v.frame.columns)
    return [f"{label(c)} = {c}" for c in seen if label(c) != c]
