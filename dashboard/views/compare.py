"""Compare: chosen fine-tunes on one chart of gain vs forgetting, and the comparison table.

The page's whole state (runs, tasks, base, method, checkpoints) lives in the URL,
so a copied link reopens the same view. Widgets are seeded from the URL when
they first appear and write the URL back after every change. A pick of more than
``URL_PICKS`` runs and models is saved in the database and the URL carries its key
(``?sel=``), so a link to a hundred runs stays short.
"""

from __future__ import annotations

from collections.abc import Collection

import duckdb
import streamlit as st

from forgetwatch import queries, review, settings
from forgetwatch.dashboard import components, next_steps
from forgetwatch.errors import ForgetwatchError
from forgetwatch.exports import charts
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.exports.figures import faded
from forgetwatch.exports.selections import save_selection
from forgetwatch.queries import compare as compare_queries
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
    """The URL for ``spec``: only what differs from the defaults, so links stay short.

    A few picks are named (``?runs=a&runs=b``); more are saved once and named by key.
    """
    params: dict[str, str | list[str]] = {}
    saved = _saved_key(spec)
    if saved:
        params["sel"] = saved
    else:
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


SAVED_KEYS = "cmp-saved"  # selection keys this session already stored


def _saved_key(spec: review.CompareSpec) -> str | None:
    """The stored selection key for a large pick (saving it first), else None.

    Saving is a short write; when the database cannot take it (a collector holds the
    lock past the timeout), the URL names the picks one by one instead.
    """
    if len(spec.run_ids) + len(spec.model_ids) <= comparison_review.URL_PICKS:
        return None
    key = comparison_review.selection_key(spec.run_ids, spec.model_ids)
    known: set[str] = st.session_state.setdefault(SAVED_KEYS, set())
    if key in known or st.query_params.get("sel") == key:
        return key
    try:
        save_selection(settings.db_path(), spec.run_ids, spec.model_ids)
    except (ForgetwatchError, duckdb.Error):
        return None
    known.add(key)
    return key


def _open_selection(data: components.PageData) -> None:
    """Turn a link's ``?sel=`` into its runs and models (first render only)."""
    key = st.query_params.get("sel")
    if not key or URL_KEYS["runs"] in st.session_state:
        return
    found = data.load(compare_queries.saved_selection, key)
    if found is None:
        st.warning(f"The link's saved selection `{key}` is not in this database.")
        return
    for url_key, picks in zip(("runs", "models"), found, strict=True):
        if picks:
            st.query_params[url_key] = picks
    st.session_state.setdefault(SAVED_KEYS, set()).add(key)


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
    _open_selection(data)
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
        placeholder="All bases: each model against its own",
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


def show_unshown(comparison: review.Comparison) -> None:
    """The notes as warnings; picks that cannot be shown are one line plus a list on demand."""
    for note in comparison.notes[1:]:  # the first note (units, CI method) is the caption
        st.warning(escape_markdown(note), icon=":material/warning:")  # notes quote run names
    if len(comparison.unshown) > comparison_review.NAMED_UNSHOWN:
        with st.expander(f"The {len(comparison.unshown):,} runs and models not shown"):
            st.markdown("\n".join(f"- {escape_markdown(n)}" for n in comparison.unshown))


def show_chart(
    data: components.PageData, spec: review.CompareSpec, comparison: review.Comparison
) -> None:
    """The gain-vs-erosion map; clicking a compared or backdrop model opens its run."""
    points = comparison.points
    mapped = data.load(
        comparison_review.map_points, base_model=spec.base_model, method=spec.method,
        include_checkpoints=spec.include_checkpoints,
    )  # fmt: skip
    others = len(set(mapped["model_id"]) - set(points["model_id"]))
    region = comparison.region
    st.caption(
        "Each point is a fine-tuned model, relative to its own base. Right is more target "
        "gain, up is more general capability kept; colour is hallucination change "
        "(purple = hallucinates more, green = less); faded = within noise on both axes. "
        "The orange step line is the Pareto frontier (no other model has more gain and "
        "more general capability); thin lines lead from a run's checkpoints to its final. "
        + (f"The shaded region is within the budget's limits. {region.detail} " if region else "")
        + (f"Small grey dots are the {others:,} other models. " if others else "")
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
    figure = charts.compare_scatter(points, mapped, region=region)
    scatter = faded(comparison, [figure])[0]
    event = st.plotly_chart(
        scatter, on_select="rerun", selection_mode="points", key="compare-chart"
    )
    # customdata: run id (None for a model with no run), then model id; lines have none.
    clicked = [p for p in (event.selection.points if event else []) if p.get("customdata")]
    if clicked:
        run_id, model_id = clicked[0]["customdata"][:2]
        opened = {"run": run_id} if isinstance(run_id, str) and run_id else {"model": model_id}
        st.switch_page(components.RUN_PAGE, query_params=opened)


def show_view(view: review.View, keys: tuple[str, ...], *, key: str) -> None:
    """A Compare table with key columns first; long text goes to a details table below.

    Empty cells stay empty (``placeholder=""``), never "None".
    """
    main, details = comparison_review.details_view(view, keys)
    components.show_table(main, key=key, name=view.title, placeholder="")
    if details is not None:
        long = [review.label(c) for c in details.frame.columns if c not in keys]
        with st.expander("Details: " + ", ".join(long), icon=":material/notes:"):
            components.show_table(details, key=f"{key}-details", name=details.title, placeholder="")


st.title("Compare")

data = components.page_data()
components.require_runs(data.load(queries.db_summary))
spec = controls(data)
comparison = data.load(comparison_review.page_comparison, spec)
show_unshown(comparison)

if comparison.points.empty:
    if not next_steps.show(data.load(next_step.next_step), key="compare-next"):
        components.empty_state(
            "No evaluated fine-tunes match",
            "A model appears here once it and its base model have lm-eval results on the "
            "suite's tasks: run lm-eval on a run's output folder and on its base, then "
            "`forgetwatch ingest DIR`. Clear the filters above to see every model.",
        )
    st.stop()

show_chart(data, spec, comparison)
title = report_title(comparison)
components.export_buttons(
    lambda: comparison.report(
        title,
        faded(comparison, charts.comparison_figures(comparison.points, region=comparison.region)),
    ),
    key="compare-report",
    name=title.replace("forgetwatch comparison: ", "forgetwatch-compare-"),
)
st.caption(comparison.notes[0])
show_view(comparison.summary, ("run_name", "kind", "step"), key="compare-summary")
# One table at a time: with 100 runs the three tables hold tens of thousands of styled
# cells, and drawing the hidden ones in the browser tripled the page's load time.
tables = {"Comparison": comparison.table_cells, "Deltas": comparison.deltas,
          "Provenance": comparison.provenance}  # fmt: skip
shown = st.segmented_control("Table", list(tables), default="Comparison", key="compare-table")
view = tables[shown or "Comparison"]
keys = ("capability", "task") if view is comparison.table_cells else ("run_name", "step", "task")
show_view(view, keys, key=f"compare-{view.title.lower()}")
