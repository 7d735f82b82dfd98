"""One direction convention: every capability's change is shown with one sign and one label.

Queries and tests work on task scores, where higher is better. Readers of a
hallucination number expect "+ = worse" (the hallucination rate rose), so a
capability in ``suite.WORSE_IS_UP`` is shown as its failure rate: its score,
base score, delta and CI are turned around here, once, and every page, chart,
export and ``check`` comment reads the turned frame. Nothing else flips a sign.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgetwatch.suite import WORSE_IS_UP, change_label, change_sign

__all__ = ["capability_title", "change_label", "change_sign", "oriented", "shown_change"]

RATE_COLUMNS = ("value", "base_value")


def shown_change(capability: str, delta: float | None) -> float | None:
    """The signed change a reader sees for ``capability`` (a fraction, or None)."""
    if delta is None or pd.isna(delta):
        return None
    return change_sign(capability) * float(delta)


def capability_title(capability: str) -> str:
    """A capability's name in a table row: failure-rate ones say so ("+ = worse")."""
    return capability if change_sign(capability) > 0 else f"{capability} (rate, + = worse)"


def oriented(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with rows of WORSE_IS_UP capabilities shown as failure rates.

    Rows need a ``capability`` column; ``value``/``base_value`` become ``1 - x``,
    ``delta`` changes sign and the CI ends swap, so a rise in hallucination is a
    positive number with its CI above zero. Other rows are unchanged.
    """
    out = frame.copy()
    if out.empty or "capability" not in out.columns:
        return out
    flip = out["capability"].isin(WORSE_IS_UP).to_numpy()
    if not flip.any():
        return out
    # Whole-column numpy assignments: .loc row updates cost ~1 ms each, and verdicts for
    # every model of a large database turn a frame per model.
    for column in RATE_COLUMNS:
        if column in out.columns:
            values = out[column].to_numpy(dtype=float)
            out[column] = np.where(flip, 1 - values, values)
    if "delta" in out.columns:
        delta = out["delta"].to_numpy(dtype=float)
        out["delta"] = np.where(flip, -delta, delta)
    if "ci_low" in out.columns and "ci_high" in out.columns:
        low = out["ci_low"].to_numpy(dtype=float)
        high = out["ci_high"].to_numpy(dtype=float)
        out["ci_low"] = np.where(flip, -high, low)
        out["ci_high"] = np.where(flip, -low, high)
    return out
