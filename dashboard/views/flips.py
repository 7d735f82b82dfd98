"""Flips: which examples a fine-tune got newly wrong (and newly right) vs its base.

Counts per task come first (chart and table; the chart shows the tasks with
most flips, grouped by capability, the rest behind "show all"), then the flipped
examples with the target and both models' responses (a multiple-choice one as
its choices, the correct one and each model's pick), searchable and paged,
then "What did we forget": every right -> wrong example, capability by
capability. Model, base, task, search and direction live in the URL, so a link
reopens the same view.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from forgetwatch import queries
from forgetwatch.dashboard import base_picker, components
from forgetwatch.errors import ForgetwatchError
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.queries import flips
from forgetwatch.review.flips import (
    CHART_TASKS,
    DIRECTION_LABELS,
    NO_SAMPLES,
    REINGEST,
    chart_counts,
    counts_view,
    example_sentences,
    examples_view,
    summary_line,
    unread_count,
)

PAGE_SIZE = 50
FORGOTTEN_LIMIT = 500
# URL key -> widget key.
URL_KEYS = {"model": "flips-model", "base": "flips-base", "task": "flips-task",
            "q": "flips-q", "dir": "flips-dir"}  # fmt: skip
ERODED, GAINED = "#D55E00", "#0072B2"  # the charts' erosion and gain colours


def seed_from_url(choices: dict[str, list[str]]) -> None:
    """Put URL values into widget state on the first render (unknown values are dropped).

    Only the keys in ``choices`` (plus ``q``) are seeded, so the task is seeded once
    the chosen model's tasks are known.
    """
    for url_key, widget_key in URL_KEYS.items():
        if widget_key in st.session_state or (url_key not in choices and url_key != "q"):
            continue
        value = st.query_params.get(url_key)
        if value is None:
            continue
        if url_key == "q" or value in choices[url_key]:
            st.session_state[widget_key] = value


def model_id_of(con: queries.Con, ident: str) -> str:
    """The model a URL value names (run, run name, path, display name), else the value."""
    try:
        return queries.resolve_model(con, ident, where="?model=").model_id or ident
    except ForgetwatchError:
        return ident


def write_url(state: dict[str, str | None]) -> None:
    """Only what is set goes in the URL, so links stay short."""
    params = {k: v for k, v in state.items() if v}
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def flip_bars(counts: pd.DataFrame) -> go.Figure:
    """Right -> wrong (left, erosion colour) and wrong -> right (right, gain colour) per task.

    Horizontal bars, one row per task under its capability, so task names stay
    readable however many there are.
    """
    rows = [counts["capability"].tolist(), counts["task"].tolist()]
    fig = go.Figure(
        [
            go.Bar(
                name="right → wrong", y=rows, x=-counts["right_to_wrong"], orientation="h",
                marker_color=ERODED, customdata=counts["right_to_wrong"],
                hovertemplate="%{y}: %{customdata} right → wrong<extra></extra>",
            ),
            go.Bar(
                name="wrong → right", y=rows, x=counts["wrong_to_right"], orientation="h",
                marker_color=GAINED, customdata=counts["wrong_to_right"],
                hovertemplate="%{y}: %{customdata} wrong → right<extra></extra>",
            ),
        ]
    )  # fmt: skip
    fig.update_layout(
        barmode="relative",
        xaxis_title="flipped samples (left = forgotten)",
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.15},
        margin={"t": 30},
        height=max(260, 120 + 26 * len(counts)),
    )
    return fig


st.title("Flips")

data = components.page_data()
summary = data.load(queries.db_summary)
components.require_runs(summary)
models = data.load(flips.flip_models) if summary["samples"] else pd.DataFrame()
if models.empty:
    components.empty_state("No per-sample results for any fine-tuned model", NO_SAMPLES)
    st.stop()
labels = dict(zip(models["model_id"], models["label"], strict=True))
sampled = data.load(flips.sampled_models)
for key in ("model", "base"):  # ?model= and ?base= take any identifier, like the CLI
    asked = st.query_params.get(key)
    if asked and asked not in labels and asked not in sampled:
        st.query_params[key] = data.load(model_id_of, asked)
seed_from_url({"model": list(labels), "base": sampled, "dir": list(DIRECTION_LABELS)})
model_col, base_col = st.columns(2)
model_id = model_col.selectbox(
    "Fine-tuned model", list(labels), format_func=labels.get, key=URL_KEYS["model"]
)
recorded = models.set_index("model_id").loc[model_id, "base_model_id"]
recorded = recorded if isinstance(recorded, str) else None
name = escape_markdown(labels[model_id])  # run names are user text
base_choices = [m for m in sampled if m != model_id]
if st.session_state.get("flips-base-for") != model_id:  # a new model: its own base
    if "flips-base-for" in st.session_state or URL_KEYS["base"] not in st.session_state:
        st.session_state[URL_KEYS["base"]] = recorded if recorded in base_choices else None
    st.session_state["flips-base-for"] = model_id
base_id = base_col.selectbox(
    "Compared with", base_choices, index=None, key=URL_KEYS["base"],
    placeholder="No base with per-sample results",
    help="The model's recorded base by default; any model with samples can be chosen.",
)  # fmt: skip
if base_id is None:
    write_url({"model": model_id})
    why = (
        f"Its recorded base {escape_markdown(recorded)} has no per-sample results."
        if recorded
        else "No base model is recorded for it: pick one above to look now, or record it "
        "for every page below (as `forgetwatch pair MODEL --base BASE`)."
    )
    components.empty_state(f"No base to compare {name} with", f"{why} {NO_SAMPLES}")
    if not recorded:
        base_picker.base_picker(data, [model_id], key="flips-pair")
    st.stop()
counts = data.load(flips.flip_counts, model_id, base_id)
seed_from_url({"task": list(counts["task"])})
task_col, dir_col, q_col = st.columns([2, 2, 3])
task = task_col.selectbox(
    "Task", list(counts["task"]), index=None, key=URL_KEYS["task"], placeholder="All tasks"
)
direction = dir_col.segmented_control(
    "Flip", list(DIRECTION_LABELS), format_func=DIRECTION_LABELS.get, key=URL_KEYS["dir"],
    default="both" if URL_KEYS["dir"] not in st.session_state else None,
)  # fmt: skip
search = q_col.text_input(
    "Search", key=URL_KEYS["q"], placeholder="target, response, task or doc id"
)
filters = (model_id, base_id, task, direction, search)
if st.session_state.get("flips-filters") != filters:  # new filters start on page 1
    st.session_state["flips-filters"] = filters
    st.session_state["flips-page"] = 1
page = int(st.session_state["flips-page"])
examples = data.load(
    flips.flip_examples, model_id, base_id, tasks=[task] if task else None,
    direction=None if direction in (None, "both") else direction,
    search=search or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
)  # fmt: skip
forgotten = data.load(
    flips.forgotten, model_id, base_id, tasks=[task] if task else None, limit=FORGOTTEN_LIMIT
)


write_url({"model": model_id, "base": base_id if base_id != recorded else None, "task": task,
           "q": search, "dir": direction if direction != "both" else None})  # fmt: skip

if counts.empty:
    components.empty_state(
        "No paired samples",
        f"{name} and {escape_markdown(base_id)} share no samples (same task, doc and metric) "
        "with 0/1 outcomes, so nothing can flip. Evaluate both on the same tasks with "
        "`--log_samples`.",
    )
    st.stop()

flipped = int(counts["right_to_wrong"].sum() + counts["wrong_to_right"].sum())
st.caption(escape_markdown(summary_line(labels[model_id], base_id, counts)))
if flipped == 0:
    st.info("No flips: every paired sample has the same outcome for both models.")
show_all = len(counts) > CHART_TASKS and st.toggle(
    f"Show all {len(counts):,} tasks in the chart", key="flips-chart-all",
    help=f"The chart shows the {CHART_TASKS} tasks with most flips; the table has every task.",
)  # fmt: skip
shown = chart_counts(counts, None if show_all else CHART_TASKS)
if len(shown) < len(counts):
    st.caption(f"The {len(shown)} tasks with most flips, of {len(counts):,}, by capability.")
st.plotly_chart(flip_bars(shown), key="flips-chart")
components.show_table(counts_view(counts), key="flips-counts", name="forgetwatch-flip-counts")

unread = max(unread_count(examples), unread_count(forgotten))
if unread:
    st.info(REINGEST.format(n=unread))
examples_tab, forgot_tab = st.tabs(["Flipped examples", "What did we forget"])
with examples_tab:
    total = int(examples["total"].iloc[0]) if not examples.empty else 0
    if examples.empty:
        st.info("No flipped examples match." if flipped else "No flipped examples.")
    else:
        first = (page - 1) * PAGE_SIZE + 1
        st.caption(
            f"Showing {first:,}–{first + len(examples) - 1:,} of {total:,} flipped examples."
        )
        shown_examples = examples_view(examples, "Flipped examples")
        with st.expander("Read the first examples whole", expanded=True):
            for sentence in example_sentences(shown_examples.frame):
                st.markdown("- " + escape_markdown(sentence))
        components.show_table(shown_examples, key="flips-examples", name="forgetwatch-flips")
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if pages > 1 or page > 1:
        st.number_input("Page", min_value=1, max_value=max(pages, page), step=1, key="flips-page")
with forgot_tab:
    if forgotten.empty:
        st.info("Nothing forgotten: no sample went from right to wrong.")
    else:
        st.caption(
            f"{int(forgotten['total'].iloc[0]):,} right → wrong examples"
            + (f" on {escape_markdown(task)}" if task else "")
            + ", capability by capability"
            + (f"; the first {FORGOTTEN_LIMIT:,} shown." if len(forgotten) == FORGOTTEN_LIMIT
               else ".")
        )  # fmt: skip
        shown_counts = counts[counts["task"] == task] if task else counts
        lost = shown_counts.groupby("capability", sort=False)["right_to_wrong"].sum()
        for capability, rows in forgotten.groupby("capability", sort=False):
            st.markdown(f"##### {escape_markdown(str(capability))}: "
                        f"{int(lost.get(capability, len(rows))):,} forgotten")  # fmt: skip
            components.show_table(
                examples_view(rows, f"What did we forget: {capability}"),
                key=f"flips-forgotten-{capability}", name=f"forgetwatch-forgotten-{capability}",
            )  # fmt: skip
