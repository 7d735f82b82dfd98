"""Run (``?run=<id>``): what one fine-tune gained and forgot, and how it trained.

Sections: the headline deltas (with the base's k-shot score next to the
target score), checkpoint curves with the best checkpoint within the erosion
budget and one button to evaluate the rest, the fine-tune vs k-shot
break-even calculator, and training curves. Every number comes from a query
or a ``forgetwatch.breakeven`` function; this page only renders them.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from dashboard import charts, components
from forgetwatch import breakeven, exports, queries, settings
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
    by_capability = queries.capability_deltas(con, model_id)
    gain, general, hallucination = st.columns(3)
    gain.metric("Target gain", exports.fmt_points(summary["target_gain"]))
    general.metric("General-capability change", exports.fmt_points(summary["general_change"]))
    hallucination.metric(
        "Hallucination change",
        exports.fmt_points(summary["hallucination_change"]),
        help="Change in hallucination rate vs base (positive = worse).",
    )
    kshot_line(queries.icl_baselines(con, info["run_id"]), by_capability)
    st.caption(
        "Bars are score changes vs the base in points, higher is better. Hallucination "
        "tasks score correct abstention, so a negative bar there means more hallucination."
    )
    for title, label, df in (
        ("By capability", "capability", by_capability),
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


def _score(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value * 100:.1f}"


def kshot_line(baselines: pd.DataFrame, by_capability: pd.DataFrame) -> None:
    """ "base + k-shot: X" next to the model's target score: was few-shot prompting enough?"""
    if baselines.empty:
        return
    target = by_capability.loc[by_capability["capability"] == "target", "value"]
    tuned = float(target.iloc[0]) if len(target) else None
    for row in baselines.itertuples(index=False):
        st.markdown(
            f"**Target score:** this model {_score(tuned)} · "
            f"**base + {kshot_name(row.n_shot)}: {_score(row.value)}** · "
            f"base zero-shot {_score(row.base_target)}"
        )
        st.caption(
            f"Would few-shot prompting have been enough? {escape_markdown(str(row.task))} "
            "prompts the base model with worked examples of the target task."
        )


def kshot_name(n_shot: Any) -> str:
    return "k-shot" if n_shot is None or pd.isna(n_shot) else f"{int(n_shot)}-shot"


def _verdicts(con: duckdb.DuckDBPyConnection, model_ids: list[str]) -> dict[str, Any]:
    """Budget verdicts per model with the default erosion budget."""
    from forgetwatch import budget

    return budget.verdicts(con, model_ids, budget.load_budget(budget.default_budget_path()))


def _submit_checkpoints(run_id: str, options: dict[str, Any]) -> None:
    """Button callback: runs before the next render, so no read connection is open."""
    from evals.cli import submit_all_checkpoints
    from evals.suite import load_suite

    try:
        job_ids = submit_all_checkpoints(run_id, load_suite(settings.get("suite")), **options)
    except ForgetwatchError as exc:
        st.session_state["checkpoint-submit"] = exc
        return
    st.session_state["checkpoint-submit"] = job_ids


def evaluate_button(run_id: str, checkpoints: pd.DataFrame) -> None:
    """ "Evaluate all N checkpoints": one eval job per checkpoint not yet evaluated."""
    todo = int((~checkpoints["evaluated"]).sum()) if not checkpoints.empty else 0
    outcome = st.session_state.pop("checkpoint-submit", None)
    if isinstance(outcome, ForgetwatchError):
        components.show_error(outcome)
    elif outcome is not None:
        st.success(
            f"{len(outcome)} eval job(s) queued; follow them on the Evals page.",
            icon=":material/send:",
        )
        st.page_link("views/evals.py", label="Evals", icon=":material/play_circle:")
    if todo == 0:
        return
    left, mid, right = st.columns([2, 1, 2], vertical_alignment="bottom")
    limit = mid.number_input("Limit per task", min_value=1, value=None, key="ckpt-limit")
    code = right.checkbox(
        "Allow code execution (sandboxed)",
        value=False,
        key="ckpt-code",
        help="Needed for suite tasks that run model-written code.",
    )
    left.button(
        f"Evaluate all {todo} checkpoints",
        key="eval-checkpoints",
        icon=":material/play_arrow:",
        on_click=_submit_checkpoints,
        args=(run_id, {"limit": limit, "allow_code_exec": code}),
    )


def _step_label(row: Any) -> str:
    return f"final (step {int(row.step)})" if row.kind == "final" else f"step {int(row.step)}"


def best_checkpoint(con: duckdb.DuckDBPyConnection, summary: pd.DataFrame) -> float | None:
    """Say which evaluated model has the highest target gain within the budget, and why."""
    try:
        verdicts = _verdicts(con, list(summary["model_id"]))
    except ForgetwatchError as exc:
        components.show_error(exc)
        return None
    labels = {r.model_id: _step_label(r) for r in summary.itertuples(index=False)}
    components.verdict_badges(verdicts, labels)
    best = queries.best_within_budget(summary, {m: v.status for m, v in verdicts.items()})
    if best is None:
        reasons = [
            f"{labels[m]}: {escape_markdown(v.reasons[0])}"
            for m, v in verdicts.items()
            if v.reasons
        ]
        st.warning(
            "**No checkpoint is within the erosion budget**, so none is recommended."
            + ("\n\n" + "\n\n".join(reasons[:6]) if reasons else ""),
            icon=":material/warning:",
        )
        return None
    what = "the final model" if best["kind"] == "final" else "the checkpoint"
    st.success(
        f"**Best within budget: {what} at step {int(best['step'])}.** It has the highest "
        f"target gain ({exports.fmt_points(best['target_gain'])}) among the models whose "
        f"verdict passes the erosion budget (general change "
        f"{exports.fmt_points(best['general_change'])}, hallucination change "
        f"{exports.fmt_points(best['hallucination_change'])}).",
        icon=":material/verified:",
    )
    return float(best["step"])


def checkpoints(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Gain and each capability's change over training steps, with the loss and k-shot line."""
    st.markdown("#### Over training: checkpoints")
    all_checkpoints = queries.run_checkpoints(con, run_id)
    deltas = queries.checkpoint_deltas(con, run_id)
    evaluated = deltas.loc[deltas["kind"] == "checkpoint", "step"].nunique()
    if evaluated == 0:
        components.empty_state(
            "No evaluated checkpoints for this run",
            f"This run has {len(all_checkpoints)} checkpoint(s) in the database. Evaluate them "
            "to see how gain and forgetting developed during training.",
        )
        evaluate_button(run_id, all_checkpoints)
        return
    summary = queries.checkpoint_summary(con, run_id)
    best_step = best_checkpoint(con, summary)
    baselines = queries.icl_baselines(con, run_id)
    kshot = None
    if not baselines.empty and pd.notna(baselines.at[0, "base_target"]):
        kshot = float(baselines.at[0, "value"] - baselines.at[0, "base_target"])
    loss = queries.metric_history(con, run_id, ["loss"])
    steps = sorted(int(s) for s in deltas["step"].unique())
    st.caption(
        f"Evaluated at steps {', '.join(map(str, steps))} (the star is the final model). "
        "Lines are changes vs the base in points, higher is better (hallucination counts "
        "correct abstention); the dotted line is the training loss."
    )
    st.plotly_chart(
        charts.checkpoint_curves(
            deltas,
            loss,
            kshot_gain=kshot,
            kshot_label=f"base + {kshot_name(baselines.at[0, 'n_shot'])}" if kshot else "",
            best_step=best_step,
        ),
        key="checkpoint-curves",
    )
    evaluate_button(run_id, all_checkpoints)


@st.cache_data(show_spinner="Counting the few-shot examples' tokens...")
def measured_tokens(base_path: str, task: str, suite_name: str, k: int) -> float | str:
    """Extra prompt tokens per request, or the reason they could not be measured."""
    from evals.suite import load_suite

    try:
        include = load_suite(suite_name).include_path
        return breakeven.measure_extra_tokens(base_path, task, include, k)
    except ForgetwatchError as exc:
        return exc.message


def breakeven_calculator(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Fine-tune cost vs k-shot's per-request cost, and when the fine-tune pays off."""
    st.markdown("#### Fine-tune or few-shot prompting? Break-even")
    runtime = queries.run_metric_last(con, run_id, "train_runtime")
    baselines = queries.icl_baselines(con, run_id)
    measured: float | str = "the base model has no k-shot baseline eval"
    if not baselines.empty and pd.notna(baselines.at[0, "n_shot"]) and baselines.at[0, "base_path"]:
        row = baselines.iloc[0]
        measured = measured_tokens(
            str(row["base_path"]), str(row["task"]), settings.get("suite"), int(row["n_shot"])
        )
    cols = st.columns(5)
    runtime_s = cols[0].number_input(
        "Training time (s)",
        min_value=0.0,
        value=float(runtime or 0.0),
        key="be-runtime",
        help="The run's train_runtime metric." if runtime else "The run logged no train_runtime.",
    )
    gpus = cols[1].number_input("GPUs", min_value=1, value=1, key="be-gpus")
    gpu_hour = cols[2].number_input("$ per GPU-hour", min_value=0.01, value=2.0, key="be-gpu-usd")
    price = cols[3].number_input(
        "$ per million prompt tokens", min_value=0.001, value=0.5, key="be-price"
    )
    per_day = cols[4].number_input("Requests per day", min_value=1, value=10_000, key="be-rpd")
    tokens = st.number_input(
        "Extra prompt tokens per request (the k examples)",
        min_value=0.0,
        value=float(measured) if isinstance(measured, float) else 0.0,
        key="be-tokens",
        help="Measured: k x the mean token count of the task's few-shot examples with the "
        "base model's tokenizer. Override it for your production prompt.",
    )
    if isinstance(measured, str):
        st.caption(f"Extra tokens not measured: {escape_markdown(measured)}. Enter them above.")
    try:
        result = breakeven.break_even(
            train_runtime_s=runtime_s,
            gpus=gpus,
            gpu_hour_usd=gpu_hour,
            extra_tokens=tokens,
            price_per_mtok=price,
            requests_per_day=per_day,
        )
    except ForgetwatchError as exc:
        components.show_error(exc)
        return
    cost, extra, volume, days = st.columns(4)
    cost.metric("Fine-tune cost", f"${result.finetune_usd:,.4f}")
    extra.metric("k-shot extra per request", f"${result.extra_usd_per_request:,.8f}")
    volume.metric(
        "Break-even requests", "never" if result.requests is None else f"{result.requests:,.0f}"
    )
    days.metric("Break-even days", "never" if result.days is None else f"{result.days:,.1f}")
    st.plotly_chart(
        charts.breakeven_chart(breakeven.cost_curves(result), result.requests, result.finetune_usd),
        key="breakeven-chart",
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
    checkpoints(con, run_id)
    breakeven_calculator(con, run_id)
    curves(con, run_id)
