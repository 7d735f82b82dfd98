"""Run (``?run=<id>``, or ``?model=<id>``): what one fine-tune gained and forgot.

A model no MLflow run produced opens as a model page: its base (with the rule
that recorded it and a picker to change it) and its deltas.

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
from forgetwatch.dashboard import auth, base_picker, components, next_steps
from forgetwatch.errors import ForgetwatchError
from forgetwatch.exports import run_charts
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.queries import runs as run_queries
from forgetwatch.review import breakeven, next_step
from forgetwatch.review import partial as partial_review
from forgetwatch.review import run as run_review
from forgetwatch.review.checkpoints import (
    CheckpointsReview,
    checkpoints_review,
    evaluate_label,
    kshot_name,
    no_evaluated_note,
    queued_text,
)
from forgetwatch.review.views import NOISE_MARK

DEFAULT_CURVES = ("loss", "eval_loss")


def pick_subject(data: components.PageData) -> tuple[str, str]:
    """("run", run id) or ("model", model id): what ``?run=`` or ``?model=`` names.

    Both take what every command takes: a run id, run name, model path or display
    name (``queries.resolve``), so a link can be written by hand. A model no run
    produced (lm-eval outputs ingested without MLflow) opens as a model page.
    Without either, a picker over every run sets ``?run=``.
    """
    asked = st.query_params.get("run") or st.query_params.get("model")
    if asked:
        where = "?run=" if st.query_params.get("run") else "?model="
        try:
            found = data.load_or_raise(queries.resolve, asked, where=where)
        except ForgetwatchError as exc:
            components.show_error(exc)
            st.stop()
        if found.run_id is not None and where == "?model=":  # a run's model: its run page
            st.query_params.from_dict({"run": found.run_id})
            st.rerun()
        if found.run_id is not None:
            return "run", found.run_id
        if found.model_id is not None:
            return "model", found.model_id
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
    return "run", run_id


def model_page(data: components.PageData, model_id: str) -> None:
    """A model no run produced: its base (and how it was recorded), then its deltas."""
    info = data.load(queries.model_info, model_id)
    if info is None:
        components.show_error(
            ForgetwatchError("No such model", "Pick one on the Runs page.", where=model_id)
        )
        return
    st.subheader(info["name"])
    last = info["last_evaluated"]
    fields = {
        "Model": info["model_id"],
        "Run": "none (evaluated without an MLflow run)",
        "Evals": info["evals"],
        "Last evaluated": last.strftime("%Y-%m-%d %H:%M") if last is not None else None,
    }
    shown = (f"**{k}** {escape_markdown(str(v))}" for k, v in fields.items() if v is not None)
    st.markdown(" · ".join(shown))
    st.page_link(components.RUNS_PAGE, label="All models and runs", icon=":material/arrow_back:")
    base = info["base_model_id"]
    if base is None:
        components.empty_state(
            "No base model is recorded for this model",
            "Its deltas need the model it was fine-tuned from. Pick the base below, or run "
            f"`forgetwatch pair {info['model_id']} --base BASE` (or `forgetwatch ingest DIR "
            "--base BASE`). A base is also read from a peft adapter's `adapter_config.json`, "
            "`_name_or_path` in the model's `config.json`, or `lm_eval --metadata "
            "'{\"base_model\": ...}'`.",
        )
    else:
        how = info["base_how"]
        who = f" by {info['paired_by']}" if info["paired_by"] else ""
        st.markdown(f"**Base** {escape_markdown(str(base))} ({escape_markdown(str(how))}{who})")
    with st.expander("Change the base model", expanded=base is None):
        base_picker.base_picker(
            data, [model_id], key="model-base", current=base, paired=info["base_source"] == "user"
        )
    if base is not None:
        next_steps.show(data.load(next_step.suite_step), key="model-suite")
        deltas(data, {model_id: str(info["name"])}, str(info["name"]), None, info["path"])


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


def deltas(
    data: components.PageData,
    labels: dict[str, str],
    name: str,
    run_id: str | None,
    output_dir: str | None,
) -> None:
    """Headline gain/erosion numbers, then capability and task deltas as bars and tables.

    ``labels`` are the evaluated models to choose from (a run's final and checkpoints,
    or one model with no run).
    """
    st.markdown("#### What it gained and forgot")
    if not labels:
        components.empty_state(
            "This run has no evals yet",
            f"Evaluate it with `forgetwatch ingest DIR` after running lm-eval on "
            f"`{output_dir or 'the run output folder'}` (and on its base model).",
        )
        return
    model_id = st.selectbox(
        "Evaluated model", list(labels), format_func=labels.get, disabled=len(labels) == 1
    )
    changes = data.load(run_review.model_changes, model_id, run_id)
    for column, metric in zip(run_review.HEADLINES, st.columns(3), strict=True):
        metric.metric(
            review.label(column),
            review.fmt_points(changes.headline[column]),
            help=review.COLUMNS[column].help,
        )
    kshot_line(changes.kshot)
    noise = data.load(partial_review.base_noise_line, model_id)
    if noise:  # changes inside it are never called significant
        st.caption(escape_markdown(noise))
    st.caption(
        "Bars are changes vs the base in points: blue is better, orange is worse. "
        "Hallucination is its rate, so + = worse there. Whiskers are the paired 95% CI; a "
        f"pale, outlined bar marked{NOISE_MARK} is within noise (not significant after "
        "correction)."
    )
    # Each chart over its table, both full width: the table's Delta and CI columns stay
    # in view, and a long task chart has the page's width for its two-level labels.
    st.markdown("##### By capability")
    st.plotly_chart(
        run_charts.delta_bars(changes.capabilities, "capability"), key="bars-capability"
    )
    components.show_table(
        changes.capability_view(f"{name}: By capability"),
        key="table-capability",
        name=f"{name}-capability",
    )
    st.markdown("##### By task")
    task_chart(changes)
    components.show_table(
        changes.task_view(f"{name}: By task"), key="table-task", name=f"{name}-task"
    )
    if changes.limit_note:  # task names come from results files: shown as text only
        st.caption(escape_markdown(changes.limit_note))


def task_chart(changes: run_review.ModelChanges) -> None:
    """Task bars grouped by capability: the biggest movers, or every task on request.

    Every task of a 200-task suite is drawn at a readable bar height inside a
    scrolling box, so the page itself never grows thousands of pixels tall.
    """
    show_all = False
    if changes.tasks_left_out:
        show_all = st.toggle(changes.show_all_label, key="all-tasks")
        st.caption(changes.task_chart_note(show_all))
    figure = run_charts.delta_bars(
        changes.task_bars(show_all=show_all),
        "task",
        group="capability",
        max_height=None if show_all else run_charts.MAX_BARS_HEIGHT,
    )
    if figure.layout.height > run_charts.MAX_BARS_HEIGHT:
        with st.container(height=run_charts.MAX_BARS_HEIGHT, key="all-tasks-box"):
            st.plotly_chart(figure, key="bars-task")
    else:
        st.plotly_chart(figure, key="bars-task")


def link_notes(data: components.PageData, run_id: str) -> None:
    """Say when an eval's link to this run was a guess (two runs share one output folder)."""
    for note in data.load(run_review.link_notes, run_id):
        st.info(escape_markdown(note), icon=":material/call_split:")


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
        auth.require_operator("launch evals")  # in the server: a crafted click is refused too
        suite = load_suite(settings.get("suite"))
        job_ids = submit_all_checkpoints(run_id, suite, launched_by=auth.launcher(), **options)
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
        st.success(queued_text(len(outcome)), icon=":material/send:")
        st.page_link("views/evals.py", label="Evals", icon=":material/play_circle:")
    if todo == 0 or not auth.can_operate():  # viewers: no launch button
        return
    left, mid, right = st.columns([2, 1, 2], vertical_alignment="bottom")
    limit = mid.number_input("Limit per task", min_value=1, value=None, key="ckpt-limit")
    code = right.checkbox(
        "Allow code execution (sandboxed)",
        value=False,
        key="ckpt-code",
        help="Needed for suite tasks that run model-written code.",
    )
    quick = right.checkbox(
        "Quick check",
        value=False,
        key="ckpt-quick",
        help="Run a chosen share of each task's items in looks and stop once the budget's "
        "verdict is settled (a partial eval; needs the base's full eval).",
    )
    left.button(
        evaluate_label(todo),
        key="eval-checkpoints",
        icon=":material/play_arrow:",
        on_click=_submit_checkpoints,
        args=(
            run_id,
            {
                "limit": None if quick else limit,
                "allow_code_exec": code,
                "mode": "quick" if quick else "full",
            },
        ),
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
            no_evaluated_note(len(found.checkpoints)),
        )
        evaluate_button(run_id, found.to_evaluate)
        return
    components.settings_warning(found.mismatch_warning)  # a --limit 20 point among full evals
    best_step = best_checkpoint(found)
    st.caption(
        f"Evaluated at steps {', '.join(map(str, found.evaluated_steps))} (the star is the "
        "final model). Lines are changes vs the base in points: up is better, except "
        "hallucination, whose rate is drawn (+ = worse); the dotted line is the training loss. "
        "Whiskers are each point's paired 95% CI; an open point is within noise."
    )
    st.plotly_chart(
        run_charts.checkpoint_curves(
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
    days.metric("Break-even after", breakeven.fmt_duration(result.days))
    if setup.quality_note:
        st.info(escape_markdown(setup.quality_note), icon=":material/balance:")
    st.plotly_chart(
        run_charts.breakeven_chart(
            breakeven.cost_curves(result), result.requests, result.finetune_usd
        ),
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
        st.plotly_chart(run_charts.metric_lines(history), key="curves")


# A model no run produced (?model=) has a model page; anything else is a run's page.
st.title("Model" if st.query_params.get("model") and not st.query_params.get("run") else "Run")

# One database state for the whole render; the sections below only load and draw.
data = components.page_data()
components.require_runs(data.load(queries.db_summary))
kind, subject = pick_subject(data)
if kind == "model":
    model_page(data, subject)
    st.stop()
run_id = subject
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
    link_notes(data, run_id)
    deltas(
        data, data.load(run_review.evaluated_models, run_id), info["run_name"] or run_id,
        run_id, info["output_dir"],
    )  # fmt: skip
    checkpoints(data, run_id)
    breakeven_calculator(data, run_id)
    curves(data, run_id)
