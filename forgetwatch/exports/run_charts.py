"""Run page charts: training curves, per-task delta bars, checkpoint curves and break-even.

Pure functions from a query's DataFrame to a plotly Figure, like ``charts`` (which
holds the Compare charts and the shared palette). Scores arrive as 0..1 fractions
and are drawn in points (x100).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from forgetwatch.exports.charts import BAD, CAPABILITY_COLOURS, GOOD, NEUTRAL, PALETTE
from forgetwatch.review.views import NOISE_MARK, fmt_change, fmt_points, is_missing, p_text
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


# Error bars, the break-even marker and the best-checkpoint line: a mid grey that keeps
# about 4:1 contrast on the light theme's white and the dark theme's near-black alike.
INK = "#7F7F7F"
# Within noise: a bar keeps its colour as an outline over a pale fill, and a point is drawn
# open. An opacity fade alone sinks into the dark theme's background.
FADED_FILL = 0.25  # the fill's alpha
OUTLINE_PX = 1.5
BAR_PX = 26  # height per bar, until the chart reaches MAX_BARS_HEIGHT
MAX_BARS_HEIGHT = 900


def change_hover(name: str, row: pd.Series) -> str:
    """A delta's hover: its name, the change with its 95% CI, the corrected p, and noise.

    "knowledge<br>Δ -32.9 [-40.2, -25.6] * points<br>p_adj = 0.0012, significant" or
    "...<br>p_adj = 0.36, within noise"; a row with no stored test says "untested".
    """
    delta, low, high = (_points(row.get(c)) for c in ("delta", "ci_low", "ci_high"))
    change = f"Δ {fmt_change(delta, low, high, row.get('significant'))} points"
    p = p_text(row.get("p_adjusted"), "p_adj") or "untested"
    verdict = "significant" if bool(row.get("significant")) else "within noise"
    return f"{name}<br>{change}<br>{p}, {verdict}"


def _points(value: Any) -> float | None:
    return None if is_missing(value) else float(value) * 100


def _error_arrays(data: pd.DataFrame) -> tuple[list[float | None], list[float | None]]:
    """(plus, minus) in points from each row's CI: the CI's ends, around the drawn delta."""
    if "ci_low" not in data or "ci_high" not in data:
        return [None] * len(data), [None] * len(data)
    delta, low, high = (data[c].astype(float) * 100 for c in ("delta", "ci_low", "ci_high"))
    plus = [None if pd.isna(v) else max(float(v), 0.0) for v in high - delta]
    minus = [None if pd.isna(v) else max(float(v), 0.0) for v in delta - low]
    return plus, minus


def _within_noise(data: pd.DataFrame) -> list[bool]:
    """Rows drawn faded: not significant after correction, or untested (as tables grey them)."""
    if "significant" not in data:
        return [True] * len(data)
    return [is_missing(s) or not bool(s) for s in data["significant"]]


def delta_bars(
    deltas: pd.DataFrame,
    label: str,
    *,
    group: str | None = None,
    max_height: int | None = MAX_BARS_HEIGHT,
) -> go.Figure:
    """Horizontal bars of ``delta`` (points vs base) per ``label``; blue better, orange worse.

    ``deltas`` is oriented (``review.direction``): a hallucination bar is the change of
    its rate, so it points right when the model hallucinates more, and is coloured worse.
    Its stored CI (``ci_low``/``ci_high``, oriented with it) is the error bar, and a bar
    that is not significant after correction is faded and labelled ``NOISE_MARK``.
    ``group`` (e.g. "capability") draws a two-level axis, tasks grouped under their
    capability, in the frame's order. The height grows with the bars up to
    ``max_height`` (None: no cap, for a scrolling container).
    """
    data = deltas.dropna(subset=["delta"]).reset_index(drop=True)
    points = data["delta"] * 100
    signs = [change_sign(c) for c in data["capability"]] if "capability" in data else None
    better = [p * (signs[i] if signs else 1) >= 0 for i, p in enumerate(points)]
    noise = _within_noise(data)
    plus, minus = _error_arrays(data)
    y = [list(data[group]), list(data[label])] if group else list(data[label])
    fig = go.Figure(
        go.Bar(
            x=points,
            y=y,
            orientation="h",
            marker=_bar_marker([GOOD if b else BAD for b in better], noise),
            error_x={
                "type": "data",
                "array": plus,
                "arrayminus": minus,
                "symmetric": False,
                "color": INK,
                "thickness": 1.5,
                "width": 4,
            },
            text=[fmt_points(v) for v in data["delta"]],
            textposition="none",  # drawn past the error bar instead (below)
            hovertext=[change_hover(str(row[label]), row) for _, row in data.iterrows()],
            hovertemplate="%{hovertext}<extra></extra>",
            name="change",
        )
    )
    fig.add_trace(_bar_labels(data, y, points, plus, minus, noise))
    fig.add_vline(x=0, line_color=NEUTRAL)
    ends = pd.concat([points, points + pd.Series(plus, dtype=float).fillna(0),
                      points - pd.Series(minus, dtype=float).fillna(0)])  # fmt: skip
    height = max(220, BAR_PX * len(data) + 100)
    fig.update_layout(
        xaxis_title="change vs base (points)",
        # Room past the longest bar and its CI on both sides, so a value label never runs
        # into the category labels (negative bars) or off the chart (positive ones).
        xaxis_range=_padded_range(ends),
        # First row on top, with no padding past the first and last bars.
        yaxis_range=[len(data) - 0.5, -0.5],
        height=height if max_height is None else min(height, max_height),
        margin={"t": 30, "r": 40},
        showlegend=False,
    )
    return fig


def faded(colour: str) -> str:
    """``colour`` (#RRGGBB) as the pale fill of a bar within noise."""
    red, green, blue = (int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red}, {green}, {blue}, {FADED_FILL})"


def _bar_marker(colours: list[str], noise: list[bool]) -> dict[str, Any]:
    """Solid bars, and within-noise ones as their colour's outline over a pale fill."""
    return {
        "color": [faded(c) if n else c for c, n in zip(colours, noise, strict=True)],
        "line": {"color": colours, "width": [OUTLINE_PX if n else 0 for n in noise]},
    }


def _bar_labels(
    data: pd.DataFrame,
    y: list[object],
    points: pd.Series,
    plus: list[float | None],
    minus: list[float | None],
    noise: list[bool],
) -> go.Scatter:
    """Each bar's value, written just past the end of its error bar (or of the bar)."""
    at, side = [], []
    for value, up, down in zip(points, plus, minus, strict=True):
        right = value >= 0
        at.append(value + (up or 0.0) if right else value - (down or 0.0))
        side.append("middle right" if right else "middle left")
    return go.Scatter(
        x=at,
        y=y,
        mode="text",
        # A space on the bar's far side keeps the number clear of the whisker's cap.
        text=[
            f" {label}" if position.endswith("right") else f"{label} "
            for label, position in zip(_value_labels(data["delta"], noise), side, strict=True)
        ],
        textposition=side,
        hoverinfo="skip",
        showlegend=False,
        name="labels",
    )


def _padded_range(points: pd.Series) -> list[float] | None:
    """An x range spanning 0 and every bar, with a quarter of the span spare at each end."""
    if points.empty:
        return None
    low, high = min(0.0, float(points.min())), max(0.0, float(points.max()))
    pad = max(high - low, 1.0) * 0.25
    return [low - pad if low < 0 else low - pad / 4, high + pad if high > 0 else high + pad / 4]


def _value_labels(deltas: pd.Series, noise: list[bool]) -> list[str]:
    """Each bar's number, with NOISE_MARK when it is within noise (readable without colour)."""
    return [fmt_points(v) + (NOISE_MARK if n else "") for v, n in zip(deltas, noise, strict=True)]


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
        fig.add_trace(_capability_line(capability, points.reset_index(drop=True)))
    if loss is not None and not loss.empty:
        fig.add_trace(
            go.Scatter(
                x=loss["step"],
                y=loss["value"],
                mode="lines",
                name="training loss",
                line={"color": NEUTRAL, "dash": "dot", "width": 1.5},
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
                line={"color": PALETTE["gain"], "dash": "dash", "width": 2},
                hovertemplate=f"{label}<extra></extra>",
            )
        )
    if best_step is not None:
        fig.add_vline(
            x=best_step,
            line={"color": INK, "dash": "dash", "width": 1.5},
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


def _capability_line(capability: str, points: pd.DataFrame) -> go.Scatter:
    """One capability over training: the base at step 0, then each evaluated model.

    Each point carries its stored CI as an error bar and is drawn open when within
    noise. The legend shows the first point's marker, the base's solid dot, which
    reads on a dark background as well as a light one.
    """
    name = change_label(capability)
    colour = CAPABILITY_COLOURS.get(capability, NEUTRAL)
    plus, minus = _error_arrays(points)
    noise = _within_noise(points)
    kinds = list(points["kind"])
    hover = [
        change_hover(f"{name} at step {int(step)}", row)
        for step, (_, row) in zip(points["step"], points.iterrows(), strict=True)
    ]
    return go.Scatter(
        x=[0, *points["step"]],
        y=[0.0, *(points["delta"] * 100)],
        mode="lines+markers",
        name=name,
        line={"color": colour, "width": 2},
        marker={
            "color": colour,
            "symbol": ["circle", *_point_symbols(kinds, noise)],
            "size": [7, *(12 if k == "final" else 8 for k in kinds)],
            "line": {"color": colour, "width": OUTLINE_PX},
        },
        error_y={
            "type": "data",
            "array": [None, *plus],
            "arrayminus": [None, *minus],
            "symmetric": False,
            "color": colour,
            "thickness": 1.5,
            "width": 4,
        },  # fmt: skip
        hovertext=[f"{name}: the base (step 0)", *hover],
        hovertemplate="%{hovertext}<extra></extra>",
    )


def _point_symbols(kinds: list[str], noise: list[bool]) -> list[str]:
    """A star for the final model, a dot for a checkpoint; open when within noise."""
    return [
        ("star" if k == "final" else "circle") + ("-open" if n else "")
        for k, n in zip(kinds, noise, strict=True)
    ]


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
                # INK with a white outline reads on either theme; the label takes the
                # theme's own font colour (no colour set).
                marker={
                    "size": 14,
                    "color": INK,
                    "symbol": "x",
                    "line": {"color": "#FFFFFF", "width": 1},
                },  # fmt: skip
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
