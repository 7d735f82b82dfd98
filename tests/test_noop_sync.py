"""A re-sync of an unchanged ``sqlite:///`` store is answered without MLflow, and any change
to what a sync reads still makes it read.

Each test logs into a real local MLflow store through MLflow's client, syncs it into a
real DuckDB file, changes the store the way a training script would, and syncs again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import LoggedModelStatus, Metric
from mlflow.tracking import MlflowClient

from forgetwatch import analysis, db
from forgetwatch.collectors import lm_eval_results, mlflow_runs, mlflow_store
from forgetwatch.collectors.mlflow_noop import DETAIL
from tests.conftest import ROOT

LM_EVAL_OUTPUT = ROOT / "tests" / "fixtures" / "lm_eval" / "0.4.13" / "plain"
HEAVY = ("mlflow", "pandas", "numpy", "scipy", "sqlalchemy", "torch", "transformers", "lm_eval")


def _query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _detail(path: Path) -> str:
    return str(_query(path, "SELECT detail FROM sync_state")[0][0])


def _run(client: MlflowClient, exp: str, name: str, *, finish: bool = True) -> str:
    run_id = client.create_run(exp, run_name=name).info.run_id
    client.log_param(run_id, "_name_or_path", "/models/base")
    client.log_param(run_id, "output_dir", f"/outputs/{name}")
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), now + s, s) for s in range(4)])
    if finish:
        client.set_terminated(run_id)
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, MlflowClient, str]:
    """A local store with one finished and one running run: (tracking URI, client, exp id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("noop", artifact_location=str(tmp_path / "art"))
    _run(client, exp, "done")
    _run(client, exp, "live", finish=False)
    return uri, client, exp


def test_an_unchanged_store_is_not_read_and_the_sync_time_moves(
    store: tuple[str, MlflowClient, str], tmp_path: Path
) -> None:
    uri, _, _ = store
    path = tmp_path / "fw.duckdb"
    first = mlflow_runs.sync(uri, path)
    assert first.inserted == 2 and "full sweep" in _detail(path)
    rows = _query(path, "SELECT * EXCLUDE (synced_at) FROM runs ORDER BY run_id")
    synced = _query(path, "SELECT synced_at FROM sync_state")
    again = mlflow_runs.sync(uri, path)
    assert (again.inserted, again.updated, again.skipped) == (0, 0, 2)
    assert _detail(path) == DETAIL
    assert "analysis: up to date" in again.summary()
    assert _query(path, "SELECT * EXCLUDE (synced_at) FROM runs ORDER BY run_id") == rows
    assert _query(path, "SELECT synced_at FROM sync_state") > synced


def test_every_change_a_sync_reads_makes_it_read_again(
    store: tuple[str, MlflowClient, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, client, exp = store
    path = tmp_path / "fw.duckdb"
    mlflow_runs.sync(uri, path)
    runs = dict(_query(path, "SELECT run_name, run_id FROM runs"))

    new = _run(client, exp, "new")  # a new run
    assert mlflow_runs.sync(uri, path).inserted == 1 and _detail(path) != DETAIL

    client.set_terminated(runs["live"])  # a running run finishes
    assert mlflow_runs.sync(uri, path).updated == 1
    assert _query(path, "SELECT status FROM runs WHERE run_id = ?", [runs["live"]]) == [
        ("FINISHED",)
    ]

    client.log_metric(runs["done"], "loss", 0.01, step=50)  # a new point on a finished run
    mlflow_runs.sync(uri, path)
    assert _query(path, "SELECT max(step) FROM run_metrics WHERE run_id = ?", [runs["done"]]) == [
        (50,)
    ]

    model = client.create_logged_model(exp, name="checkpoint-40", source_run_id=new)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)  # a new checkpoint
    mlflow_runs.sync(uri, path)
    assert _query(path, "SELECT name, step FROM logged_models") == [("checkpoint-40", 40)]
    assert _query(path, "SELECT kind FROM models WHERE model_id = '/outputs/new/checkpoint-40'")

    client.create_registered_model("noop-model")  # a registered version
    client.create_model_version("noop-model", model.artifact_location, new, model_id=model.model_id)
    mlflow_runs.sync(uri, path)
    assert _query(path, "SELECT name, version FROM registered_versions") == [("noop-model", "1")]

    client.delete_run(runs["done"])  # noticed by the full sweep, as with every other path
    mlflow_runs.sync(uri, path)
    assert _query(path, "SELECT deleted FROM runs WHERE run_id = ?", [runs["done"]]) != [(True,)]
    monkeypatch.setenv("FORGETWATCH_FULL_SWEEP_HOURS", "0")
    mlflow_runs.sync(uri, path)
    assert _query(path, "SELECT deleted FROM runs WHERE run_id = ?", [runs["done"]]) == [(True,)]
    monkeypatch.delenv("FORGETWATCH_FULL_SWEEP_HOURS")

    assert mlflow_runs.sync(uri, path).skipped == 2  # settled: the no-op again
    assert _detail(path) == DETAIL


def test_a_no_op_sync_from_the_command_line_imports_nothing_heavy(
    store: tuple[str, MlflowClient, str], tmp_path: Path
) -> None:
    uri, _, _ = store
    path = tmp_path / "fw.duckdb"
    mlflow_runs.sync(uri, path)
    probe = (
        "import sys\nfrom forgetwatch.cli.main import main\n"
        f"code = main(['sync', '--tracking-uri', {uri!r}, '--db', {str(path)!r}])\n"
        "print(code, ' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    code, *modules = done.stdout.splitlines()[-1].split()
    assert code == "0", done.stderr
    assert set(modules) & set(HEAVY) == set()
    assert _detail(path) == DETAIL


def test_the_quick_check_stands_aside_for_servers_and_other_backend_stores(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert mlflow_store.local_store(uri, None) == tmp_path / "mlflow.db"
    assert mlflow_store.local_store(uri, uri) == tmp_path / "mlflow.db"
    assert mlflow_store.local_store(uri, f"sqlite:///{tmp_path / 'other.db'}") is None
    assert mlflow_store.local_store("http://127.0.0.1:5000", uri) is None
    assert mlflow_store.local_store("http://127.0.0.1:5000", None) is None


def test_the_analysis_check_notices_new_evals_and_changed_settings(
    store: tuple[str, MlflowClient, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, _, _ = store
    path = tmp_path / "fw.duckdb"
    mlflow_runs.sync(uri, path)
    lm_eval_results.ingest([LM_EVAL_OUTPUT], path)  # another writer, with its own refresh
    with db.connect(path, read_only=True) as con:
        assert analysis.up_to_date(con)
    assert "analysis: up to date" in mlflow_runs.sync(uri, path).summary()
    with db.connect(path) as con:  # as a refresh killed before it stored these models' tests
        con.execute("DELETE FROM task_tests")
        con.execute("DELETE FROM analysis_state")
    with db.connect(path, read_only=True) as con:
        assert not analysis.up_to_date(con)
    healed = mlflow_runs.sync(uri, path)  # nothing to read, but the analysis is redone
    assert _detail(path) == DETAIL and "models analysed" in healed.summary(), healed.summary()
    with db.connect(path, read_only=True) as con:
        assert analysis.up_to_date(con)
        stored = con.execute("SELECT count(*) FROM analysis_state").fetchone()
    assert stored == (len(_query(path, "SELECT DISTINCT model_id FROM evals")),)

    monkeypatch.setenv("FORGETWATCH_BOOTSTRAP_RESAMPLES", "321")  # what the tests depend on
    with db.connect(path, read_only=True) as con:
        assert not analysis.up_to_date(con)
    assert "models analysed" in mlflow_runs.sync(uri, path).summary()
    with db.connect(path, read_only=True) as con:
        assert analysis.up_to_date(con)

    # An upgrade that changes what the stored tests mean redoes them with no new data.
    monkeypatch.setattr(db, "ANALYSIS_VERSION", db.ANALYSIS_VERSION + "-next")
    with db.connect(path, read_only=True) as con:
        assert not analysis.up_to_date(con)


def test_a_refresh_that_finds_work_records_the_marker_only_once_nothing_is_stale(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fw.duckdb"
    lm_eval_results.ingest([LM_EVAL_OUTPUT], path)  # its own refresh runs at the end
    with db.connect(path, read_only=True) as con:
        assert analysis.up_to_date(con)
        marker = con.execute(
            "SELECT value FROM schema_info WHERE key = ?", [analysis.MARKER_KEY]
        ).fetchone()
    assert marker is not None and len(marker[0]) == 32
    # A full redo rewrites every analysis row, and records the marker again once done.
    redo = analysis.refresh(path, everything=True)
    assert redo.analysed > 0
    with db.connect(path, read_only=True) as con:
        assert analysis.up_to_date(con)
        assert (
            con.execute(
                "SELECT value FROM schema_info WHERE key = ?", [analysis.MARKER_KEY]
            ).fetchone()
            != marker
        )
