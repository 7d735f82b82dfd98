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
    # Symbols our own labels and sentences use ("Detects ≥", "Right→wrong", "—"): pdflatex's
    # utf8 input cannot typeset them as characters.
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "→": r"$\rightarrow$",
    "←": r"$\leftarrow$",
    "×": r"$\times$",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "·": r"$\cdot$",
    "—": "---",
    "–": "--",
    "…": r"\ldots{}",
}
# A word longer than LATEX_BREAK_EVERY characters (a path, a hash, a long run name) may
# break after these characters, and is cut every LATEX_BREAK_EVERY characters where it
# has none, so a narrow column wraps it; shorter words (numbers) never break.
_LATEX_BREAK_AFTER = frozenset("-_/.,;:=")
LATEX_BREAK_EVERY = 16
_SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def escape_markdown(text: str) -> str:
    """Text that GitHub renders literally inside a table cell (no HTML, links or pipes)."""
    text = " ".join(text.splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _latex_char(ch: str) -> str:
    if ch in _LATEX_SPECIAL:
        return _LATEX_SPECIAL[ch]
    # Beyond Latin-1 (emoji, CJK) pdflatex's utf8 input stops with an error; a ? keeps
    # the document compiling (every export that must keep the name exactly is CSV/XLSX).
    return ch if ord(ch) < 256 else "?"


def escape_latex(text: str) -> str:
    """Text that LaTeX typesets literally (every special character replaced)."""
    text = " ".join(text.splitlines())
    return "".join(_latex_char(ch) for ch in text)


def latex_tokens(text: str) -> list[str]:
    """The pieces ``breakable_latex`` lets LaTeX break between (raw text, unescaped)."""
    tokens: list[str] = []
    for word in " ".join(text.splitlines()).split(" "):
        if len(word) <= LATEX_BREAK_EVERY:
            tokens.append(word)
            continue
        piece = ""
        for ch in word:
            piece += ch
            if ch in _LATEX_BREAK_AFTER or len(piece) >= LATEX_BREAK_EVERY:
                tokens.append(piece)
                piece = ""
        if piece:
            tokens.append(piece)
    return tokens


def breakable_latex(text: str) -> str:
    """``escape_latex`` text that may also break inside long unspaced runs (paths, hashes),
    so a narrow ``p{}`` column wraps it instead of overflowing."""
    words = []
    for word in " ".join(text.splitlines()).split(" "):
        words.append(r"\allowbreak{}".join(escape_latex(t) for t in latex_tokens(word)))
    return " ".join(words)


def spreadsheet_safe(value: Any) -> Any:
    """Strings a spreadsheet would run as a formula get a leading quote; others unchanged."""
    if isinstance(value, str) and value.startswith(_SPREADSHEET_FORMULA):
        return "'" + value
    return value


def safe_filename(name: str, extension: str = "", *, max_length: int = 80) -> str:
    """A file name with no path parts, control or shell characters: [A-Za-z0-9._-] only."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:max_length] or "export"
    return f"{stem}.{extension}" if extension else stem
