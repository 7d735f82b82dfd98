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

from forgetwatch.review.views import NOISE_COLOR, Report, View, label, text_rows

STYLE = """
:root { color-scheme: light dark; --fg: #1f1f1f; --bg: #ffffff; --muted: #666; --rule: #ddd; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e8e6e3; --bg: #171614; --muted: #aaa; --rule: #444; }
  img.chart { background: #ffffff; }
}
body { font-family: system-ui, sans-serif; color: var(--fg); background: var(--bg);
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid var(--rule); padding: 0.25rem 0.6rem; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.noise { color: NOISE_COLOR; }
.note { color: var(--muted); border-left: 3px solid #0072B2; padding-left: 0.6rem; }
img.chart { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
""".replace("NOISE_COLOR", NOISE_COLOR)


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


def table_html(view: View) -> str:
    """One view as an HTML table with the page's number formats; every cell escaped.

    Cells within noise get the ``noise`` class (grey) as well as the text marker.
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
        return f"<td{attr}>{html.escape(text)}</td>"

    body = "".join(
        "<tr>"
        + "".join(cell(i, c, v, n) for c, v, n in zip(columns, row, numeric, strict=True))
        + "</tr>"
        for i, row in enumerate(rows)
    )
    title = html.escape(view.title)
    return f"<h2>{title}</h2>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> bytes:
    """The whole report as one UTF-8 HTML document with no external references."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
        *(f'<p class="note">{html.escape(note)}</p>' for note in report.notes),
        *(chart_image(figure) for figure in report.figures),
        *(table_html(view) for view in report.views),
        f'<p class="note">Columns: {html.escape(", ".join(_legend(report)))}</p>',
        "</body></html>",
    ]
    return "\n".join(parts).encode("utf-8")


def _legend(report: Report) -> list[str]:
    """Header names used, so a reader of a forwarded file can map them back to fields."""
    seen = dict.fromkeys(c for v in report.views for c in v.frame.columns)
    return [f"{label(c)} = {c}" for c in seen if label(c) != c]
