"""Compare: every evaluated fine-tune on one chart of gain vs forgetting; click to open."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, components
from forgetwatch import queries

MAX_POINTS = 5000

st.title("Compare")

with components.page_connection() as con:
    components.require_runs(queries.db_summary(con))
    include_checkpoints = st.toggle("Show checkpoints", value=True)
    points = queries.compare_points(con, include_checkpoints=include_checkpoints, limit=MAX_POINTS)

if points.empty:
    components.empty_state(
        "No evaluated fine-tunes yet",
        "A model appears here once it and its base model have lm-eval results: run lm-eval "
        "on a run's output folder and on its base, then `forgetwatch ingest DIR`.",
    )
    st.stop()

st.caption(
    "Each point is a fine-tuned model, relative to its base. Right is more target gain, "
    "up is more general capability kept; colour is hallucination change "
    "(orange = hallucinates more). Click a point to open its run."
    + (f" Showing the newest {MAX_POINTS:,} models." if len(points) == MAX_POINTS else "")
)
event = st.plotly_chart(
    charts.compare_scatter(points), on_select="rerun", selection_mode="points", key="compare-chart"
)
selected = event.selection.points if event else []
if selected:
    st.switch_page(components.RUN_PAGE, query_params={"run": selected[0]["customdata"][0]})

table = components.as_points(points)
st.dataframe(table, hide_index=True, column_config=components.column_config(table))
