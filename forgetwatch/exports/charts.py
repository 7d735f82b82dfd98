"""Compare charts and the shared palette: pure functions from a DataFrame to a Figure.

No widgets and no database here, so each chart can be built and checked in a
plain test. Scores arrive as 0..1 fractions and are drawn in points (x100).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from forgetwatch.review import compare_map
from forgetwatch.review.compare_map import BudgetRegion
from forgetwatch.review.comparison import base_name, model_label
from forgetwatch.review.views import fmt_points

# One colour-blind-safe palette (Okabe-Ito) for every chart and the HTML report:
# gain is always blue, erosion vermillion, hallucination reddish purple.
PALETTE = {
    "gain": "#0072B2",
    "erosion": "#D55E00",
    "hallucination": "#CC79A7",
    "neutral": "#999999",
}
GOOD, BAD, NEUTRAL = PALETTE["gain"], PALETTE["erosion"], PALETTE["neutral"]
# Diverging: bluish green = hallucinates less, grey = unchanged, reddish purple = more.
HALLUCINATION_SCALE = [[0.0, "#009E73"], [0.5, "#EEEEEE"], [1.0, PALETTE["hallucination"]]]
SUMMARY_SERIES = (  # column, legend name, colour
    ("target_gain", "target gain", PALETTE["gain"]),
    ("general_change", "general-capability change", PALETTE["erosion"]),
    ("hallucination_change", "hallucination change", PALETTE["hallucination"]),
)

# One colour per capability, for lines that follow a capability across checkpoints.
CAPABILITY_COLOURS = {
    "target": PALETTE["gain"],
    "knowledge": "#E69F00",
    "code": "#56B4E9",
    "instructions": "#009E73",
    "hallucination": PALETTE["hallucination"],
}

QUADRANTS = (  # x side, y side, label
    (1, 1, "gained & kept"),
    (1, -1, "gained, forgot"),
    (-1, 1, "no gain, kept"),
    (-1, -1, "no gain, forgot"),
)
# Colours read on a white and on Streamlit's dark background alike: mid greys, the
# Okabe-Ito orange for the frontier, translucent bluish green for the budget's region.
QUADRANT_TEXT = "#8C8C8C"
QUADRANT_BOX = "rgba(128,128,128,0.12)"
OUTLINE = "rgba(128,128,128,0.9)"
FRONTIER = "#E69F00"
TRAJECTORY = "rgba(140,140,140,0.75)"
REGION_FILL = "rgba(0,158,115,0.13)"
REGION_LINE = "rgba(0,158,115,0.55)"


def _symmetric_range(*values: pd.Series, limits: tuple[float | None, ...] = ()) -> list[float]:
    """An axis range centred on zero, so the quadrants keep their meaning at a glance."""
    extents = [float(v.abs().max()) for v in values if v.notna().any()]
    extents += [abs(v) for v in limits if v is not None]
    extent = max([e * 1.3 for e in extents] + [5.0])
    return [-extent, extent]


def _hover_data(points: pd.DataFrame) -> np.ndarray:
    """Per point: run id (read back on click), model id, run name, kind/step, hallucination.

    One object array rather than a list of lists: plotly validates a nested list
    value by value, which cost a quarter of a second at 10,000 points. When the
    points have more than one base, the kind/step text also names the point's base.
    """
    bases = points.get("base_model_id", pd.Series(dtype=object))
    several = bases.nunique() > 1
    against = [f", vs {base_name(b)}" for b in bases] if several else [""] * len(points)
    rows = [
        (
            run_id,
            model_id,
            run_name if isinstance(run_name, str) and run_name else run_id,
            (kind if pd.isna(step) else f"{kind} step {int(step)}") + vs,
            fmt_points(hallucination),
        )
        for run_id, model_id, run_name, kind, step, hallucination, vs in zip(
            points["run_id"], points["model_id"], points["run_name"], points["kind"],
            points["step"], points["hallucination_change"], against, strict=True,
        )
    ]  # fmt: skip
    data = np.empty((len(rows), 5), dtype=object)
    if rows:
        data[:] = rows
    return data


HOVER = (
    "<b>%{customdata[2]}</b> (%{customdata[3]})<br>"
    "target gain %{x:+.1f}<br>general change %{y:+.1f}<br>"
    "hallucination change %{customdata[4]}<extra></extra>"
)
# Above this many points a trace is drawn with WebGL (go.Scattergl): SVG slows to a
# crawl with thousands of markers, WebGL draws 100,000 smoothly.
WEBGL_POINTS = 1000
BACKDROP = "#8C8C8C"


def _scatter_class(n_points: int) -> type[go.Scatter] | type[go.Scattergl]:
    return go.Scattergl if n_points > WEBGL_POINTS else go.Scatter


def _legend_marker(name: str, size: int) -> go.Scatter:
    """A legend-only marker for a colour-scaled trace, readable on light and dark."""
    return go.Scatter(
        x=[None], y=[None], mode="markers", name=name, legendgroup=name, hoverinfo="skip",
        marker={"size": size, "color": "rgba(150,150,150,0.9)", "line": {"width": 1,
                                                                        "color": OUTLINE}},
    )  # fmt: skip


def _scatter_trace(
    points: pd.DataFrame, *, name: str, size: int, colored: bool
) -> go.Scatter | go.Scattergl:
    marker: dict[str, object] = {"size": size, "line": {"width": 1, "color": OUTLINE}}
    if colored:
        marker |= {"color": points["hallucination_change"] * 100, "coloraxis": "coloraxis"}
    else:
        marker |= {"color": NEUTRAL, "symbol": "circle-open"}
    return _scatter_class(len(points))(
        x=points["target_gain"] * 100,
        y=points["general_change"] * 100,
        mode="markers",
        name=name,
        marker=marker,
        customdata=_hover_data(points),
        hovertemplate=HOVER,
    )


def _backdrop_trace(points: pd.DataFrame) -> go.Scatter | go.Scattergl:
    """Every other model: small, grey and faded, so the compared ones stand out.

    Still hoverable and clickable (``customdata[0]`` is the run id), so the map
    doubles as a way to find a run worth comparing.
    """
    return _scatter_class(len(points))(
        x=points["target_gain"] * 100,
        y=points["general_change"] * 100,
        mode="markers",
        name=f"other models ({len(points):,})",
        marker={"size": 6, "color": BACKDROP, "opacity": 0.45},
        customdata=_hover_data(points),
        hovertemplate=HOVER,
    )


def _region_trace(region: BudgetRegion, x_range: list[float], y_range: list[float]) -> go.Scatter:
    """The budget's allowed region as a translucent rectangle with its legend entry.

    A filled trace rather than a layout shape, so hovering the region says where the
    general limit came from (``region.detail``).
    """
    x0 = x_range[0] if region.min_gain is None else region.min_gain
    y0 = y_range[0] if region.min_general is None else region.min_general
    x1, y1 = x_range[1], y_range[1]
    return go.Scatter(
        x=[x0, x1, x1, x0, x0],
        y=[y0, y0, y1, y1, y0],
        mode="lines",
        fill="toself",
        fillcolor=REGION_FILL,
        line={"color": REGION_LINE, "width": 1, "dash": "dot"},
        name=region.label,
        hoveron="fills",
        hoverinfo="text",
        text=region.detail or region.label,
    )


def _trajectory_trace(points: pd.DataFrame) -> go.Scatter | None:
    """One thin line per run through its checkpoints in step order, ending at its final."""
    path = compare_map.trajectories(points)
    if path.empty:
        return None
    xs: list[float | None] = []
    ys: list[float | None] = []
    for _, run in path.groupby("run_id", sort=False):
        xs += [*(run["target_gain"] * 100), None]
        ys += [*(run["general_change"] * 100), None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", name="checkpoint trajectory", hoverinfo="skip",
        line={"color": TRAJECTORY, "width": 1},
    )  # fmt: skip


def _frontier_trace(points: pd.DataFrame, frontier: pd.Series) -> go.Scatter | None:
    line = compare_map.frontier_line(points, frontier)
    if line.empty:
        return None
    return go.Scatter(
        x=line["target_gain"] * 100, y=line["general_change"] * 100, mode="lines",
        line={"color": FRONTIER, "width": 2, "shape": "vh"}, name="Pareto frontier",
        hoverinfo="skip",
    )  # fmt: skip


def _label_traces(points: pd.DataFrame, frontier: pd.Series) -> list[go.Scatter]:
    """Point labels (run names, "@step") and "N models" cluster labels, as text traces."""
    labels, clusters = compare_map.point_labels(points, frontier)
    shown = labels != ""
    traces = []
    if shown.any():
        traces.append(
            go.Scatter(
                x=points.loc[shown, "target_gain"] * 100,
                y=points.loc[shown, "general_change"] * 100,
                mode="text",
                text=list(labels[shown]),
                textposition="top center",
                name="labels",
                showlegend=False,
                hoverinfo="skip",
            )  # fmt: skip
        )
    if not clusters.empty:
        traces.append(
            go.Scatter(
                x=clusters["target_gain"] * 100,
                y=clusters["general_change"] * 100,
                mode="text",
                text=list(clusters["text"]),
                textposition="middle right",
                textfont={"color": QUADRANT_TEXT},
                name="clusters",
                showlegend=False,
                hoverinfo="skip",
            )  # fmt: skip
        )
    return traces


def compare_scatter(
    points: pd.DataFrame,
    context: pd.DataFrame | None = None,
    *,
    region: BudgetRegion | None = None,
) -> go.Figure:
    """Target gain (x) vs general-capability change (y), coloured by hallucination change.

    Final models are large markers, checkpoints small, joined to their final by a
    thin trajectory; models without a hallucination eval are grey rings. The Pareto
    frontier (``review.compare_map``) is a step line through the models no other
    beats on both axes, and ``region`` (the budget's limits) is shaded. ``context``
    (rows shaped like ``points``) adds every other model as a faded grey backdrop,
    drawn with WebGL when there are many. ``customdata[0]`` is the run id, so a
    click can open that run.
    """
    data = points.dropna(subset=["target_gain", "general_change"])
    fig = go.Figure()
    shown = [data]
    backdrop = pd.DataFrame()
    if context is not None:
        backdrop = context.dropna(subset=["target_gain", "general_change"])
        backdrop = backdrop[~backdrop["model_id"].isin(data["model_id"])]
        if not backdrop.empty:
            shown.append(backdrop)
    limits_x = (region.min_gain,) if region else ()
    limits_y = (region.min_general,) if region else ()
    x_range = _symmetric_range(*(d["target_gain"] * 100 for d in shown), limits=limits_x)
    y_range = _symmetric_range(*(d["general_change"] * 100 for d in shown), limits=limits_y)
    if region is not None:
        fig.add_trace(_region_trace(region, x_range, y_range))
    if not backdrop.empty:
        fig.add_trace(_backdrop_trace(backdrop))
    frontier = compare_map.pareto_frontier(data)
    for extra in (_trajectory_trace(data), _frontier_trace(data, frontier)):
        if extra is not None:
            fig.add_trace(extra)
    has_hall = data["hallucination_change"].notna()
    for kind, size in (("final", 16), ("checkpoint", 9)):
        of_kind = data["kind"] == kind
        for colored, suffix in ((True, ""), (False, ", no hallucination eval")):
            subset = data[of_kind & (has_hall == colored)]
            if not subset.empty:
                trace = _scatter_trace(subset, name=f"{kind}{suffix}", size=size, colored=colored)
                # A colour-scaled marker's legend symbol is drawn near-black, invisible on
                # the dark theme: the legend gets a mid-grey stand-in instead (below).
                trace.update(showlegend=not colored, legendgroup=f"{kind}{suffix}")
                fig.add_trace(trace)
                if colored:
                    fig.add_trace(_legend_marker(f"{kind}{suffix}", size))
    fig.add_traces(_label_traces(data, frontier))
    extent = (data["hallucination_change"].abs().max() * 100) if has_hall.any() else 1.0
    fig.update_layout(
        coloraxis={
            "colorscale": HALLUCINATION_SCALE,
            "cmid": 0,
            "cmin": -extent,
            "cmax": extent,
            "colorbar": {"title": {"text": "hallucination<br>change (pts)"}},
        },
        xaxis={"title": "target gain (points)", "zeroline": False, "range": x_range},
        yaxis={
            "title": "general-capability change (points)",
            "zeroline": False,
            "range": y_range,
        },  # fmt: skip
        legend={"orientation": "h", "y": -0.15},
        height=560,
        margin={"t": 30},
        clickmode="event+select",
    )
    fig.add_hline(y=0, line_color=NEUTRAL)
    fig.add_vline(x=0, line_color=NEUTRAL)
    for x_side, y_side, text in QUADRANTS:
        fig.add_annotation(
            x=0.98 if x_side > 0 else 0.02,
            y=0.98 if y_side > 0 else 0.02,
            xref="paper",
            yref="paper",
            text=text,
            showarrow=False,
            xanchor="right" if x_side > 0 else "left",
            yanchor="top" if y_side > 0 else "bottom",
            font={"color": QUADRANT_TEXT, "size": 13},
            bgcolor=QUADRANT_BOX,
        )
    return fig


def summary_bars(points: pd.DataFrame) -> go.Figure:
    """Per compared model: target gain, general change and hallucination change, grouped.

    The static chart of the HTML report; the three series keep their palette
    colours so the report reads like the dashboard.
    """
    names = [
        model_label(r.run_name, r.run_id, r.kind, r.step) for r in points.itertuples(index=False)
    ]
    fig = go.Figure(
        [
            go.Bar(
                name=name,
                x=names,
                y=points[column] * 100,
                marker_color=colour,
                text=[fmt_points(v) for v in points[column]],
                textposition="outside",
            )
            for column, name, colour in SUMMARY_SERIES
        ]
    )
    fig.add_hline(y=0, line_color=NEUTRAL)
    fig.update_layout(
        barmode="group",
        yaxis_title="change vs base (points)",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 30},
    )
    return fig


def comparison_figures(
    points: pd.DataFrame, *, region: BudgetRegion | None = None
) -> list[go.Figure]:
    """The static charts of a comparison report: the gain/forgetting map and summary bars."""
    return [compare_scatter(points, region=region), summary_bars(points)]


# Okabe-Ito colours for the capability lines; target and hallucination keep theirs.
