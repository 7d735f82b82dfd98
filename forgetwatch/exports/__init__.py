"""Exports: the writers that put review tables into every format reviewers ask for.

The tables themselves come from the review layer (``forgetwatch.review``):
``View``/``Report`` say how columns are labelled and formatted, and every
export is built from the same view model as the page it mirrors (datasette's
rule). Here, ``escaping`` makes user strings safe per format, ``formats`` is the
one table of writers every export goes through, ``html`` draws the
self-contained report, ``charts`` builds the plotly figures pages and HTML
reports share, and ``check_report`` writes a budget verdict as a PR comment.
"""

from forgetwatch.exports.escaping import safe_filename
from forgetwatch.exports.formats import FORMATS, Format, file_name, get_format, render

__all__ = ["FORMATS", "Format", "file_name", "get_format", "render", "safe_filename"]
