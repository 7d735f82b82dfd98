"""Runs: every synced run with its gain and erosion; pick one to open the Run page."""

from __future__ import annotations

import streamlit as st

from dashboard import components
from forgetwatch import queries

# What a reviewer scans first: the run, what it gained and lost, then how it was trained.
COLUMN_ORDER = (
    "run_name", "target_gain", "general_change", "hallucination_change", "method",
    "learning_rate", "num_train_epochs", "max_steps", "lora_r", "base_model", "status",
    "start_time", "experiment_name", "run_id",
)  # fmt: skip

st.title("Runs")

with components.page_connection() as con:
    components.require_runs(queries.db_summary(con))
    options = queries.filter_options(con)
    search_col, base_col, method_col = st.columns([2, 2, 1])
    search = search_col.text_input("Search", placeholder="run name, id, experiment, base model")
    base_model = base_col.selectbox(
        "Base model", options["base_model"], index=None, placeholder="All base models"
    )
    method = method_col.selectbox(
        "Method", options["method"], index=None, placeholder="All methods"
    )
    runs = queries.runs_overview(con, search=search, base_model=base_model, method=method)

if runs.empty:
    st.info("No runs match these filters.")
    st.stop()

st.caption(
    f"{len(runs):,} runs, newest first. Select a row to open the run. "
    "Deltas are points vs the base model."
)
table = components.as_points(runs)
event = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="runs-table",
    column_order=COLUMN_ORDER,
    column_config={
        **components.column_config(table),
        "run_id": st.column_config.TextColumn("Run id", width="small"),
        "start_time": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm"),
    },
)
if event.selection.rows:
    run_id = str(table.iloc[event.selection.rows[0]]["run_id"])
    st.switch_page(components.RUN_PAGE, query_params={"run": run_id})
