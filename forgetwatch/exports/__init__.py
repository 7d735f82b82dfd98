"""Exports: tables as pages show them, written in every format reviewers ask for.

``views`` says how columns are labelled and formatted, ``escaping`` makes user
strings safe per format, ``formats`` is the one table of writers every export
goes through, ``html`` draws the self-contained report, and ``comparison``
builds the models x tasks table. Pages and the CLI use the same functions, so
an export holds exactly the numbers on the page (datasette's rule).
"""

from forgetwatch.exports.comparison import CompareSpec, Comparison, build_comparison
from forgetwatch.exports.escaping import safe_filename
from forgetwatch.exports.formats import FORMATS, Format, file_name, get_format, render
from forgetwatch.exports.views import (
    COLUMNS,
    Column,
    Report,
    View,
    as_points,
    fmt_points,
    label,
    ordered,
)

__all__ = [
    "COLUMNS",
    "FORMATS",
    "Column",
    "CompareSpec",
    "Comparison",
    "Format",
    "Report",
    "View",
    "as_points",
    "build_comparison",
    "file_name",
    "fmt_points",
    "get_format",
    "label",
    "ordered",
    "render",
    "safe_filename",
]
