"""Greying within-noise models in comparison charts, for the page and the HTML report.

The chart builders draw every model alike; this pass fades what is within noise,
so a chart says what the tables say. It reads each point's model id from the
scatter's ``customdata[1]`` and matches grouped bars to models by position.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from forgetwatch.review.comparison import Comparison
from forgetwatch.review.views import NOISE_MARK

FADED = 0.3


def faded(comparison: Comparison, figures: list[Any]) -> list[Any]:
    """``figures`` (built from ``comparison.points``) with within-noise models faded."""
    return grey_noise(figures, comparison.points, comparison.noise)


def grey_noise(figures: list[Any], points: pd.DataFrame, noise: pd.DataFrame) -> list[Any]:
    """``figures`` with within-noise points/bars faded (changed in place and returned).

    ``noise`` has model_id plus boolean target_gain / general_change /
    hallucination_change columns (``trust.headline_noise``). A scatter point is
    faded when both of its axes (target gain, general change) are within noise;
    a bar when its own series is.
    """
    flags = noise.set_index("model_id") if not noise.empty else pd.DataFrame()
    for figure in figures:
        for trace in figure.data:
            if trace.type == "scatter" and trace.customdata is not None:
                trace.marker.opacity = [
                    FADED if _noise(flags, row[1], "target_gain", "general_change") else 1.0
                    for row in trace.customdata
                ]
            elif trace.type == "bar" and len(trace.x or ()) == len(points):
                column = _series_column(trace.name)
                if column is None:
                    continue
                faded = [_noise(flags, m, column) for m in points["model_id"]]
                trace.marker.opacity = [FADED if f else 1.0 for f in faded]
                if trace.text is not None:
                    trace.text = [
                        t + NOISE_MARK if f and t else t
                        for t, f in zip(trace.text, faded, strict=True)
                    ]
    return figures


def _noise(flags: pd.DataFrame, model_id: str, *columns: str) -> bool:
    """True when every named headline of ``model_id`` is within noise (unknown: noise)."""
    if model_id not in flags.index:
        return True
    return all(bool(flags.at[model_id, c]) for c in columns if c in flags.columns)


def _series_column(name: str | None) -> str | None:
    """The headline column a summary-bar series shows, from its legend name."""
    text = (name or "").lower()
    for column in ("target_gain", "general_change", "hallucination_change"):
        if column.split("_")[0] in text:
            return column
    return None
