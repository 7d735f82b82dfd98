"""Escaping every user-controlled string for the format it lands in, and safe file names.

Run names, params and paths come from users; they are escaped here, at the last
step, so no view needs to pre-escape anything.
"""

from __future__ import annotations

import re
from typing import Any

# Characters with meaning inside a GFM table cell ("<" and ">" become entities first).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def escape_markdown(text: str) -> str:
    """Text that GitHub renders literally inside a table cell (no HTML, links or pipes)."""
    text = " ".join(text.splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def escape_latex(text: str) -> str:
    """Text that LaTeX typesets literally (every special character replaced)."""
    text = " ".join(text.splitlines())
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def spreadsheet_safe(value: Any) -> Any:
    """Strings a spreadsheet would run as a formula get a leading quote; others unchanged."""
    if isinstance(value, str) and value.startswith(_SPREADSHEET_FORMULA):
        return "'" + value
    return value


def safe_filename(name: str, extension: str = "", *, max_length: int = 80) -> str:
    """A file name with no path parts, control or shell characters: [A-Za-z0-9._-] only."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:max_length] or "export"
    return f"{stem}.{extension}" if extension else stem
