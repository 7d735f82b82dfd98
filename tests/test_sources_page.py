"""The Sources page through AppTest: empty state, ingest and sync forms, a clear error when
MLflow is unreachable. The collectors run for real, in the test's process, as they do in
the dashboard's.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, queries
from tests import crash_driver
from tests.procs import Server, free_port

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "views/sources.py"


def open_sources(monkeypatch: pytest.MonkeyPatch, path: Path) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Sources"]
    return at


def submit(at: AppTest, label: str, **inputs: str) -> AppTest:
    for key, value in inputs.items():
        at.text_input(key=key).input(value)
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements: object) -> str:
    return "\n".join(str(e.value) for e in elements)  # type: ignore[attr-defined]


def sources_frame(at: AppTest):  # noqa: ANN201 - a DataFrame
    assert len(at.dataframe) == 1
    return at.dataframe[0].value


def test_fresh_database_shows_empty_state_and_both_forms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = open_sources(monkeypatch, tmp_path / "fresh.duckdb")
    assert "Nothing collected yet" in texts(at.info)
    assert {b.label for b in at.button} >= {"Sync MLflow", "Ingest"}
    assert at.text_input(key="sync-uri").value == ""
    assert at.checkbox(key="sync-full").value is False


def test_tracking_uri_defaults_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FORGETWATCH_DB", str(tmp_path / "fresh.duckdb"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE)
    at.run()
    assert at.text_input(key="sync-uri").value == "http://127.0.0.1:5999"


def test_ingest_folder_shows_report_and_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    crash_driver.write_lm_eval_outputs(tmp_path / "outputs", models=3, tasks=2, docs=10)
    path = tmp_path / "page.duckdb"
    at = open_sources(monkeypatch, path)
    submit(at, "Ingest", **{"ingest-path": str(tmp_path / "outputs")})
    assert "lm-eval: 3 inserted" in texts(at.success)
    assert at.get("progress")[-1].proto.value == 100  # the bar reached the end
    frame = sources_frame(at)
    row = frame[frame["kind"] == "lm-eval"].iloc[0]
    assert row["evals"] == 3 and row["detail"] == "3 models"
    with db.connect(path, read_only=True) as con:
        assert queries.db_summary(con)["samples"] == 3 * 2 * 10 * 2
    # A second ingest of the same folder finds nothing new.
    submit(at, "Ingest", **{"ingest-path": str(tmp_path / "outputs")})
    assert "0 inserted" in texts(at.success) and "3 unchanged" in texts(at.success)


def test_ingest_of_a_missing_folder_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = open_sources(monkeypatch, tmp_path / "page.duckdb")
    submit(at, "Ingest", **{"ingest-path": str(tmp_path / "nowhere")})
    error = texts(at.error)
    assert "nowhere" in error and "Next step" in error


def test_sync_against_mlflow_server_lists_the_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mlflow_server: Server
) -> None:
    from mlflow.tracking import MlflowClient

    # Runs of our own, in an experiment deleted afterwards: other tests sync every
    # active experiment of the shared session server and must not see them.
    client = MlflowClient(tracking_uri=mlflow_server.url)
    name = f"sources-page-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    try:
        for number in range(2):
            run = client.create_run(exp_id, run_name=f"page-run-{number}")
            client.log_metric(run.info.run_id, "loss", 1.0 / (number + 1), step=1)
            client.set_terminated(run.info.run_id)
        at = open_sources(monkeypatch, tmp_path / "page.duckdb")
        at.checkbox(key="sync-full").check()
        submit(at, "Sync MLflow", **{"sync-uri": mlflow_server.url, "sync-experiments": name})
    finally:
        client.delete_experiment(exp_id)
    assert f"mlflow {mlflow_server.url}: 2 inserted" in texts(at.success)
    assert at.get("progress")[-1].proto.value == 100
    frame = sources_frame(at)
    row = frame[frame["kind"] == "MLflow"].iloc[0]
    assert mlflow_server.url in row["source"]
    assert row["runs"] == 2
    assert row["last_sync"] is not None and row["max_start_time"] is not None


def test_unreachable_server_shows_clear_error_quickly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = open_sources(monkeypatch, tmp_path / "page.duckdb")
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    submit(at, "Sync MLflow", **{"sync-uri": dead})
    elapsed = time.monotonic() - started
    error = texts(at.error)
    assert "unreachable" in error and dead in error and "Next step" in error
    # Not a speed benchmark: a guard against MLflow's default retries (minutes).
    assert elapsed < 30, elapsed
    assert "Nothing collected yet" in texts(at.info)
