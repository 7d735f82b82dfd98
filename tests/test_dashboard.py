"""Every dashboard page through Streamlit's AppTest, against real DuckDB files.

Pages run against a missing database, an empty one, the hand-built ``known_db``
and the collector-built ``demo_db``. AppTest cannot render plotly charts (they
come back as ``UnknownElement``), so figures are checked directly through
``forgetwatch.exports.charts`` and pages are checked for the chart's presence.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, exports, queries, review
from forgetwatch.dashboard import components
from forgetwatch.exports import charts, run_charts
from forgetwatch.review import breakeven
from forgetwatch.review import comparison as comparison_review
from forgetwatch.review import run as run_review
from forgetwatch.review import runs as runs_review
from forgetwatch.review.checkpoints import checkpoints_review
from tests.fixture_db import BASE, FULL_FINAL, build_known_db
from tests.test_queries import build_sweep_db

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
# The title each page shows, where it differs from its short name here.
TITLES = {"Runs": "Models and runs"}
PAGES = {
    "Runs": "views/runs.py",
    "Run": "views/run.py",
    "Compare": "views/compare.py",
    "Flips": "views/flips.py",
}


@pytest.fixture(scope="session")
def known_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_known_db(tmp_path_factory.mktemp("known") / "known.duckdb")


@pytest.fixture(params=["known_db", "demo_db"])
def any_db(request: pytest.FixtureRequest) -> Path:
    """Both worlds: the hand-built one and the one the real collectors build."""
    return Path(request.getfixturevalue(request.param))


def open_app(
    monkeypatch: pytest.MonkeyPatch, path: Path, page: str = "Runs", **query: str
) -> AppTest:
    """Run the app against ``path``, on ``page``, with ``query`` as query params."""
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    if page != "Runs":
        at.switch_page(PAGES[page])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [TITLES.get(page, page)]
    return at


def infos(at: AppTest) -> str:
    return "\n".join(str(i.value) for i in at.info)


@pytest.fixture
def empty_db(tmp_path: Path) -> Path:
    path = tmp_path / "empty.duckdb"
    with db.connect(path):  # a writer's open applies the schema, nothing else
        pass
    return path


@pytest.mark.parametrize("page", PAGES)
def test_missing_db_shows_how_to_get_data_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str
) -> None:
    at = open_app(monkeypatch, tmp_path / "missing.duckdb", page)
    text = infos(at)
    assert "No forgetwatch database yet" in text
    for command in ("forgetwatch demo", "forgetwatch sync --tracking-uri", "forgetwatch ingest"):
        assert command in text


@pytest.mark.parametrize("page", PAGES)
def test_empty_db_shows_empty_state(
    monkeypatch: pytest.MonkeyPatch, empty_db: Path, page: str
) -> None:
    at = open_app(monkeypatch, empty_db, page)
    assert "No runs or evals in the database yet" in infos(at)
    assert "forgetwatch demo" in infos(at)


def test_unreadable_db_shows_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "junk.duckdb"
    path.write_text("not a database")
    at = open_app(monkeypatch, path, "Compare")
    assert "Cannot open the forgetwatch database" in at.error[0].value
    assert "junk.duckdb" in at.error[0].value and "Next step:" in at.error[0].value


def test_runs_page_lists_and_filters(monkeypatch: pytest.MonkeyPatch, known_db: Path) -> None:
    at = open_app(monkeypatch, known_db)
    table = at.dataframe[0].value
    assert list(table["run_id"]) == ["run-new", "run-lora", "run-full"]
    # Shown in points: +70.0 target gain for the full fine-tune.
    assert table.set_index("run_id").loc["run-full", "target_gain"] == pytest.approx(70.0)
    at.text_input[0].input("lora").run()
    assert list(at.dataframe[0].value["run_id"]) == ["run-lora"]
    at.text_input[0].input("no such run").run()
    assert "No runs or models match" in infos(at)


def test_run_page_via_query_param(monkeypatch: pytest.MonkeyPatch, known_db: Path) -> None:
    at = open_app(monkeypatch, known_db, "Run", run="run-full")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Target gain"] == "+70.0"
    assert metrics["General change"] == "-16.7"
    assert metrics["Hallucination change, + = worse"] == "+40.0"
    assert "**Method** full" in at.markdown[0].value
    assert "**LR** 0.003" in at.markdown[0].value
    keys = {el.key for el in at.get("plotly_chart")}
    assert {"curves", "bars-capability", "bars-task"} <= keys
    assert at.multiselect[0].value == ["loss", "eval_loss"]
    assert len(at.dataframe) == 2  # capability and task tables
    # The run has a checkpoint too: picking it shows its own deltas.
    at.selectbox[0].select_index(1).run()
    assert {m.label: m.value for m in at.metric}["Target gain"] == "+20.0"


def test_run_page_without_evals_says_how_to_evaluate(
    monkeypatch: pytest.MonkeyPatch, known_db: Path
) -> None:
    at = open_app(monkeypatch, known_db, "Run", run="run-new")
    text = infos(at)
    assert "This run has no evals yet" in text
    assert "forgetwatch ingest DIR" in text and "/runs/new" in text
    assert "curves" in {el.key for el in at.get("plotly_chart")}


def test_run_page_unknown_run_and_picker(monkeypatch: pytest.MonkeyPatch, known_db: Path) -> None:
    at = open_app(monkeypatch, known_db, "Run", run="nope")
    assert "No run or model named 'nope'" in at.error[0].value
    assert "Did you mean" in at.error[0].value or "Sync runs" in at.error[0].value
    at = open_app(monkeypatch, known_db, "Run")
    at.selectbox[0].select("run-lora").run()
    assert at.query_params["run"] == "run-lora"
    assert {m.label: m.value for m in at.metric}["Target gain"] == "+40.0"


def test_compare_page(monkeypatch: pytest.MonkeyPatch, known_db: Path) -> None:
    at = open_app(monkeypatch, known_db, "Compare")
    assert [el.key for el in at.get("plotly_chart")] == ["compare-chart"]
    assert len(at.dataframe[0].value) == 3
    at.toggle[0].set_value(False).run()
    assert set(at.dataframe[0].value["kind"]) == {"final"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_real_data(
    monkeypatch: pytest.MonkeyPatch, any_db: Path, page: str
) -> None:
    with db.connect(any_db, read_only=True) as con:
        runs = queries.runs_overview(con)
        points = queries.compare_points(con)
    query = {"run": str(runs["run_id"].iloc[0])} if page == "Run" else {}
    at = open_app(monkeypatch, any_db, page, **query)
    assert not at.error
    if page == "Runs":
        assert len(at.dataframe[0].value) == len(runs)
    if page == "Compare":
        assert not points.empty
        assert len(at.dataframe[0].value) == len(points)
    if page == "Flips":  # the demo's evals log samples: the newest fine-tune vs its base
        assert at.dataframe[0].value["n_pairs"].sum() > 0


def test_navigation_runs_to_run_page(monkeypatch: pytest.MonkeyPatch, any_db: Path) -> None:
    """What a row click does: switch_page to Run with ``?run=`` set; the Run page reads it."""
    at = open_app(monkeypatch, any_db)
    run_id = str(at.dataframe[0].value["run_id"].iloc[-1])
    at.query_params["run"] = run_id
    at.switch_page(PAGES["Run"]).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Run"]
    assert at.subheader[0].value


@pytest.fixture
def known_points(known_db: Path) -> Iterator[pd.DataFrame]:
    with db.connect(known_db, read_only=True) as con:
        yield queries.compare_points(con)


def test_compare_scatter_figure(known_points: pd.DataFrame) -> None:
    fig = charts.compare_scatter(known_points)
    by_name = {trace.name: trace for trace in fig.data if trace.customdata is not None}
    markers = {"final", "checkpoint"}
    names = {trace.name for trace in fig.data}
    assert markers | {"checkpoint trajectory", "Pareto frontier", "labels"} == names
    # The legend shows a grey stand-in for each colour-scaled marker (readable when dark).
    legend = [t for t in fig.data if t.name in markers and t.customdata is None]
    assert {t.name for t in legend} == markers and all(t.showlegend is not False for t in legend)
    assert all(by_name[m].showlegend is False for m in markers)
    final = by_name["final"]
    assert final.marker.size > by_name["checkpoint"].marker.size
    assert {row[0] for row in final.customdata} == {"run-full", "run-lora"}
    assert sorted(final.x) == pytest.approx([40.0, 70.0])
    assert fig.layout.coloraxis.cmid == 0
    labels = {a.text for a in fig.layout.annotations}
    assert {"gained & kept", "gained, forgot", "no gain, kept", "no gain, forgot"} <= labels


def test_compare_scatter_marks_missing_hallucination(known_points: pd.DataFrame) -> None:
    points = known_points.assign(
        hallucination_change=lambda d: d["hallucination_change"].where(d["run_id"] != "run-lora")
    )
    names = {
        trace.name for trace in charts.compare_scatter(points).data if trace.customdata is not None
    }
    assert names == {"final", "checkpoint", "final, no hallucination eval"}


def test_delta_bars_and_lines(known_db: Path) -> None:
    with db.connect(known_db, read_only=True) as con:
        caps = queries.capability_deltas(con, FULL_FINAL)
        history = queries.metric_history(con, "run-full", ["loss", "eval_loss"])
    bars = run_charts.delta_bars(caps, "capability").data[0]
    assert dict(zip(bars.y, bars.text, strict=True))["target"] == "+70.0"
    assert [t.name for t in run_charts.metric_lines(history).data] == ["eval_loss", "loss"]


def test_compare_state_lives_in_the_url(monkeypatch: pytest.MonkeyPatch, known_db: Path) -> None:
    at = open_app(monkeypatch, known_db, "Compare", runs="run-full", tasks="facts_new", ckpt="0")
    assert at.multiselect[0].value == ["run-full"]
    assert at.multiselect[1].value == ["facts_new"]
    assert at.toggle[0].value is False
    summary = at.dataframe[0].value
    assert list(summary.columns[:4]) == ["run_name", "kind", "step", "target_gain"]
    assert summary.columns[-1] == "model_id"
    assert list(summary["model_id"]) == [FULL_FINAL]
    at.button_group(key="compare-table").set_value("Deltas").run()
    deltas = [d.value for d in at.dataframe if "delta" in d.value]  # the Deltas table
    assert set(deltas[0]["task"]) == {"facts_new"}
    # Changing a widget writes the URL, so a copied link reopens this view.
    at.multiselect[0].select("run-lora").run()
    assert at.query_params["runs"] == ["run-full", "run-lora"]
    assert at.query_params["ckpt"] in ("0", ["0"])
    assert len(at.dataframe[0].value) == 2


def test_compare_warns_about_mismatch_and_bad_links(
    monkeypatch: pytest.MonkeyPatch, known_db: Path
) -> None:
    at = open_app(monkeypatch, known_db, "Compare", runs=["run-full", "gone"], base="nope")
    warnings = "\n".join(w.value for w in at.warning)
    assert "Ignored values in the link" in warnings and "gone" in warnings
    assert "Settings mismatch" in warnings and "n-shot 5 vs 0" in warnings
    labels = {b.label for b in at.get("download_button")}
    assert {"CSV", "Markdown", "LaTeX (booktabs)", "Excel", "HTML report"} <= labels


def test_runs_page_offers_compare_and_exports(
    monkeypatch: pytest.MonkeyPatch, known_db: Path
) -> None:
    at = open_app(monkeypatch, known_db)
    buttons = {b.label: b for b in at.button}
    assert buttons["Compare selected (0)"].disabled and buttons["Open"].disabled
    assert len(at.get("download_button")) == len(exports.FORMATS)


@pytest.fixture(scope="session")
def sweep_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 runs, 60 of them evaluated: more than any fixed cap the pages used to have."""
    return build_sweep_db(tmp_path_factory.mktemp("sweep") / "sweep.duckdb", 1200)


def texts(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in [*at.markdown, *at.caption, *at.warning, *at.info])


def test_runs_page_pages_through_many_runs(monkeypatch: pytest.MonkeyPatch, sweep_db: Path) -> None:
    at = open_app(monkeypatch, sweep_db)
    table = at.dataframe[0].value
    assert len(table) == 50 and table["run_id"].iloc[0] == "run-01199"
    assert "Rows 1–50 of 1,200" in texts(at) and "page 1 of 24" in texts(at)
    pager = at.get("pagination")[0]
    assert (pager.num_pages, pager.value) == (24, 1)
    pager.select(2).run()
    assert "Rows 51–100 of 1,200" in texts(at)
    assert at.dataframe[0].value["run_id"].iloc[0] == "run-01149"
    at.get("pagination")[0].select(24).run()
    assert "Rows 1,151–1,200 of 1,200" in texts(at)
    assert at.dataframe[0].value["run_id"].iloc[-1] == "run-00000"
    # A new order starts on page 1 and applies to every run, not just the page shown.
    at.selectbox(key="runs-sort").select("General change, most forgotten first").run()
    assert "Rows 1–50 of 1,200" in texts(at)
    shown = at.dataframe[0].value["general_change"]
    assert shown.iloc[:50].notna().all() and shown.is_monotonic_increasing
    at.selectbox(key="runs-size").select(100).run()
    assert len(at.dataframe[0].value) == 100
    at.text_input[0].input("sweep-0005").run()
    assert "Rows 1–10 of 10" in texts(at)
    assert len(at.get("download_button")) == len(exports.FORMATS)  # the page's export


def test_compare_picker_reaches_every_run(monkeypatch: pytest.MonkeyPatch, sweep_db: Path) -> None:
    """The picker once offered only the 500 newest runs; run-00100 is the 1,100th newest."""
    at = open_app(monkeypatch, sweep_db, "Compare")
    picker = at.multiselect(key="cmp-runs")
    assert len(picker.proto.options) == 1200
    picker.select("run-00100").run()
    assert list(at.dataframe[0].value["run_id"]) == ["run-00100"]
    assert at.query_params["runs"] in ("run-00100", ["run-00100"])
    # A hand-written link naming the run does the same.
    at = open_app(monkeypatch, sweep_db, "Compare", runs="sweep-00100")
    assert at.multiselect(key="cmp-runs").value == ["run-00100"]
    assert list(at.dataframe[0].value["run_id"]) == ["run-00100"]


def counting(calls: list[str], fn: Any) -> Any:
    """``fn`` that records each time it really runs (a cache hit never calls it)."""

    @functools.wraps(fn)
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(fn.__name__)
        return fn(*args, **kwargs)

    return counted


def test_page_data_caches_per_database_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = build_known_db(tmp_path / "known.duckdb")
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    calls: list[str] = []
    summary = counting(calls, queries.db_summary)
    first = components.page_data()
    assert first.load(summary)["runs"] == 3
    assert first.load(summary)["runs"] == 3
    assert components.page_data().load(summary)["runs"] == 3  # a rerun, nothing written
    assert calls == ["db_summary"]
    names = counting(calls, queries.run_names)
    assert first.load(names, ["run-full"]) == {"run-full": "full-lr3e-3"}
    assert first.load(names, ["run-lora"]) == {"run-lora": "lora-r8"}  # other arguments
    assert calls == ["db_summary", "run_names", "run_names"]
    with db.connect(path) as con:
        con.execute("DELETE FROM runs WHERE run_id = 'run-new'")
    after = components.page_data()
    assert after.generation > first.generation
    assert after.load(summary)["runs"] == 2  # the write is seen at once
    assert calls[-1] == "db_summary" and len(calls) == 4


def test_reruns_run_no_query_until_a_write(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = build_known_db(tmp_path / "known.duckdb")
    calls: list[str] = []
    for name in ("runs_overview", "run_verdicts"):
        monkeypatch.setattr(runs_review, name, counting(calls, getattr(runs_review, name)))
    at = open_app(monkeypatch, path)
    assert calls == ["runs_overview"]
    at.run()
    at.text_input[0].input("").run()  # an interaction that changes nothing
    assert calls == ["runs_overview"]
    with db.connect(path) as con:
        con.execute("UPDATE runs SET run_name = 'renamed' WHERE run_id = 'run-full'")
    at.run()
    assert calls == ["runs_overview", "runs_overview"]
    assert "renamed" in set(at.dataframe[0].value["run_name"])


def test_view_models_pickle_for_the_cache(known_db: Path) -> None:
    """``st.cache_data`` stores answers pickled: every page's view model must round-trip."""
    with db.connect(known_db, read_only=True) as con:
        loaded = [
            runs_review.runs_overview(con, page_size=50),
            runs_review.run_verdicts(con, ["run-full"]),
            comparison_review.page_comparison(con, review.CompareSpec()),
            comparison_review.map_points(con, base_model=BASE),
            run_review.model_changes(con, FULL_FINAL, "run-full"),
            checkpoints_review(con, "run-full"),
            breakeven.kshot_setup(con, "run-full"),
            queries.resolve_run(con, "full-lr3e-3"),
        ]
    for value in loaded:
        copy = pickle.loads(pickle.dumps(value))
        assert type(copy) is type(value)
    overview = pickle.loads(pickle.dumps(loaded[0]))
    pd.testing.assert_frame_equal(overview.view.frame, loaded[0].view.frame)


def test_compare_scatter_fades_the_backdrop(sweep_db: Path) -> None:
    with db.connect(sweep_db, read_only=True) as con:
        spec = review.CompareSpec(run_ids=("run-00100", "run-00180"))
        comparison = comparison_review.page_comparison(con, spec)
        mapped = comparison_review.map_points(con, base_model=comparison.base_model)
    fig = charts.compare_scatter(comparison.points, mapped)
    backdrop, *compared = fig.data  # drawn first, so the compared models sit on top
    assert backdrop.name == f"other models ({len(mapped) - 2})"
    assert backdrop.marker.opacity < 1 and backdrop.marker.color == charts.BACKDROP
    assert {row[0] for row in backdrop.customdata}.isdisjoint(spec.run_ids)
    compared = [t for t in compared if t.customdata is not None]  # not the lines, labels
    assert {row[0] for t in compared for row in t.customdata} == set(spec.run_ids)
    assert {t.type for t in fig.data} == {"scatter"}  # few points: SVG
    many = pd.concat(
        [mapped.assign(model_id=mapped["model_id"] + f"#{i}") for i in range(80)],
        ignore_index=True,
    )
    assert len(many) > charts.WEBGL_POINTS
    big = charts.compare_scatter(comparison.points, many)
    assert big.data[0].type == "scattergl" and big.data[1].type == "scatter"
