"""The Compare page's map and tables: frontier, budget region, trajectories, CI cells,
models of several bases together, no "None" in empty cells, and short links to many runs.

Pure functions are checked on hand-made points; the page runs through AppTest on the
hand-built known world and on a sweep world of 100 evaluated runs over four bases.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, queries, review
from forgetwatch.exports import charts
from forgetwatch.review import compare_map
from forgetwatch.review.budget import Budget, Rule
from forgetwatch.review.views import fmt_change
from tests.fixture_db import build_known_db
from tests.test_queries import build_sweep_db

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
EMPTY_TEXT = {"None", "nan", "<NA>", "NaN"}


def pts(rows: list[tuple[str, str, float | None, float | None, int | None]]) -> pd.DataFrame:
    """Points shaped like ``compare_points``: (run, kind, gain, general, step), fractions."""
    return pd.DataFrame(
        [
            {
                "model_id": f"{run}/{kind}{step or ''}",
                "run_id": run,
                "run_name": run,
                "kind": kind,
                "step": step,
                "target_gain": x,
                "general_change": y,
                "hallucination_change": 0.0,
                "base_model_id": "/b",
            }
            for run, kind, x, y, step in rows
        ]  # fmt: skip
    )


def test_frontier_is_the_non_dominated_points() -> None:
    points = pts([
        ("a", "final", 0.30, -0.10, None),  # most gain
        ("b", "final", 0.10, 0.05, None),  # most kept
        ("c", "final", 0.05, 0.00, None),  # beaten by b on both
        ("d", "final", 0.20, -0.02, None),  # between a and b: on it
        ("e", "final", 0.20, -0.02, None),  # the same place as d: on it too
        ("f", "final", None, 0.50, None),  # not on the chart
    ])  # fmt: skip
    on = compare_map.pareto_frontier(points)
    assert dict(zip(points["run_id"], on, strict=True)) == {
        "a": True, "b": True, "c": False, "d": True, "e": True, "f": False,
    }  # fmt: skip
    line = compare_map.frontier_line(points, on)
    assert list(line["target_gain"]) == [0.10, 0.20, 0.30]  # left to right, duplicates once
    fig = charts.compare_scatter(points)
    step = next(t for t in fig.data if t.name == "Pareto frontier")
    assert step.line.shape == "vh" and list(step.x) == pytest.approx([10, 20, 30])


def test_budget_region_uses_the_tightest_general_limit() -> None:
    plan = Budget((Rule("target", min_gain=2), Rule("knowledge", max_drop=1),
                   Rule("code", max_drop=3)))  # fmt: skip
    region = compare_map.budget_region(plan)
    assert region is not None
    assert (region.min_gain, region.min_general) == (2, -1)
    assert "within budget" in region.label and "knowledge 1" in region.detail
    assert compare_map.budget_region(Budget((Rule("hallucination", max_drop=1),))) is None
    only_gain = compare_map.budget_region(Budget((Rule("target", min_gain=5),)))
    assert only_gain is not None and only_gain.min_general is None and not only_gain.detail
    fig = charts.compare_scatter(pts([("a", "final", 0.1, 0.0, None)]), region=region)
    shaded = fig.data[0]  # drawn first, under every point
    assert shaded.name == region.label and shaded.fill == "toself"
    assert min(shaded.x) == 2 and min(shaded.y) == -1 and shaded.text == region.detail


def test_checkpoints_form_a_trajectory_ending_at_the_final() -> None:
    points = pts([
        ("r", "final", 0.30, -0.10, None),
        ("r", "checkpoint", 0.20, -0.05, 400),
        ("r", "checkpoint", 0.10, 0.00, 200),
        ("lone", "final", 0.05, 0.01, None),
    ])  # fmt: skip
    path = compare_map.trajectories(points)
    assert list(path["kind"]) == ["checkpoint", "checkpoint", "final"]
    assert list(path["step"].iloc[:2]) == [200, 400]
    labels, clusters = compare_map.point_labels(points, compare_map.pareto_frontier(points))
    assert sorted(labels) == ["@200", "@400", "lone", "r"] and clusters.empty
    line = next(t for t in charts.compare_scatter(points).data if t.name == "checkpoint trajectory")
    assert list(line.x) == pytest.approx([10, 20, 30, None])


def test_crowded_maps_label_the_frontier_and_finals_and_count_the_rest() -> None:
    rows = [("r", "final", 0.50, 0.0, None)]
    rows += [("r", "checkpoint", 0.01 * (i % 3), -0.20 - 0.001 * i, 10 * i) for i in range(20)]
    points = pts(rows)
    frontier = compare_map.pareto_frontier(points)
    labels, clusters = compare_map.point_labels(points, frontier)
    named = set(labels[labels != ""])
    assert "r" in named and len(named) <= compare_map.LABEL_LIMIT
    assert all(labels[~frontier & (points["kind"] == "checkpoint")] == "")
    assert clusters["n"].sum() == (labels == "").sum()  # every unnamed point is counted
    assert all(t.endswith(" models") for t in clusters["text"])


def test_ci_cells_use_the_shared_format(tmp_path: Path) -> None:
    path = build_known_db(tmp_path / "known.duckdb")
    with db.connect(path, read_only=True) as con:
        c = review.build_comparison(con, review.CompareSpec(run_ids=("run-full",)))
    numbers = c.table.frame.set_index(["capability", "task"])
    cells = c.table_cells.frame.set_index(["capability", "task"])
    deltas = c.deltas.frame.set_index(["model_id", "task"])
    task = deltas.loc[("/runs/full", "facts_new")]
    want = fmt_change(task["delta"], task["ci_low"], task["ci_high"], task["significant"])
    assert cells.loc[("target", "facts_new"), "full-lr3e-3"] == want
    assert want.startswith("+70.0")
    mean = cells.loc[("knowledge", "(mean)"), "full-lr3e-3"]
    assert mean.startswith(fmt_change(numbers.loc[("knowledge", "(mean)"), "full-lr3e-3"]))
    assert c.table_cells.noise is not None and c.table_cells.noise.shape[0] == len(cells)


@pytest.fixture(scope="module")
def sweep100(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 runs, every fourth evaluated: 100 evaluated runs over four bases."""
    return build_sweep_db(tmp_path_factory.mktemp("sweep100") / "s.duckdb", 400, every=4)


def open_compare(monkeypatch: pytest.MonkeyPatch, path: Path, **query: object) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.switch_page("views/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assert_no_empty_text(at: AppTest) -> None:
    """Every Compare table leaves empty cells empty: no "None", "nan" or "<NA>" anywhere.

    Missing values are drawn with the table's placeholder (""); text cells must not
    carry the words themselves (a None pasted into a string, a NaN CI end).
    """
    assert at.dataframe
    for table in at.dataframe:
        assert table.proto.placeholder == ""  # missing values are drawn as ""
        for column in table.value.columns:
            texts = [v for v in table.value[column] if isinstance(v, str)]
            assert not set(texts) & EMPTY_TEXT, column
            assert not any(t in v for v in texts for t in (" None", "nan", "<NA>")), column


def test_compare_tables_show_no_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = build_known_db(tmp_path / "known.duckdb")
    at = open_compare(monkeypatch, path)
    for name in ("Comparison", "Deltas", "Provenance"):
        at.button_group(key="compare-table").set_value(name).run()
        assert_no_empty_text(at)
    summary = at.dataframe[0].value
    assert "settings_mismatch" not in summary and "verdict_reasons" not in summary
    assert any("Details" in e.label for e in at.expander)  # the long text, one click away


def test_models_of_every_base_compare_together(
    monkeypatch: pytest.MonkeyPatch, sweep100: Path
) -> None:
    with db.connect(sweep100, read_only=True) as con:
        runs = tuple(queries.compare_points(con, include_checkpoints=False)["run_id"][:8])
        c = review.build_comparison(con, review.CompareSpec(run_ids=runs))
        one = review.build_comparison(
            con, review.CompareSpec(run_ids=runs, base_model="/bases/base-01")
        )
    assert len(c.points) == 8 and len(c.bases) == 4  # none left out for another base
    assert set(c.summary.frame["base_model"]) == {f"bases/base-0{b}" for b in range(4)}
    assert any(col.startswith("Base: ") for col in c.table.frame.columns)
    headers = [col for col in c.table_cells.frame.columns if " · vs " in col]
    assert len(headers) == 8
    assert set(one.points["base_model_id"]) == {"/bases/base-01"}  # the base is a filter
    at = open_compare(monkeypatch, sweep100, runs=list(runs))
    assert len(at.dataframe[0].value) == 8
    assert "each model's own base (4 bases" in "\n".join(c.value for c in at.caption)


def test_a_hundred_runs_get_a_short_link(monkeypatch: pytest.MonkeyPatch, sweep100: Path) -> None:
    with db.connect(sweep100, read_only=True) as con:
        runs = list(queries.compare_points(con, include_checkpoints=False)["run_id"])
    assert len(runs) == 100
    at = open_compare(monkeypatch, sweep100, runs=runs)
    url = "/compare?" + urlencode({k: at.query_params[k] for k in at.query_params}, doseq=True)
    assert len(url) < 200 and "sel=" in url and "runs=" not in url
    assert set(at.dataframe[0].value["run_id"]) == set(runs)
    reopened = open_compare(monkeypatch, sweep100, sel=at.query_params["sel"])
    assert set(reopened.multiselect(key="cmp-runs").value) == set(runs)
    assert set(reopened.dataframe[0].value["run_id"]) == set(runs)
    unknown = open_compare(monkeypatch, sweep100, sel="0000000000")
    assert any("not in this database" in w.value for w in unknown.warning)


def test_many_unshown_picks_are_one_line(monkeypatch: pytest.MonkeyPatch, sweep100: Path) -> None:
    with db.connect(sweep100, read_only=True) as con:
        evaluated = set(queries.compare_points(con, include_checkpoints=False)["run_id"])
    never = [f"run-{i:05d}" for i in range(1, 12) if f"run-{i:05d}" not in evaluated]
    at = open_compare(monkeypatch, sweep100, runs=["run-00000", *never])
    lines = [w.value for w in at.warning if "no comparable evals" in w.value]
    assert len(lines) == 1 and lines[0].startswith(f"{len(never):,} picked runs")
    assert any(str(len(never)) in e.label for e in at.expander)
