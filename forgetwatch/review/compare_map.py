"""The gain-vs-erosion map's geometry: frontier, budget region, trajectories and labels.

Pure functions of the compared points (fractions, as ``queries.compare_points``
returns them) and of a budget, so what the Compare chart draws is decided once
here and tested without plotly; ``exports.charts`` only draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forgetwatch.queries import GENERAL_CAPABILITIES
from forgetwatch.review.budget import Budget

X, Y = "target_gain", "general_change"
# More labelled points than this pile up into a grey blot: then only the frontier and
# the finals are named, and the rest are counted per cluster ("5 models").
LABEL_LIMIT = 12
# Clusters are cells of a CLUSTER_BINS x CLUSTER_BINS grid over the points' extent.
CLUSTER_BINS = 8


@dataclass(frozen=True)
class BudgetRegion:
    """Where the budget's target and general limits hold: x >= min_gain, y >= min_general.

    Limits are in points (the chart's units); None = that side is unbounded.
    ``label`` is the legend entry, ``detail`` says where the general limit came from.
    """

    min_gain: float | None
    min_general: float | None
    label: str
    detail: str


def budget_region(plan: Budget) -> BudgetRegion | None:
    """The budget's allowed region on the map, or None when it limits neither axis.

    The y axis is general change, the mean of knowledge, code and instructions. A
    budget limits those per capability, so without a ``general`` rule the region uses
    the tightest of their ``max_drop`` limits, and ``detail`` says so: a model inside
    the region can still fail a single capability, which its verdict shows.
    """
    rules = {r.capability: r for r in plan.rules}
    target = rules.get("target")
    min_gain = target.min_gain if target else None
    general = rules.get("general")
    detail = ""
    if general is not None and general.max_drop is not None:
        drop: float | None = general.max_drop
    else:
        drops = {c: rules[c].max_drop for c in GENERAL_CAPABILITIES if c in rules}
        limited = {c: d for c, d in drops.items() if d is not None}
        drop = min(limited.values()) if limited else None
        if limited:
            named = ", ".join(f"{c} {d:g}" for c, d in limited.items())
            detail = (
                f"The budget has no general rule: the general limit is the tightest "
                f"capability max_drop ({named} points)."
            )
    if min_gain is None and drop is None:
        return None
    parts = []
    if min_gain is not None:
        parts.append(f"target gain ≥ {min_gain:+g}")
    if drop is not None:
        parts.append(f"general change ≥ {-drop:+g}" + ("*" if detail else ""))
    label = "within budget (" + ", ".join(parts) + ")"
    return BudgetRegion(min_gain, -drop if drop is not None else None, label, detail)


def pareto_frontier(points: pd.DataFrame) -> pd.Series:
    """Per row: True when no other point has more target gain AND more general change.

    General change reads + = better, so the frontier is the upper-right edge: the
    fine-tunes worth considering; every other one is beaten on both axes by one of
    them. Rows missing either axis are never on it. Identical points share a place.
    """
    on = pd.Series(False, index=points.index)
    valid = points[[X, Y]].dropna()
    if valid.empty:
        return on
    ranked = valid.sort_values([X, Y], ascending=False, kind="stable")
    best_before = ranked[Y].cummax().shift(1, fill_value=-np.inf)
    strict = ranked[Y] > best_before
    # A point equal to a frontier point is not beaten by it: it is on the frontier too.
    front = set(map(tuple, ranked.loc[strict, [X, Y]].to_numpy()))
    pairs = list(map(tuple, ranked[[X, Y]].to_numpy()))
    on.loc[ranked.index] = [p in front for p in pairs]
    return on


def frontier_line(points: pd.DataFrame, frontier: pd.Series) -> pd.DataFrame:
    """The frontier's points in order of target gain, for a step line ("vh") through them."""
    return points.loc[frontier, [X, Y]].drop_duplicates().sort_values(X).reset_index(drop=True)


def trajectories(points: pd.DataFrame) -> pd.DataFrame:
    """Per run with checkpoints on the map: its checkpoints by step, then its final model.

    Rows keep ``run_id``, the axes and ``kind``; a run without a checkpoint among the
    points has no trajectory (a lone final is just a point).
    """
    valid = points.dropna(subset=[X, Y])
    valid = valid[valid["run_id"].notna()]
    with_ckpt = valid.loc[valid["kind"] == "checkpoint", "run_id"].unique()
    runs = valid[valid["run_id"].isin(with_ckpt)]
    order = runs.assign(_last=runs["kind"] == "final", _step=runs["step"].astype("Float64"))
    order = order.sort_values(["run_id", "_last", "_step"], kind="stable")
    return order[["run_id", "model_id", "kind", "step", X, Y]].reset_index(drop=True)


def point_text(points: pd.DataFrame) -> pd.Series:
    """A point's label: a final's run name, a checkpoint's step ("@200")."""
    names = points["run_name"].where(points["run_name"].notna(), points["run_id"]).astype(object)
    steps = points["step"].astype("Float64")
    is_ckpt = (points["kind"] == "checkpoint") & steps.notna()
    at_step = "@" + steps.fillna(0).astype("Int64").astype(str)
    return at_step.where(is_ckpt, names).astype(object)


def point_labels(
    points: pd.DataFrame, frontier: pd.Series, *, limit: int = LABEL_LIMIT
) -> tuple[pd.Series, pd.DataFrame]:
    """Which points carry a label, and the clusters that count the rest.

    Up to ``limit`` points are all labelled. Past that, only the frontier and the
    final models are (only the frontier, if that is still too many), and the others
    are binned on a grid: a cell holding two or more of them gets one "N models" label
    at their mean. Returns the label per row ("" = none) and the clusters
    (``target_gain``, ``general_change``, ``text``, ``n``), in fractions like the points.
    """
    valid = points[[X, Y]].notna().all(axis=1)
    text = point_text(points).where(valid, "")
    no_clusters = pd.DataFrame({X: [], Y: [], "text": [], "n": []})
    if int(valid.sum()) <= limit:
        return text, no_clusters
    named = valid & (frontier | (points["kind"] == "final"))
    if int(named.sum()) > limit:
        named = valid & frontier
    rest = points.loc[valid & ~named, [X, Y]]
    labels = text.where(named, "")
    if rest.empty:
        return labels, no_clusters
    cells = pd.DataFrame({c: _bins(points.loc[valid, c], rest[c]) for c in (X, Y)})
    grouped = rest.groupby([cells[X], cells[Y]])
    clusters = grouped.mean().assign(n=grouped.size()).reset_index(drop=True)
    clusters = clusters[clusters["n"] >= 2].reset_index(drop=True)
    clusters["text"] = clusters["n"].astype(int).astype(str) + " models"
    return labels, clusters[[X, Y, "text", "n"]]


def _bins(extent: pd.Series, values: pd.Series) -> pd.Series:
    """Grid cell of each value along one axis, over the extent of every shown point."""
    low, high = float(extent.min()), float(extent.max())
    width = (high - low) / CLUSTER_BINS or 1.0
    cell = np.floor((values.to_numpy(dtype=float) - low) / width).clip(0, CLUSTER_BINS - 1)
    return pd.Series(cell.astype(int), index=values.index)
