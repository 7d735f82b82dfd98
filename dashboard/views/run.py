"""Run (``?run=<id>``): what one fine-tune gained and forgot, and how it trained.

Sections: the headline deltas (with the base's k-shot score next to the
target score), checkpoint curves with the best checkpoint within the erosion
budget and one button to evaluate the rest, the fine-tune vs k-shot
break-even calculator, and training curves. Every number comes from a query
or a ``forgetwatch.review.breakeven`` function; this page only renders them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from forgetwatch import queries, review, settings
from forgetwatch.dashboard import components
from forgetwatch.errors import ForgetwatchError
from forgetwatch.exports import charts
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.queries import runs as run_queries
from forgetwatch.review import breakeven
from forgetwatch.review import run as run_review
from forgetwatch.review.checkpoints import CheckpointsReview, checkpoints_review, kshot_name

DEFAULT_CURVES = ("loss", "eval_loss")


def pick_run(data: components.PageData) -> str:
    """The run ``?run=`` names, else a picker over every run that sets ``?run=``.

    ``?run=`` takes what every command takes: a run id, run name, model path or
    display name (``queries.resolve``), so a link can be written by hand.
    """
    asked = st.query_params.get("run")
    if asked:
        try:
            return data.load_or_raise(queries.resolve_run, asked, where="?run=").run_id or asked
        except ForgetwatchError as exc:
            components.show_error(exc)
            st.stop()
    runs = data.load(run_queries.run_choices)
    names = dict(zip(runs["run_id"], runs["label"], strict=True))
    run_id = st.selectbox(
        "Run",
        list(names),
        index=None,
        placeholder=f"Type to search {len(names):,} runs",
        format_func=names.get,
        filter_mode="contains",
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
        **{review.label(k): info[k] for k in queries.KEY_PARAMS},
    }
    # Values come from MLflow (user-written): escaped, so they render as text only.
    shown = (f"**{k}** {escape_markdown(str(v))}" for k, v in fields.items() if v is not None)
    st.markdown(" · ".join(shown))
    st.page_link(components.RUNS_PAGE, label="All runs", icon=":material/arrow_back:")


def deltas(data: components.PageData, info: dict[str, Any]) -> None:
    """Headline gain/erosion numbers, then capability and task deltas as bars and tables."""
    st.markdown("#### What it gained and forgot")
    labels = data.load(run_review.evaluated_models, info["run_id"])
    if not labels:
        components.empty_state(
            "This run has no evals yet",
            f"Evaluate it with `forgetwatch ingest DIR` after running lm-eval on "
            f"`{info['output_dir'] or 'the run output folder'}` (and on its base model).",
        )
        return
    model_id = st.selectbox(
        "Evaluated model", list(labels), format_func=labels.get, disabled=len(labels) == 1
    )
    changes = data.load(run_review.model_changes, model_id, info["run_id"])
    for column, metric in zip(run_review.HEADLINES, st.columns(3), strict=True):
        metric.metric(
            review.label(column),
            review.fmt_points(changes.headline[column]),
            help=review.COLUMNS[column].help,
        )
    kshot_line(changes.kshot)
    st.caption(
        "Bars are changes vs the base in points: blue is better, orange is worse. "
        "Hallucination is its rate, so + = worse there."
    )
    name = info["run_name"] or info["run_id"]
    for title, label, frame, view in (
        ("By capability", "capability", changes.capabilities, changes.capability_view),
        ("By task", "task", changes.tasks, changes.task_view),
    ):
        st.markdown(f"##### {title}")
        chart_col, table_col = st.columns([3, 2])
        chart_col.plotly_chart(charts.delta_bars(frame, label), key=f"bars-{label}")
        with table_col:
            components.show_table(
                view(f"{name}: {title}"), key=f"table-{label}", name=f"{name}-{label}"
            )
    if changes.limit_note:  # task names come from results files: shown as text only
        st.caption(escape_markdown(changes.limit_note))


def _score(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value * 100:.1f}"


def kshot_line(lines: list[run_review.KshotLine]) -> None:
    """ "base + k-shot: X" next to the model's target score: was few-shot prompting enough?"""
    for line in lines:
        st.markdown(
            f"**Target score:** this model {_score(line.model_score)} · "
            f"**base + {kshot_name(line.n_shot)}: {_score(line.kshot_score)}** · "
            f"base zero-shot {_score(line.base_zero_shot)}"
        )
        st.caption(
            f"Would few-shot prompting have been enough? {escape_markdown(line.task)} "
            "prompts the base model with worked examples of the target task."
        )


def _submit_checkpoints(run_id: str, options: dict[str, Any]) -> None:
    """Button callback: runs before the next render, so no read connection is open."""
    from forgetwatch.evals.checkpoint_jobs import submit_all_checkpoints
    from forgetwatch.suite import load_suite

    try:
        job_ids = submit_all_checkpoints(run_id, load_suite(settings.get("suite")), **options)
    except ForgetwatchError as exc:
        st.session_state["checkpoint-submit"] = exc
        return
    st.session_state["checkpoint-submit"] = job_ids


def evaluate_button(run_id: str, todo: int) -> None:
    """ "Evaluate all N checkpoints": one eval job per checkpoint not yet evaluated."""
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
        "Evaluate the 1 checkpoint" if todo == 1 else f"Evaluate all {todo} checkpoints",
        key="eval-checkpoints",
        icon=":material/play_arrow:",
        on_click=_submit_checkpoints,
        args=(run_id, {"limit": limit, "allow_code_exec": code}),
    )


def best_checkpoint(found: CheckpointsReview) -> float | None:
    """Say which evaluated model has the highest target gain within the budget, and why."""
    components.verdict_badges(found.verdicts, found.labels)
    best = found.best
    if best is None:
        reasons = [
            f"{found.labels[m]}: {escape_markdown(v.reasons[0])}"
            for m, v in found.verdicts.items()
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
        f"target gain ({review.fmt_points(best['target_gain'])}) among the models whose "
        f"verdict passes the erosion budget (general change "
        f"{review.fmt_points(best['general_change'])}, hallucination change "
        f"{review.fmt_points(best['hallucination_change'])}, + = worse).",
        icon=":material/verified:",
    )
    return float(best["step"])


def checkpoints(data: components.PageData, run_id: str) -> None:
    """Gain and each capability's change over training steps, with the loss and k-shot line."""
    st.markdown("#### Over training: checkpoints")
    try:
        found = data.load_or_raise(checkpoints_review, run_id)
    except ForgetwatchError as exc:  # e.g. a bad budget file: the curves still show
        components.show_error(exc)
        found = data.load(checkpoints_review, run_id, with_verdicts=False)
    if not found.has_evaluated_checkpoints:
        components.empty_state(
            "No evaluated checkpoints for this run",
            f"This run has {len(found.checkpoints)} checkpoint(s) in the database. Evaluate "
            "them to see how gain and forgetting developed during training.",
        )
        evaluate_button(run_id, found.to_evaluate)
        return
    best_step = best_checkpoint(found)
    st.caption(
        f"Evaluated at steps {', '.join(map(str, found.evaluated_steps))} (the star is the "
        "final model). Lines are changes vs the base in points: up is better, except "
        "hallucination, whose rate is drawn (+ = worse); the dotted line is the training loss."
    )
    st.plotly_chart(
        charts.checkpoint_curves(
            found.deltas,
            found.loss,
            kshot_gain=found.kshot_gain,
            kshot_label=found.kshot_label,
            best_step=best_step,
        ),
        key="checkpoint-curves",
    )
    evaluate_button(run_id, found.to_evaluate)


@st.cache_data(show_spinner="Counting the few-shot examples' tokens...")
def measured_tokens(setup: breakeven.KshotSetup, suite_name: str) -> float | str:
    """Extra prompt tokens per request, or the reason they could not be measured."""
    try:
        return breakeven.measured_tokens(setup, suite_name)
    except ForgetwatchError as exc:
        return exc.message


def breakeven_calculator(data: components.PageData, run_id: str) -> None:
    """Fine-tune cost vs k-shot's per-request cost, and when the fine-tune pays off."""
    st.markdown("#### Fine-tune or few-shot prompting? Break-even")
    setup = data.load(breakeven.kshot_setup, run_id)  # the same as `forgetwatch breakeven`
    runtime = setup.train_runtime_s
    measured = measured_tokens(setup, settings.get("suite"))
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


def curves(data: components.PageData, run_id: str) -> None:
    """Training curves of the chosen metrics (loss and eval_loss by default)."""
    st.markdown("#### Training curves")
    keys = data.load(queries.metric_keys, run_id)
    if not keys:
        st.info("This run logged no metric history.")
        return
    chosen = st.multiselect(
        "Metrics", keys, default=[k for k in DEFAULT_CURVES if k in keys] or keys[:1]
    )
    history = data.load(queries.metric_history, run_id, chosen)
    if not history.empty:
        st.plotly_chart(charts.metric_lines(history), key="curves")


st.title("Run")

# One database state for the whole render; the sections below only load and draw.
data = components.page_data()
components.require_runs(data.load(queries.db_summary))
run_id = pick_run(data)
info = data.load(queries.run_info, run_id)
if info is None:
    components.show_error(
        ForgetwatchError(
            "No such run", "Pick a run on the Runs page, or sync it first.", where=run_id
        )
    )
    st.stop()
else:
    header(info)
    deltas(data, info)
    checkpoints(data, run_id)
    breakeven_calculator(data, run_id)
    curves(data, run_id)
