"""Named queries against a real DuckDB file with hand-picked scores (tests/fixture_db.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from forgetwatch import db, queries, review
from forgetwatch.errors import BadInputError
from forgetwatch.queries import runs
from forgetwatch.review import comparison as comparison_review
from forgetwatch.review import runs as runs_review
from tests.fixture_db import (
    BASE,
    FULL_CKPT,
    FULL_FINAL,
    LONG_HISTORY,
    LORA_FINAL,
    analyse,
    build_known_db,
)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = build_known_db(tmp_path_factory.mktemp("known") / "known.duckdb")
    with db.connect(path, read_only=True) as connection:
        yield connection


def test_db_summary_counts_every_table(con: duckdb.DuckDBPyConnection) -> None:
    assert queries.db_summary(con) == {
        "runs": 3,
        "models": 5,
        "evaluated_models": 4,
        "evals": 6,
        "scores": 44,
        "samples": 22,
    }


def test_filter_options_are_distinct_and_sorted(con: duckdb.DuckDBPyConnection) -> None:
    assert queries.filter_options(con) == {"base_model": [BASE], "method": ["full", "lora"]}


def test_runs_overview_deltas_params_and_nulls(con: duckdb.DuckDBPyConnection) -> None:
    runs = queries.runs_overview(con).set_index("run_id")
    assert list(runs.index) == ["run-new", "run-lora", "run-full"]  # newest first
    full = runs.loc["run-full"]
    # Latest eval wins: target .90 (not the older .50) vs base .20.
    assert full.target_gain == pytest.approx(0.70)
    # knowledge (-.2, -.2) -> -.2; code -.1; instructions -.2 -> mean -.1667.
    assert full.general_change == pytest.approx(-0.5 / 3)
    # hallucination rate 1-.5 vs 1-.9: +.4 (worse).
    assert full.hallucination_change == pytest.approx(0.40)
    assert (full.learning_rate, full.num_train_epochs) == ("0.003", "50")
    assert pd.isna(full.max_steps)  # MLflow's "-1" means unset
    lora = runs.loc["run-lora"]
    # Same evaluated_at: the later ingested_at wins (.60, not .10).
    assert lora.target_gain == pytest.approx(0.40)
    assert lora.general_change == pytest.approx(-0.05)  # only knowledge present
    assert lora.hallucination_change == pytest.approx(0.10)
    assert lora.lora_r == "8"
    new = runs.loc["run-new"]
    assert new[["target_gain", "general_change", "hallucination_change"]].isna().all()
    assert new.max_steps == "5000"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"search": "LORA"}, ["run-lora"]),
        ({"search": "tiny-world"}, ["run-new", "run-lora", "run-full"]),
        ({"search": "run-full"}, ["run-full"]),
        ({"method": "full"}, ["run-new", "run-full"]),
        ({"base_model": BASE, "method": "lora"}, ["run-lora"]),
        ({"base_model": "other"}, []),
        ({"search": ""}, ["run-new", "run-lora", "run-full"]),
        ({"limit": 1}, ["run-new"]),
    ],
)
def test_runs_overview_filters(
    con: duckdb.DuckDBPyConnection, kwargs: dict[str, object], expected: list[str]
) -> None:
    assert list(queries.runs_overview(con, **kwargs)["run_id"]) == expected


def test_task_deltas_use_primary_metric_of_latest_eval(con: duckdb.DuckDBPyConnection) -> None:
    tasks = queries.task_deltas(con, FULL_FINAL).set_index("task")
    assert set(tasks.index) == {
        "facts_new",
        "facts_old",
        "arith",
        "code_small",
        "instruct",
        "unknowns",
    }
    code = tasks.loc["code_small"]
    assert code[["capability", "metric", "filter"]].tolist() == ["code", "pass@1", "create_test"]
    assert (code.base_value, code.value) == pytest.approx((0.30, 0.20))
    assert code.delta == pytest.approx(-0.10)
    assert tasks.loc["facts_new", "value"] == pytest.approx(0.90)  # acc_norm .99 ignored


def test_task_deltas_null_where_base_missing(tmp_path: Path) -> None:
    path = build_known_db(tmp_path / "k.duckdb")
    with db.connect(path) as rw:
        rw.execute("DELETE FROM scores WHERE eval_id = 'e-base' AND task = 'arith'")
    with db.connect(path, read_only=True) as ro:
        tasks = queries.task_deltas(ro, FULL_FINAL).set_index("task")
        caps = queries.capability_deltas(ro, FULL_FINAL).set_index("capability")
    assert tasks.loc["arith", ["base_value", "delta"]].isna().all()
    # The capability mean skips the unknown delta: knowledge = facts_old only.
    assert caps.loc["knowledge", "delta"] == pytest.approx(-0.20)


def test_capability_deltas(con: duckdb.DuckDBPyConnection) -> None:
    caps = queries.capability_deltas(con, FULL_FINAL).set_index("capability")
    assert caps.loc["knowledge", "tasks"] == 2
    assert caps.loc["knowledge", "base_value"] == pytest.approx(0.70)
    assert caps.loc["knowledge", "delta"] == pytest.approx(-0.20)
    assert caps.loc["hallucination", "delta"] == pytest.approx(-0.40)
    assert caps.loc["target", "delta"] == pytest.approx(0.70)


def test_model_summary_and_unevaluated_model(con: duckdb.DuckDBPyConnection) -> None:
    summary = queries.model_summary(con, FULL_CKPT)
    assert summary == pytest.approx(
        {"target_gain": 0.20, "general_change": 0.0, "hallucination_change": 0.0}
    )
    assert queries.model_summary(con, "/runs/new") == dict.fromkeys(summary)
    assert queries.task_deltas(con, "/runs/new").empty


def test_final_model_and_run_models(con: duckdb.DuckDBPyConnection) -> None:
    assert queries.final_model_id(con, "run-full") == FULL_FINAL
    assert queries.final_model_id(con, "nope") is None
    models = queries.run_models(con, "run-full")
    assert list(models["model_id"]) == [FULL_FINAL, FULL_CKPT]
    assert queries.run_models(con, "run-new").empty


def test_compare_points(con: duckdb.DuckDBPyConnection) -> None:
    points = queries.compare_points(con).set_index("model_id")
    assert set(points.index) == {FULL_FINAL, FULL_CKPT, LORA_FINAL}  # run-new never evaluated
    assert points.loc[FULL_CKPT, "kind"] == "checkpoint"
    assert points.loc[FULL_CKPT, "step"] == 50
    assert points.loc[LORA_FINAL, ["run_id", "run_name", "method"]].tolist() == [
        "run-lora",
        "lora-r8",
        "lora",
    ]
    assert points.loc[FULL_FINAL, "target_gain"] == pytest.approx(0.70)
    finals = queries.compare_points(con, include_checkpoints=False)
    assert set(finals["model_id"]) == {FULL_FINAL, LORA_FINAL}
    # Newest run first, a run's final model before its checkpoints.
    assert list(points.index) == [LORA_FINAL, FULL_FINAL, FULL_CKPT]
    assert list(queries.compare_points(con, limit=1)["model_id"]) == [LORA_FINAL]


def test_run_info(con: duckdb.DuckDBPyConnection) -> None:
    info = queries.run_info(con, "run-lora")
    assert info is not None
    assert (info["run_name"], info["method"], info["lora_r"]) == ("lora-r8", "lora", "8")
    assert queries.run_info(con, "nope") is None


def test_metric_history_short_is_complete(con: duckdb.DuckDBPyConnection) -> None:
    assert queries.metric_keys(con, "run-full") == ["eval_loss", "learning_rate", "loss"]
    history = queries.metric_history(con, "run-full", ["loss", "eval_loss"])
    assert history.groupby("key").size().to_dict() == {"eval_loss": 3, "loss": 10}
    assert list(history.columns) == ["run_id", "key", "step", "value"]


def test_metric_history_downsampled_in_sql(con: duckdb.DuckDBPyConnection) -> None:
    history = queries.metric_history(con, "run-new", ["loss"], max_points=100)
    assert 100 <= len(history) <= 101
    assert history["step"].iloc[0] == 0
    assert history["step"].iloc[-1] == LONG_HISTORY - 1  # the last point is kept
    assert history["step"].is_monotonic_increasing
    full = queries.metric_history(con, "run-new", ["loss"], max_points=LONG_HISTORY)
    assert len(full) == LONG_HISTORY
    assert queries.metric_history(con, "run-new", []).empty


def test_runs_deleted_in_mlflow_are_kept_but_not_listed(tmp_path: Path) -> None:
    """A full sync sweep marks runs gone from MLflow; pages and pickers stop offering them."""
    path = build_known_db(tmp_path / "known.duckdb")
    with db.connect(path) as con:
        con.execute("UPDATE runs SET deleted = true WHERE run_id = 'run-lora'")
    with db.connect(path, read_only=True) as con:
        assert list(queries.runs_overview(con)["run_id"]) == ["run-new", "run-full"]
        assert queries.db_summary(con)["runs"] == 2
        assert "run-lora" not in queries.compare_options(con)["run_id"]
        assert LORA_FINAL not in set(queries.compare_points(con)["model_id"])
        assert queries.run_info(con, "run-lora") is not None  # still there for a direct link


# A sweep world built in SQL in seconds: ``runs`` runs over ``bases`` base models (the
# evaluated runs take turns), every ``every``-th run evaluated on ``tasks`` suite tasks
# with ``docs`` 0/1 samples each. Outcomes share a per-doc difficulty, so a score is the
# mean of its samples and flips against the base are plausible; general capability falls
# with the run's number, so sorts have a known answer.
SWEEP_CAPABILITIES = ("target", "knowledge", "code", "instructions", "hallucination")


def build_sweep_db(
    path: Path, runs: int, *, bases: int = 4, every: int = 20, tasks: int = 10, docs: int = 20
) -> Path:
    """Write the sweep world to a fresh file at ``path``; stored tests included."""
    with db.connect(path) as con, db.transaction(con):
        con.execute(
            """INSERT INTO suite_tasks
               SELECT printf('task_%03d', t), 'sweep', $caps[1 + t % 5], 'acc', 'none'
               FROM range($tasks) s(t)""",
            {"tasks": tasks, "caps": list(SWEEP_CAPABILITIES)},
        )
        con.execute(
            """INSERT INTO models (model_id, kind, path)
               SELECT printf('/bases/base-%02d', b), 'base', printf('/bases/base-%02d', b)
               FROM range($bases) s(b)""",
            {"bases": bases},
        )
        con.execute(
            """INSERT INTO runs (run_id, experiment_id, experiment_name, run_name, status,
                   start_time, base_model, method, output_dir, params, tags)
               SELECT printf('run-%05d', i), '1', 'sweep', printf('sweep-%05d', i), 'FINISHED',
                      TIMESTAMP '2024-01-01' + to_minutes(i),
                      printf('/bases/base-%02d', (i // $every) % $bases),
                      CASE WHEN i % 3 = 0 THEN 'lora' ELSE 'full' END,
                      printf('/runs/sweep-%05d', i),
                      map(['learning_rate'], [printf('%.4f', 0.0001 * (1 + i % 7))]), map()
               FROM range($runs) s(i)""",
            {"runs": runs, "bases": bases, "every": every},
        )
        con.execute(
            """INSERT INTO models (model_id, kind, path, run_id, base_model_id)
               SELECT output_dir, 'final', output_dir, run_id, base_model FROM runs"""
        )
        con.execute(
            """INSERT INTO evals (eval_id, model_id, lm_eval_version, evaluated_at, ingested_at,
                   n_shot, source_file)
               SELECT 'e-' || m.model_id, m.model_id, '0.4.13', TIMESTAMP '2024-06-01',
                      TIMESTAMP '2024-06-01', map(), m.model_id || '/results.json'
               FROM models m LEFT JOIN runs r USING (run_id)
               WHERE m.kind = 'base' OR CAST(right(r.run_id, 5) AS INTEGER) % $every = 0""",
            {"every": every},
        )
        # Skill: base .5 everywhere; a fine-tune gains on target and loses elsewhere by an
        # amount that grows with its run number (so newer runs forgot more).
        con.execute(
            """INSERT INTO samples (eval_id, task, doc_id, filter, metric, value, target,
                   response, doc_hash)
               WITH skill AS (
                   SELECT e.eval_id, st.task,
                          CASE WHEN m.kind = 'base' THEN 0.5
                               WHEN st.capability = 'target' THEN 0.9
                               ELSE greatest(0.05, 0.5 - 0.4 * n.i / $runs) END AS p
                   FROM evals e JOIN models m USING (model_id)
                   LEFT JOIN (SELECT run_id, CAST(right(run_id, 5) AS INTEGER) AS i FROM runs) n
                        ON n.run_id = m.run_id
                   CROSS JOIN suite_tasks st
               )
               SELECT eval_id, task, d, 'none', 'acc',
                      CASE WHEN (hash(task, d) % 1000) / 1000.0 < p THEN 1.0 ELSE 0.0 END,
                      'answer ' || d, 'response ' || d, task || '-' || d
               FROM skill CROSS JOIN range($docs) s(d)""",
            {"runs": runs, "docs": docs},
        )
        con.execute(
            """INSERT INTO scores (eval_id, task, metric, filter, value, stderr, n_samples)
               SELECT eval_id, task, metric, filter, avg(value),
                      sqrt(avg(value) * (1 - avg(value)) / (count(*) - 1)), count(*)
               FROM samples GROUP BY ALL"""
        )
    analyse(path)
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 runs, 60 of them evaluated: paging, sorting and counting run in SQL."""
    return build_sweep_db(tmp_path_factory.mktemp("sweep") / "sweep.duckdb", 1200)


@pytest.fixture(scope="module")
def sweep_con(sweep: Path) -> duckdb.DuckDBPyConnection:
    with db.connect(sweep, read_only=True) as connection:
        yield connection


def test_runs_page_pages_in_sql_with_a_total(sweep_con: duckdb.DuckDBPyConnection) -> None:
    assert runs.runs_count(sweep_con) == 1200
    first = runs.runs_page(sweep_con, limit=50)
    assert len(first) == 50
    assert list(first["run_id"][:2]) == ["run-01199", "run-01198"]  # newest first
    seen = [
        rid
        for offset in range(0, 1200, 500)
        for rid in runs.runs_page(sweep_con, limit=500, offset=offset)["run_id"]
    ]
    assert len(seen) == len(set(seen)) == 1200  # no run skipped or shown twice
    assert runs.runs_page(sweep_con, limit=50, offset=1200).empty
    assert len(runs.runs_page(sweep_con, limit=None)) == 1200  # no hidden cap


def test_runs_page_filters_and_counts_alike(sweep_con: duckdb.DuckDBPyConnection) -> None:
    filters = {"search": "sweep-011", "method": "lora"}
    matching = runs.runs_page(sweep_con, limit=None, **filters)
    assert runs.runs_count(sweep_con, **filters) == len(matching) == 33
    assert set(matching["method"]) == {"lora"}
    assert all(name.startswith("sweep-011") for name in matching["run_name"])
    assert runs.runs_count(sweep_con, base_model="/bases/base-00") == 300


def test_runs_page_sorts_every_page_by_a_delta(sweep_con: duckdb.DuckDBPyConnection) -> None:
    """Sorting by a delta orders all runs before paging: the first page holds the extremes."""
    worst = runs.runs_page(sweep_con, sort="general_change", descending=False, limit=5)
    # Equal deltas may differ in their last float bits; the sort orders them as equal.
    assert worst["general_change"].round(9).is_monotonic_increasing
    # General capability falls with the run number, so newer evaluated runs lost most.
    assert all(int(r[-5:]) >= 1000 for r in worst["run_id"])
    ordered_all = runs.runs_page(sweep_con, sort="general_change", descending=False, limit=None)
    assert list(ordered_all["run_id"][:5]) == list(worst["run_id"])
    evaluated = ordered_all["general_change"].notna()
    assert evaluated.sum() == 60 and evaluated[:60].all()  # unevaluated runs last
    second = runs.runs_page(sweep_con, sort="general_change", descending=False, limit=5, offset=5)
    assert round(second["general_change"].min(), 9) >= round(worst["general_change"].max(), 9)
    by_name = runs.runs_page(sweep_con, sort="run_name", descending=False, limit=3)
    assert list(by_name["run_name"]) == ["sweep-00000", "sweep-00001", "sweep-00002"]


def test_runs_page_refuses_an_unknown_sort(sweep_con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(BadInputError, match="Unknown sort column"):
        runs.runs_page(sweep_con, sort="start_time; DROP TABLE runs")


def test_runs_review_annotates_one_page(sweep_con: duckdb.DuckDBPyConnection) -> None:
    page = runs_review.runs_overview(
        sweep_con, sort="General change, most forgotten first", page=2, page_size=25
    )
    assert (page.total, page.pages, page.page) == (1200, 48, 2)
    assert page.rows_line == "Rows 26–50 of 1,200"
    frame = page.view.frame
    assert len(frame) == 25 and len(page.view.noise) == 25
    assert frame["verdict"].notna().sum() == 25  # rows 26-50 are all evaluated runs
    assert set(page.final_models) == set(frame["run_id"])
    past_end = runs_review.runs_overview(sweep_con, page=999, page_size=50)
    assert (past_end.page, past_end.rows_line) == (24, "Rows 1,151–1,200 of 1,200")
    nothing = runs_review.runs_overview(sweep_con, search="no such run", page_size=50)
    assert nothing.empty and nothing.total == 0 and nothing.rows_line == "No runs or models match."


def test_run_choices_offer_every_run(sweep_con: duckdb.DuckDBPyConnection) -> None:
    choices = runs.run_choices(sweep_con)
    assert len(choices) == 1200
    assert choices["run_id"].iloc[0] == "run-01199"
    assert dict(zip(choices["run_id"], choices["label"], strict=True))["run-00100"] == "sweep-00100"


def test_compare_without_picked_runs_tables_the_newest(
    sweep_con: duckdb.DuckDBPyConnection,
) -> None:
    """No runs picked: the tables take the newest few (and say so); the map takes all."""
    shown = comparison_review.page_comparison(sweep_con, review.CompareSpec(), max_runs=5)
    newest = queries.compare_points(
        sweep_con, include_checkpoints=False, base_model=shown.base_model, limit=5
    )
    assert list(shown.points["run_id"]) == list(newest["run_id"])
    assert any("the 5 newest evaluated runs" in note for note in shown.notes)
    # No base picked: every model against its own base, so the map holds all four bases.
    assert shown.base_model is None
    mapped = comparison_review.map_points(sweep_con, base_model=None)
    assert len(mapped) == 60 and set(shown.points["model_id"]) <= set(mapped["model_id"])
    one_base = review.CompareSpec(base_model="/bases/base-00")
    assert len(comparison_review.map_points(sweep_con, base_model="/bases/base-00")) == 15
    everything = comparison_review.page_comparison(sweep_con, one_base)
    assert len(everything.points) == 15  # fewer than the default 25: every run, no note
    assert not any("newest" in note for note in everything.notes)
