"""Runs: every synced run with its gain and erosion; select rows to open or compare them."""

from __future__ import annotations

import streamlit as st

from dashboard import components
from forgetwatch import exports, queries

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
    f"{len(runs):,} runs, newest first. Select rows to open one run or compare several. "
    "Deltas are points vs the base model."
)
view = exports.View("Runs", exports.ordered(exports.as_points(runs), COLUMN_ORDER))
event = components.show_table(
    view, key="runs-table", name="forgetwatch-runs", on_select="rerun", selection_mode="multi-row"
)
chosen = [str(view.frame.iloc[row]["run_id"]) for row in event.selection.rows]
open_col, compare_col = st.columns([1, 4])
if open_col.button("Open run", icon=":material/open_in_new:", disabled=len(chosen) != 1):
    st.switch_page(components.RUN_PAGE, query_params={"run": chosen[0]})
if compare_col.button(
    f"Compare selected ({len(chosen)})",
    icon=":material/compare_arrows:",
    type="primary",
    disabled=not chosen,
):
    st.switch_page(components.COMPARE_PAGE, query_params={"runs": chosen})
