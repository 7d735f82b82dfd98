"""Runs: every synced run with its gain and erosion; select rows to open or compare them.

Each run's final model carries its forgetting-budget verdict and a note of eval
settings that differ from its base's; changes within noise are greyed.
"""

from __future__ import annotations

import streamlit as st

from dashboard import components
from forgetwatch import exports, queries
from forgetwatch.exports import trust
from forgetwatch.exports.comparison import model_label

# What a reviewer scans first: the run, what it gained and lost, then how it was trained.
COLUMN_ORDER = (
    "run_name", "target_gain", "general_change", "hallucination_change", "verdict",
    "verdict_reasons", "settings_mismatch", "method", "learning_rate", "num_train_epochs",
    "max_steps", "lora_r", "base_model", "status", "start_time", "experiment_name", "run_id",
)  # fmt: skip


def run_badges(run_ids: list[str]) -> None:
    """Verdict badges for every evaluated model (final and checkpoints) of ``run_ids``."""
    with components.page_connection() as con:
        points = queries.compare_points(con, run_ids=run_ids)
        found = trust.verdicts(con, list(points["model_id"]))
    labels = {
        r.model_id: model_label(r.run_name, r.run_id, r.kind, r.step) for r in points.itertuples()
    }
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
    runs = queries.runs_overview(con, search=search, base_model=base_model, method=method)
    if runs.empty:
        st.info("No runs match these filters.")
        st.stop()
    finals = queries.compare_points(
        con, include_checkpoints=False, run_ids=list(runs["run_id"]), limit=max(len(runs), 1)
    )
    names = dict(zip(finals["model_id"], finals["run_name"].fillna(finals["run_id"]), strict=True))
    models = finals.drop_duplicates("run_id")[["run_id", "model_id"]]
    annotated = trust.annotate(con, runs.merge(models, on="run_id", how="left"), names)

components.settings_warning(annotated.warning)
st.caption(
    f"{len(runs):,} runs, newest first. Select rows to open one run or compare several. "
    "Deltas are points vs the base model; greyed = within noise (not significant after "
    "correction, or untested). Verdicts use the forgetting budget (FORGETWATCH_BUDGET)."
)
frame = exports.ordered(exports.as_points(annotated.frame), COLUMN_ORDER).drop(columns="model_id")
view = exports.View("Runs", frame, noise=annotated.noise)
event = components.show_table(
    view, key="runs-table", name="forgetwatch-runs", on_select="rerun", selection_mode="multi-row"
)
chosen = [str(view.frame.iloc[row]["run_id"]) for row in event.selection.rows]
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
chosen_models = [m for m in models.set_index("run_id")["model_id"].reindex(chosen) if m == m]
if flips_col.button(
    "What did it forget?", icon=":material/swap_vert:", disabled=len(chosen_models) != 1
):
    st.switch_page(components.FLIPS_PAGE, query_params={"model": chosen_models[0]})
if chosen:
    run_badges(chosen)
