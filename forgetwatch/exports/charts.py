"""Plotly figure builders: pure functions from a query's DataFrame to a Figure.

No widgets and no database here, so each chart can be built and checked in a
plain test. Scores arrive as 0..1 fractions and are drawn in points (x100).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from forgetwatch.review.comparison import model_label
from forgetwatch.review.views import fmt_points
from forgetwatch.suite import change_label, change_sign

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

QUADRANTS = (  # x side, y side, label
    (1, 1, "gained & kept"),
    (1, -1, "gained, forgot"),
    (-1, 1, "no gain, kept"),
    (-1, -1, "no gain, forgot"),
)


def metric_lines(history: pd.DataFrame) -> go.Figure:
    """Training curves: one line per metric key over steps."""
    fig = go.Figure()
    for key, points in history.groupby("key", sort=True):
        fig.add_trace(go.Scatter(x=points["step"], y=points["value"], mode="lines", name=key))
    fig.update_layout(
        xaxis_title="step",
        yaxis_title="value",
        hovermode="x unified",
        margin={"t": 30},
        legend_title_text="metric",
    )
    return fig


def delta_bars(deltas: pd.DataFrame, label: str) -> go.Figure:
    """Horizontal bars of ``delta`` (points vs base) per ``label``; blue better, orange worse.

    ``deltas`` is oriented (``review.direction``): a hallucination bar is the change of
    its rate, so it points right when the model hallucinates more, and is coloured worse.
    """
    data = deltas.dropna(subset=["delta"])
    points = data["delta"] * 100
    signs = [change_sign(c) for c in data["capability"]] if "capability" in data else None
    better = [p * (signs[i] if signs else 1) >= 0 for i, p in enumerate(points)]
    fig = go.Figure(
        go.Bar(
            x=points,
            y=data[label],
            orientation="h",
            marker_color=[GOOD if b else BAD for b in better],
            text=[fmt_points(v) for v in data["delta"]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:+.1f} points<extra></extra>",
        )
    )
    fig.add_vline(x=0, line_color=NEUTRAL)
    fig.update_layout(
        xaxis_title="change vs base (points)",
        # Room past the longest bar on both sides, so a value label outside a bar never
        # runs into the category labels (negative bars) or off the chart (positive ones).
        xaxis_range=_padded_range(points),
        yaxis_autorange="reversed",
        height=max(220, 40 * len(data) + 100),
        margin={"t": 30, "r": 40},
    )
    return fig


def _padded_range(points: pd.Series) -> list[float] | None:
    """An x range spanning 0 and every bar, with a quarter of the span spare at each end."""
    if points.empty:
        return None
    low, high = min(0.0, float(points.min())), max(0.0, float(points.max()))
    pad = max(high - low, 1.0) * 0.25
    return [low - pad if low < 0 else low - pad / 4, high + pad if high > 0 else high + pad / 4]


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
CAPABILITY_COLOURS = {
    "target": PALETTE["gain"],
    "knowledge": "#E69F00",
    "code": "#56B4E9",
    "instructions": "#009E73",
    "hallucination": PALETTE["hallucination"],
}


def checkpoint_curves(
    deltas: pd.DataFrame,
    loss: pd.DataFrame | None = None,
    *,
    kshot_gain: float | None = None,
    kshot_label: str = "base + k-shot",
    best_step: float | None = None,
) -> go.Figure:
    """Change vs base per capability over training steps, with the loss on a second axis.

    ``deltas`` is ``queries.checkpoint_deltas`` turned by ``review.direction.oriented``
    (step, kind, capability, delta); every line starts at the base (step 0, no change).
    Hallucination is the change of its *rate*, so up means worse, as on every page.
    The final model is a star. ``kshot_gain`` (the base's k-shot target score minus its zero-shot
    score) is a dashed comparison line; ``best_step`` marks the best checkpoint.
    """
    fig = go.Figure()
    order = {c: i for i, c in enumerate(CAPABILITY_COLOURS)}
    for capability in sorted(deltas["capability"].unique(), key=lambda c: order.get(c, 99)):
        points = deltas[deltas["capability"] == capability].sort_values("step")
        steps = [0, *points["step"]]
        values = [0.0, *(points["delta"] * 100)]
        name = change_label(capability)
        symbols = ["circle-open", *("star" if k == "final" else "circle" for k in points["kind"])]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines+markers",
                name=name,
                line={"color": CAPABILITY_COLOURS.get(capability, NEUTRAL), "width": 2},
                marker={
                    "symbol": symbols,
                    "size": [7, *([12 if k == "final" else 8 for k in points["kind"]])],
                },
                hovertemplate=f"{name}: %{{y:+.1f}} points at step %{{x}}<extra></extra>",
            )
        )
    if loss is not None and not loss.empty:
        fig.add_trace(
            go.Scatter(
                x=loss["step"],
                y=loss["value"],
                mode="lines",
                name="training loss",
                line={"color": NEUTRAL, "dash": "dot", "width": 1},
                yaxis="y2",
                hovertemplate="loss %{y:.3f} at step %{x}<extra></extra>",
            )
        )
    if kshot_gain is not None:  # a legend entry, not an annotation: it names itself
        steps = [0.0, *deltas["step"].dropna().astype(float)] if not deltas.empty else [0.0, 1.0]
        label = f"{kshot_label or 'base + k-shot'} (target gain {fmt_points(kshot_gain)})"
        fig.add_trace(
            go.Scatter(
                x=[min(steps), max(steps)],
                y=[kshot_gain * 100] * 2,
                mode="lines",
                name=label,
                line={"color": PALETTE["gain"], "dash": "dash", "width": 1},
                hovertemplate=f"{label}<extra></extra>",
            )
        )
    if best_step is not None:
        fig.add_vline(
            x=best_step,
            line={"color": "#333333", "dash": "dash", "width": 1},
            annotation_text="best within budget",
            annotation_position="top right",
        )
    fig.add_hline(y=0, line_color=NEUTRAL)
    fig.update_layout(
        xaxis_title="training step",
        yaxis_title="change vs base (points)",
        # Few round ticks of its own: an overlaying axis otherwise syncs its ticks to the
        # left axis's gridlines, which reads 5.257, 4.746, ... on a loss.
        yaxis2={
            "title": "training loss",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickmode": "auto",
            "nticks": 5,
            "tickformat": ".2~f",
        },
        legend={"orientation": "h", "y": -0.2},
        hovermode="closest",
        margin={"t": 30},
        height=460,
    )
    return fig


def breakeven_chart(curves: pd.DataFrame, requests: float | None, cost: float) -> go.Figure:
    """Cumulative cost of fine-tuning vs k-shot prompting over requests, crossing marked.

    ``curves`` is ``breakeven.cost_curves``; ``requests``/``cost`` the crossing.
    """
    fig = go.Figure(
        [
            go.Scatter(
                x=curves["requests"],
                y=curves["finetune_usd"],
                mode="lines",
                name="fine-tune (paid once)",
                line={"color": PALETTE["gain"], "width": 2},
            ),
            go.Scatter(
                x=curves["requests"],
                y=curves["kshot_usd"],
                mode="lines",
                name="base + k-shot (extra tokens per request)",
                line={"color": PALETTE["erosion"], "width": 2},
            ),
        ]
    )
    if requests is not None:
        fig.add_trace(
            go.Scatter(
                x=[requests],
                y=[cost],
                mode="markers+text",
                name="break-even",
                marker={"size": 12, "color": "#333333", "symbol": "x"},
                text=[f"break-even: {requests:,.0f} requests"],
                textposition="top left",
            )
        )
    fig.update_layout(
        xaxis_title="requests served",
        yaxis_title="cumulative cost (USD)",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 30},
        height=380,
    )
    return fig
