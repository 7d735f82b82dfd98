"""Compare: chosen fine-tunes on one chart of gain vs forgetting, and the comparison table.

The page's whole state (runs, tasks, base, method, checkpoints) lives in the URL,
so a copied link reopens the same view. Widgets are seeded from the URL when
they first appear and write the URL back after every change.
"""

from __future__ import annotations

from collections.abc import Collection

import streamlit as st

from forgetwatch import queries, review
from forgetwatch.dashboard import components, next_steps
from forgetwatch.errors import ForgetwatchError
from forgetwatch.exports import charts
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.exports.figures import faded
from forgetwatch.queries import runs as run_queries
from forgetwatch.review import comparison as comparison_review
from forgetwatch.review import next_step

# URL key -> widget key; lists use repeated keys (?runs=a&runs=b).
URL_KEYS = {"runs": "cmp-runs", "models": "cmp-models", "tasks": "cmp-tasks",
            "base": "cmp-base", "method": "cmp-method", "ckpt": "cmp-ckpt"}  # fmt: skip


def seed_from_url(choices: dict[str, Collection[str]]) -> list[str]:
    """Put URL values into widget state (first render only); returns values it dropped."""
    dropped: list[str] = []
    for url_key, widget_key in URL_KEYS.items():
        if widget_key in st.session_state:
            continue
        values = st.query_params.get_all(url_key)
        if url_key == "ckpt":
            st.session_state[widget_key] = values[-1:] != ["0"]
        elif url_key in ("runs", "models", "tasks"):
            st.session_state[widget_key] = [v for v in values if v in choices[url_key]]
            dropped += [v for v in values if v not in choices[url_key]]
        elif values and values[-1] in choices[url_key]:
            st.session_state[widget_key] = values[-1]
        else:
            dropped += values
    return dropped


def write_url(spec: review.CompareSpec) -> None:
    """The URL for ``spec``: only what differs from the defaults, so links stay short."""
    params: dict[str, str | list[str]] = {}
    if spec.run_ids:
        params["runs"] = list(spec.run_ids)
    if spec.model_ids:
        params["models"] = list(spec.model_ids)
    if spec.tasks:
        params["tasks"] = list(spec.tasks)
    if spec.base_model:
        params["base"] = spec.base_model
    if spec.method:
        params["method"] = spec.method
    if not spec.include_checkpoints:
        params["ckpt"] = "0"
    if dict(st.query_params.to_dict()) != params or any(
        st.query_params.get_all(k) != ([v] if isinstance(v, str) else v) for k, v in params.items()
    ):
        st.query_params.from_dict(params)


def controls(data: components.PageData) -> review.CompareSpec:
    """The filter widgets, seeded from and written back to the URL.

    The run picker offers every run; typing filters its names in the browser, so
    the 5,000th run is as easy to reach as the newest.
    """
    runs = data.load(run_queries.run_choices)
    names = dict(zip(runs["run_id"], runs["label"], strict=True))
    options = data.load(queries.compare_options)
    runless = data.load(queries.model_choices)
    model_names = dict(zip(runless["model_id"], runless["label"], strict=True))
    choices: dict[str, Collection[str]] = {
        "runs": names, "models": model_names, "tasks": options["task"],
        "base": options["base_model"], "method": options["method"],
    }  # fmt: skip
    if URL_KEYS["runs"] not in st.session_state:  # ?runs= takes any run identifier
        asked = st.query_params.get_all("runs")
        resolved = [v if v in names else data.load(_run_id, v) for v in asked]
        if resolved != asked:
            st.query_params["runs"] = resolved
    dropped = seed_from_url(choices)
    if dropped:
        st.warning(f"Ignored values in the link that match nothing here: {', '.join(dropped)}")
    run_col, task_col = st.columns(2)
    run_ids = run_col.multiselect(
        "Runs", list(names), format_func=names.get, key=URL_KEYS["runs"], filter_mode="contains",
        placeholder=f"Type to search {len(names):,} runs; none picked = the newest "
        f"{comparison_review.TABLE_RUNS}",
    )  # fmt: skip
    model_ids: list[str] = []
    if model_names:  # models evaluated without an MLflow run
        model_ids = run_col.multiselect(
            "Models without a run", list(model_names), format_func=model_names.get,
            key=URL_KEYS["models"], filter_mode="contains",
            placeholder=f"Type to search {len(model_names):,} models",
        )  # fmt: skip
    tasks = task_col.multiselect(
        "Tasks", options["task"], key=URL_KEYS["tasks"], placeholder="All suite tasks"
    )
    base_col, method_col, ckpt_col = st.columns([3, 1, 1])
    base = base_col.selectbox(
        "Base model", options["base_model"], index=None, key=URL_KEYS["base"],
        placeholder="The most common base of these runs",
    )  # fmt: skip
    method = method_col.selectbox(
        "Method", options["method"], index=None, key=URL_KEYS["method"], placeholder="Any"
    )
    ckpt = ckpt_col.toggle("Show checkpoints", key=URL_KEYS["ckpt"])
    spec = review.CompareSpec(tuple(run_ids), tuple(tasks), base, method, ckpt, tuple(model_ids))
    write_url(spec)
    return spec


def _run_id(con: queries.Con, ident: str) -> str:
    """The run id a URL value names (id, name, model path, display name), else the value."""
    try:
        return queries.resolve_run(con, ident, where="?runs=").run_id or ident
    except ForgetwatchError:
        return ident


def report_title(comparison: review.Comparison) -> str:
    names = list(dict.fromkeys(comparison.summary.frame.get("run_name", []).dropna()))
    return "forgetwatch comparison: " + (", ".join(names) or "no models")


st.title("Compare")

data = components.page_data()
components.require_runs(data.load(queries.db_summary))
spec = controls(data)
comparison = data.load(comparison_review.page_comparison, spec)

for note in comparison.notes[1:]:  # the first note (units, CI method) is the caption below
    st.warning(escape_markdown(note), icon=":material/warning:")  # notes quote run names

points = comparison.points
if points.empty:
    if not next_steps.show(data.load(next_step.next_step), key="compare-next"):
        components.empty_state(
            "No evaluated fine-tunes match",
            "A model appears here once it and its base model have lm-eval results on the "
            "suite's tasks: run lm-eval on a run's output folder and on its base, then "
            "`forgetwatch ingest DIR`. Clear the filters above to see every model.",
        )
    st.stop()

mapped = data.load(
    comparison_review.map_points, base_model=comparison.base_model, method=spec.method,
    include_checkpoints=spec.include_checkpoints,
)  # fmt: skip
others = len(set(mapped["model_id"]) - set(points["model_id"]))
st.caption(
    "Each point is a fine-tuned model, relative to its base. Right is more target gain, "
    "up is more general capability kept; colour is hallucination change "
    "(purple = hallucinates more, green = less); faded = within noise on both axes. "
    + (f"Small grey dots are the {others:,} other models against this base. " if others else "")
    + "Click a point to open its run."
)
if len(mapped) >= comparison_review.MAP_LIMIT:
    st.caption(f"The chart maps the newest {comparison_review.MAP_LIMIT:,} models.")
plottable = points[points["target_gain"].notna() & points["general_change"].notna()]
if len(plottable) < len(points):
    st.info(
        f"{len(points) - len(plottable)} of {len(points)} models are not on the chart: the "
        "chart needs both a `target` task and a general task (knowledge, code or "
        "instructions) in the suite. They are in the tables below.",
        icon=":material/info:",
    )
components.verdict_badges(comparison.verdicts, comparison.labels())
scatter = faded(comparison, [charts.compare_scatter(points, mapped)])[0]
event = st.plotly_chart(scatter, on_select="rerun", selection_mode="points", key="compare-chart")
selected = event.selection.points if event else []
if selected:  # customdata: run id (None for a model with no run), then model id
    run_id, model_id = selected[0]["customdata"][:2]
    opened = {"run": run_id} if isinstance(run_id, str) and run_id else {"model": model_id}
    st.switch_page(components.RUN_PAGE, query_params=opened)

title = report_title(comparison)
components.export_buttons(
    lambda: comparison.report(title, faded(comparison, charts.comparison_figures(points))),
    key="compare-report",
    name=title.replace("forgetwatch comparison: ", "forgetwatch-compare-"),
)
st.caption(comparison.notes[0])
components.show_table(comparison.summary, key="compare-summary", name="compare-summary")
# One table at a time: with 100 runs the three tables hold tens of thousands of styled
# cells, and drawing the hidden ones in the browser tripled the page's load time.
tables = {"Comparison": comparison.table, "Deltas": comparison.deltas,
          "Provenance": comparison.provenance}  # fmt: skip
shown = st.segmented_control("Table", list(tables), default="Comparison", key="compare-table")
view = tables[shown or "Comparison"]
components.show_table(view, key=f"compare-{view.title.lower()}", name=view.title)
