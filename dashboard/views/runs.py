"""Runs: every synced run with its gain and erosion; select rows to open or compare them.

Each run's final model carries its forgetting-budget verdict and a note of eval
settings that differ from its base's; changes within noise are greyed.
"""

from __future__ import annotations

import streamlit as st

from forgetwatch import queries
from forgetwatch.dashboard import components
from forgetwatch.review import runs as runs_review


def run_badges(run_ids: list[str]) -> None:
    """Verdict badges for every evaluated model (final and checkpoints) of ``run_ids``."""
    with components.page_connection() as con:
        found, labels = runs_review.run_verdicts(con, run_ids)
    if found:
        components.verdict_badges(found, labels)
    else:
        st.caption("No verdicts: none of the selected runs has an evaluated model and base.")


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
    overview = runs_review.runs_overview(con, search=search, base_model=base_model, method=method)
    if overview.empty:
        st.info("No runs match these filters.")
        st.stop()

components.settings_warning(overview.warning)
st.caption(
    f"{len(overview.view.frame):,} runs, newest first. Select rows to open one run or "
    "compare several. "
    "Deltas are points vs the base model; greyed = within noise (not significant after "
    "correction, or untested). Verdicts use the forgetting budget (FORGETWATCH_BUDGET)."
)
view = overview.view
event = components.show_table(
    view, key="runs-table", name="forgetwatch-runs", on_select="rerun", selection_mode="multi-row"
)
chosen = runs_review.selected_run_ids(view, event.selection.rows)
open_col, compare_col, flips_col = st.columns([1, 2, 2])
if open_col.button("Open run", icon=":material/open_in_new:", disabled=len(chosen) != 1):
    st.switch_page(components.RUN_PAGE, query_params={"run": chosen[0]})
if compare_col.button(
    f"Compare selected ({len(chosen)})",
    icon=":material/compare_arrows:",
    type="primary",
    disabled=not chosen,
):
    st.switch_page(components.COMPARE_PAGE, query_params={"runs": chosen})
chosen_models = [overview.final_models[r] for r in chosen if r in overview.final_models]
if flips_col.button(
    "What did it forget?", icon=":material/swap_vert:", disabled=len(chosen_models) != 1
):
    st.switch_page(components.FLIPS_PAGE, query_params={"model": chosen_models[0]})
if chosen:
    run_badges(chosen)
