"""The review layer: one view model per question forgetwatch answers.

Pages, exports and CLI commands all read these, so a delta, a sign, a label or a
verdict is decided here once and reads the same everywhere. ``views`` says how a
column is labelled and formatted; ``trust`` shapes the significance tests;
``budget`` gives verdicts; ``comparison`` builds the Compare tables; ``runs``,
``run``, ``flips``, ``checkpoints`` and ``breakeven`` serve the other pages.
"""

from forgetwatch.review.comparison import CompareSpec, Comparison, build_comparison
from forgetwatch.review.views import (
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
    "Column",
    "CompareSpec",
    "Comparison",
    "Report",
    "View",
    "as_points",
    "build_comparison",
    "fmt_points",
    "label",
    "ordered",
]
