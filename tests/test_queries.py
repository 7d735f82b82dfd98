"""Named queries against a real DuckDB file with hand-picked scores (tests/fixture_db.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from forgetwatch import db, queries
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, LONG_HISTORY, LORA_FINAL, build_known_db


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = build_known_db(tmp_path_factory.mktemp("known") / "known.duckdb")
    with db.connect(path, read_only=True) as connection:
        yield connection


def test_db_summary_counts_every_table(con: duckdb.DuckDBPyConnection) -> None:
    assert queries.db_summary(con) == {
        "runs": 3,
        "models": 5,
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
