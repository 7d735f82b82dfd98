"""Models and runs: every synced run, and every model evaluated without one, with its
gain and erosion, a page at a time; select rows to act (or to pair a model with a base).

Each run's final model carries its forgetting-budget verdict and a note of eval
settings that differ from its base's; changes within noise are greyed. Filters,
the sort order and the page are applied in the database, so the page reads the
same at ten runs as at ten thousand.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from forgetwatch import queries
from forgetwatch.dashboard import base_picker, components, next_steps
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.review import headline as headline_review
from forgetwatch.review import next_step
from forgetwatch.review import runs as runs_review

PAGE_KEY, SIZE_KEY = "runs-page", "runs-size"


def run_badges(data: components.PageData, chosen: runs_review.Selection) -> None:
    """Verdict badges for every evaluated model (final and checkpoints) of the selection."""
    found, labels = data.load(runs_review.run_verdicts, chosen.run_ids, chosen.model_ids)
    if found:
        components.verdict_badges(found, labels)
    else:
        st.caption("No verdicts: nothing selected has an evaluated model and an evaluated base.")


def pairing(data: components.PageData, chosen: runs_review.Selection) -> None:
    """The base picker for selected models that no run produced."""
    if not chosen.model_ids:
        base_picker.show_outcome()
        return
    infos = [data.load(queries.model_info, m) for m in chosen.model_ids]
    bases = {i["base_model_id"] for i in infos if i}
    unpaired = sum(1 for i in infos if i and i["base_model_id"] is None)
    title = (
        f"Set the base model ({unpaired} selected model(s) have none)"
        if unpaired
        else "Change the base model of the selected models"
    )
    with st.expander(title, expanded=bool(unpaired)):
        base_picker.base_picker(
            data, chosen.model_ids, key="runs-base",
            current=next(iter(bases)) if len(bases) == 1 else None,
            paired=any(i and i["base_source"] == "user" for i in infos),
        )  # fmt: skip


def _pick_line(title: str, pick: headline_review.Pick) -> None:
    """ "Best under the budget: **name** · target +24.0" with an Open button."""
    text_col, open_col = st.columns([6, 1], vertical_alignment="center")
    gain = "n/a" if pick.target_gain is None else f"{pick.target_gain:+.1f}"
    kind = " (a checkpoint)" if pick.is_checkpoint else ""
    text_col.markdown(
        f"{title}: **{escape_markdown(pick.label)}**{kind} · target {gain} points"
        + ("" if pick.status == "pass" else f" · {pick.status}")
    )
    if pick.status != "pass" and pick.reasons:
        text_col.caption(escape_markdown(pick.reasons[0]))
    opened = {"run": pick.run_id} if pick.run_id else {"model": pick.model_id}
    if open_col.button("Open", key=f"headline-open-{title}", icon=":material/open_in_new:"):
        st.switch_page(components.RUN_PAGE, query_params=opened)


def headline_band(found: headline_review.Headline) -> None:
    """The answer first: verdict counts, the best (or least bad) model, the worst
    forgetting per capability, and the budget they were judged by."""
    if found.empty:
        return
    with st.container(border=True, key="headline"):
        st.markdown(f"#### {escape_markdown(found.verdict_line)}")
        st.caption(escape_markdown(found.scope_line))
        with st.container(horizontal=True):
            for status in headline_review.STATUSES:
                color, icon = components.VERDICT_STYLE[status]
                st.badge(f"{found.counts.get(status, 0)} {status}", icon=icon, color=color)
        if found.best is not None:
            _pick_line("Best under the budget", found.best)
        elif found.least_bad is not None:
            st.markdown("**Nothing passes the budget.**")
            _pick_line("Least bad", found.least_bad)
        if found.worst:
            st.markdown("**Worst forgetting**, per capability:")
            for col, worst in zip(st.columns(len(found.worst)), found.worst, strict=True):
                col.metric(worst.title, f"{worst.change:+.1f}", help=worst.text, border=False)
                col.caption(
                    escape_markdown(worst.label + ("" if worst.significant else " · within noise"))
                )
        st.caption(escape_markdown(found.budget_line))


def pager(overview: runs_review.RunsOverview) -> None:
    """ "Runs 1–50 of 10,000", the page buttons and the rows per page."""
    rows_col, pages_col, size_col = st.columns([3, 5, 2], vertical_alignment="center")
    rows_col.markdown(f"**{overview.rows_line}** · page {overview.page:,} of {overview.pages:,}")
    if overview.pages > 1:
        st.session_state[PAGE_KEY] = overview.page  # clamped: the filters may have narrowed
        with pages_col:
            st.pagination(overview.pages, key=PAGE_KEY, max_visible_pages=9)
    size_col.selectbox(
        "Rows per page", runs_review.PAGE_SIZES, key=SIZE_KEY, label_visibility="collapsed",
        format_func=lambda n: f"{n} rows per page",
    )  # fmt: skip


st.title("Models and runs")

data = components.page_data()
components.require_runs(data.load(queries.db_summary))
options = data.load(queries.filter_options)
search_col, base_col, method_col, sort_col = st.columns([3, 3, 2, 3])
search = search_col.text_input("Search", placeholder="run or model name, id, base model")
base_model = base_col.selectbox(
    "Base model", options["base_model"], index=None, placeholder="All base models"
)
method = method_col.selectbox("Method", options["method"], index=None, placeholder="All methods")
sort = sort_col.selectbox("Sort", list(runs_review.SORTS), key="runs-sort")
st.session_state.setdefault(SIZE_KEY, runs_review.PAGE_SIZE)
size = int(st.session_state[SIZE_KEY])
filters = (search, base_model, method, sort, size)
if st.session_state.get("runs-filters") != filters:  # new filters or order: back to page 1
    st.session_state["runs-filters"] = filters
    st.session_state[PAGE_KEY] = 1
overview = data.load(
    runs_review.runs_overview, search=search, base_model=base_model, method=method, sort=sort,
    page=int(st.session_state.get(PAGE_KEY, 1)), page_size=size,
)  # fmt: skip
headline_band(data.load(headline_review.headline, base_model=base_model, method=method))
if overview.empty:
    st.info("No runs or models match these filters.")
    st.stop()

# What stands between the stored data and a comparison (unevaluated runs, unmapped
# tasks, models with no base), else tasks no suite maps even though others are.
if not next_steps.show(data.load(next_step.next_step), key="runs-next"):
    next_steps.show(data.load(next_step.suite_step), key="runs-suite")
components.settings_warning(overview.warning)
st.caption(
    f"{overview.total:,} runs and models, {sort[0].lower() + sort[1:]}; the sort applies to "
    "every page. A row with no run id is a model evaluated without an MLflow run. "
    "Select rows to open one or compare several. "
    "Deltas are points vs the base model; greyed = within noise (not significant after "
    "correction, or untested). Verdicts use the forgetting budget (FORGETWATCH_BUDGET)."
)
pager(overview)
view = overview.view
# A new page is a new table: rows selected on another page never carry over by position.
shown = hashlib.sha1(repr((filters, overview.page)).encode()).hexdigest()[:12]
event = components.show_table(
    view,
    key=f"runs-table-{shown}",
    name=f"forgetwatch-runs-{overview.first_row}-{overview.last_row}",
    on_select="rerun",
    selection_mode="multi-row",
)
chosen = runs_review.selection(overview, event.selection.rows)
open_col, compare_col, flips_col = st.columns([1, 2, 2])
if open_col.button("Open", icon=":material/open_in_new:", disabled=chosen.count != 1):
    opened = {"run": chosen.run_ids[0]} if chosen.run_ids else {"model": chosen.model_ids[0]}
    st.switch_page(components.RUN_PAGE, query_params=opened)
if compare_col.button(
    f"Compare selected ({chosen.count})",
    icon=":material/compare_arrows:",
    type="primary",
    disabled=not chosen.count,
):
    picked = {"runs": chosen.run_ids, "models": chosen.model_ids}
    st.switch_page(components.COMPARE_PAGE, query_params={k: v for k, v in picked.items() if v})
chosen_models = [overview.final_models[r] for r in chosen.run_ids if r in overview.final_models]
chosen_models += chosen.model_ids
if flips_col.button(
    "What did it forget?", icon=":material/swap_vert:", disabled=len(chosen_models) != 1
):
    st.switch_page(components.FLIPS_PAGE, query_params={"model": chosen_models[0]})
if chosen.count:
    run_badges(data, chosen)
pairing(data, chosen)
