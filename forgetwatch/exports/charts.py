"""Compare charts and the shared palette: pure functions from a DataFrame to a Figure.

No widgets and no database here, so each chart can be built and checked in a
plain test. Scores arrive as 0..1 fractions and are drawn in points (x100).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from forgetwatch.review.comparison import model_label
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


def _symmetric_range(*values: pd.Series) -> list[float]:
    """An axis range centred on zero, so the quadrants keep their meaning at a glance."""
    extents = [float(v.abs().max()) for v in values if v.notna().any()]
    extent = max([e * 1.3 for e in extents] + [5.0])
    return [-extent, extent]


def _hover_data(points: pd.DataFrame) -> np.ndarray:
    """Per point: run id (read back on click), model id, run name, kind/step, hallucination.

    One object array rather than a list of lists: plotly validates a nested list
    value by value, which cost a quarter of a second at 10,000 points.
    """
    rows = [
        (
            run_id,
            model_id,
            run_name if isinstance(run_name, str) and run_name else run_id,
            kind if pd.isna(step) else f"{kind} step {int(step)}",
            fmt_points(hallucination),
        )
        for run_id, model_id, run_name, kind, step, hallucination in zip(
            points["run_id"], points["model_id"], points["run_name"], points["kind"],
            points["step"], points["hallucination_change"], strict=True,
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
# More run-name labels than this overlap into a grey blot; hover still names each point.
LABELLED_POINTS = 30
BACKDROP = "#8C8C8C"


def _scatter_class(n_points: int) -> type[go.Scatter] | type[go.Scattergl]:
    return go.Scattergl if n_points > WEBGL_POINTS else go.Scatter


def _scatter_trace(
    points: pd.DataFrame, *, name: str, size: int, colored: bool, labelled: bool
) -> go.Scatter | go.Scattergl:
    marker: dict[str, object] = {"size": size, "line": {"width": 1, "color": "#333333"}}
    if colored:
        marker |= {"color": points["hallucination_change"] * 100, "coloraxis": "coloraxis"}
    else:
        marker |= {"color": NEUTRAL, "symbol": "circle-open"}
    # Final models carry their run name, so a static export still says who is who.
    labelled = labelled and len(points) <= LABELLED_POINTS
    return _scatter_class(len(points))(
        x=points["target_gain"] * 100,
        y=points["general_change"] * 100,
        mode="markers+text" if labelled else "markers",
        text=points["run_name"].fillna(points["run_id"]) if labelled else None,
        textposition="top center",
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


def compare_scatter(points: pd.DataFrame, context: pd.DataFrame | None = None) -> go.Figure:
    """Target gain (x) vs general-capability change (y), coloured by hallucination change.

    Final models are large markers, checkpoints small; models without a
    hallucination eval are grey rings. ``context`` (rows shaped like ``points``)
    adds every other model as a faded grey backdrop, drawn with WebGL when there
    are many, so thousands of runs stay readable with the compared ones on top.
    ``customdata[0]`` is the run id, so a click can open that run.
    """
    data = points.dropna(subset=["target_gain", "general_change"])
    fig = go.Figure()
    shown = [data]
    if context is not None:
        backdrop = context.dropna(subset=["target_gain", "general_change"])
        backdrop = backdrop[~backdrop["model_id"].isin(data["model_id"])]
        if not backdrop.empty:
            fig.add_trace(_backdrop_trace(backdrop))
            shown.append(backdrop)
    has_hall = data["hallucination_change"].notna()
    for kind, size in (("final", 16), ("checkpoint", 9)):
        of_kind = data["kind"] == kind
        for colored, suffix in ((True, ""), (False, ", no hallucination eval")):
            subset = data[of_kind & (has_hall == colored)]
            if not subset.empty:
                fig.add_trace(
                    _scatter_trace(
                        subset,
                        name=f"{kind}{suffix}",
                        size=size,
                        colored=colored,
                        labelled=kind == "final",
                    )
                )
    extent = (data["hallucination_change"].abs().max() * 100) if has_hall.any() else 1.0
    fig.update_layout(
        coloraxis={
            "colorscale": HALLUCINATION_SCALE,
            "cmid": 0,
            "cmin": -extent,
            "cmax": extent,
            "colorbar": {"title": {"text": "hallucination<br>change (pts)"}},
        },
        xaxis={
            "title": "target gain (points)",
            "zeroline": False,
            "range": _symmetric_range(*(d["target_gain"] * 100 for d in shown)),
        },
        yaxis={
            "title": "general-capability change (points)",
            "range": _symmetric_range(*(d["general_change"] * 100 for d in shown)),
            "zeroline": False,
        },
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
            font={"color": "#555555", "size": 13},
            bgcolor="rgba(255,255,255,0.7)",
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


def comparison_figures(points: pd.DataFrame) -> list[go.Figure]:
    """The static charts of a comparison report: the gain/forgetting map and summary bars."""
    return [compare_scatter(points), summary_bars(points)]


# Okabe-Ito colours for the capability lines; target and hallucination keep theirs.
