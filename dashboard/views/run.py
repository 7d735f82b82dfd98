"""Run (``?run=<id>``): what one fine-tune gained and forgot, and how it trained."""

from __future__ import annotations

from typing import Any

import duckdb
import streamlit as st

from dashboard import charts, components
from forgetwatch import exports, queries
from forgetwatch.errors import ForgetwatchError
from forgetwatch.exports.escaping import escape_markdown

DEFAULT_CURVES = ("loss", "eval_loss")


def pick_run(con: duckdb.DuckDBPyConnection) -> str:
    """The run from ``?run=``, else a picker over recent runs that sets ``?run=``."""
    run_id = st.query_params.get("run")
    if run_id:
        return run_id
    runs = queries.runs_overview(con, limit=200)
    names = dict(zip(runs["run_id"], runs["run_name"], strict=True))
    run_id = st.selectbox(
        "Run",
        list(names),
        index=None,
        placeholder="Pick a run",
        format_func=lambda r: f"{names[r] or r} ({r})",
    )
    if run_id is None:
        st.stop()
    st.query_params["run"] = run_id
    return run_id


def header(info: dict[str, Any]) -> None:
    """Run name, a link back, and one line of status, base, method and key params."""
    st.subheader(info["run_name"] or info["run_id"])
    fields = {
        "Status": info["status"],
        "Base": info["base_model"],
        "Method": info["method"],
        **{exports.label(k): info[k] for k in queries.KEY_PARAMS},
    }
    # Values come from MLflow (user-written): escaped, so they render as text only.
    shown = (f"**{k}** {escape_markdown(str(v))}" for k, v in fields.items() if v is not None)
    st.markdown(" · ".join(shown))
    st.page_link(components.RUNS_PAGE, label="All runs", icon=":material/arrow_back:")


def deltas(con: duckdb.DuckDBPyConnection, info: dict[str, Any]) -> None:
    """Headline gain/erosion numbers, then capability and task deltas as bars and tables."""
    st.markdown("#### What it gained and forgot")
    models = queries.run_models(con, info["run_id"])
    if models.empty:
        components.empty_state(
            "This run has no evals yet",
            f"Evaluate it with `forgetwatch ingest DIR` after running lm-eval on "
            f"`{info['output_dir'] or 'the run output folder'}` (and on its base model).",
        )
        return
    labels = dict(zip(models["model_id"], models["label"], strict=True))
    model_id = st.selectbox(
        "Evaluated model", list(labels), format_func=labels.get, disabled=len(labels) == 1
    )
    summary = queries.model_summary(con, model_id)
    gain, general, hallucination = st.columns(3)
    gain.metric("Target gain", exports.fmt_points(summary["target_gain"]))
    general.metric("General-capability change", exports.fmt_points(summary["general_change"]))
    hallucination.metric(
        "Hallucination change",
        exports.fmt_points(summary["hallucination_change"]),
        help="Change in hallucination rate vs base (positive = worse).",
    )
    st.caption(
        "Bars are score changes vs the base in points, higher is better. Hallucination "
        "tasks score correct abstention, so a negative bar there means more hallucination."
    )
    for title, label, df in (
        ("By capability", "capability", queries.capability_deltas(con, model_id)),
        ("By task", "task", queries.task_deltas(con, model_id)),
    ):
        st.markdown(f"##### {title}")
        chart_col, table_col = st.columns([3, 2])
        chart_col.plotly_chart(charts.delta_bars(df, label), key=f"bars-{label}")
        view = exports.View(f"{info['run_name'] or info['run_id']}: {title}", exports.as_points(df))
        with table_col:
            components.show_table(
                view, key=f"table-{label}", name=f"{info['run_name'] or info['run_id']}-{label}"
            )


def curves(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Training curves of the chosen metrics (loss and eval_loss by default)."""
    st.markdown("#### Training curves")
    keys = queries.metric_keys(con, run_id)
    if not keys:
        st.info("This run logged no metric history.")
        return
    chosen = st.multiselect(
        "Metrics", keys, default=[k for k in DEFAULT_CURVES if k in keys] or keys[:1]
    )
    history = queries.metric_history(con, run_id, chosen)
    if not history.empty:
        st.plotly_chart(charts.metric_lines(history), key="curves")


st.title("Run")

# One read-only connection for the whole render; the sections below only query and draw.
with components.page_connection() as con:
    components.require_runs(queries.db_summary(con))
    run_id = pick_run(con)
    info = queries.run_info(con, run_id)
    if info is None:
        components.show_error(
            ForgetwatchError(
                "No such run", "Pick a run on the Runs page, or sync it first.", where=run_id
            )
        )
        st.stop()
    header(info)
    deltas(con, info)
    curves(con, run_id)
