"""Run page charts: training curves, per-task delta bars, checkpoint curves and break-even.

Pure functions from a query's DataFrame to a plotly Figure, like ``charts`` (which
holds the Compare charts and the shared palette). Scores arrive as 0..1 fractions
and are drawn in points (x100).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from forgetwatch.exports.charts import BAD, CAPABILITY_COLOURS, GOOD, NEUTRAL, PALETTE
from forgetwatch.review.views import fmt_points
from forgetwatch.suite import change_label, change_sign


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
