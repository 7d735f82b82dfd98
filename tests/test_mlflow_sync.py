"""Incremental MLflow sync against a real ``mlflow server`` (sqlite backend, over http).

The module starts its own server so tests know its backend store file (for the
store-reader path: runs and histories read straight from the sqlite tables). Every
test logs into its own experiment and syncs into its own DuckDB file.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forgetwatch import db
from forgetwatch.collectors import (
    mlflow_access,
    mlflow_artifacts,
    mlflow_batches,
    mlflow_history,
    mlflow_runs,
)
from forgetwatch.collectors.mlflow_store import StoredRun
from forgetwatch.errors import BadInputError
from tests.conftest import ROOT, start_mlflow
from tests.procs import Server

pytestmark = pytest.mark.slow
HOUR_MS = 3_600_000
LM_EVAL_OUTPUT = ROOT / "tests" / "fixtures" / "lm_eval" / "0.4.13" / "plain"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server of our own and its backend store URI."""
    root = tmp_path_factory.mktemp("mlflow-sync")
    srv = start_mlflow(root)
    yield srv, f"sqlite:///{root / 'mlflow.db'}"
    srv.stop()


@pytest.fixture
def client(server: tuple[Server, str]) -> MlflowClient:
    return MlflowClient(server[0].url)


def _experiment(client: MlflowClient) -> tuple[str, str]:
    name = f"sync-{time.time_ns()}"
    return client.create_experiment(name), name


def _run(
    client: MlflowClient, exp: str, name: str, *, steps: int = 5, finish: bool = True, **kw
) -> str:
    run_id = client.create_run(exp, run_name=name, **kw).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric("loss", 1.0 / (s + 1), now + s, s) for s in range(steps)]
    metrics.append(Metric("eval_loss", 0.5, now, steps - 1))
    client.log_batch(run_id, metrics=metrics)
    if finish:
        client.set_terminated(run_id)
    return run_id


def _query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _sweeps(path: Path) -> list[tuple]:
    return _query(path, "SELECT detail FROM sync_state")


def _snapshot(path: Path) -> dict[str, list]:
    """Every collected row, without the wall-clock columns (when a row was written)."""
    tables = {
        "runs": "SELECT * EXCLUDE (synced_at) FROM runs",
        "run_metrics": "SELECT * FROM run_metrics",
        "run_metric_latest": "SELECT * FROM run_metric_latest",
        "models": "SELECT * FROM models",
        "logged_models": "SELECT * FROM logged_models",
        "registered_versions": "SELECT * FROM registered_versions",
        "marks": "SELECT source, max_start_time, max_end_time FROM sync_state",
    }
    return {name: sorted(_query(path, sql), key=repr) for name, sql in tables.items()}


def test_incremental_sync_reads_new_finished_and_running_runs(
    server: tuple[Server, str], client: MlflowClient, tmp_path: Path
) -> None:
    url, path = server[0].url, tmp_path / "fw.duckdb"
    exp, name = _experiment(client)
    done = _run(client, exp, "done")
    live = _run(client, exp, "live", finish=False)
    first = mlflow_runs.sync(url, path, experiments=[name])
    assert (first.inserted, first.updated) == (2, 0)
    assert "full sweep" in _sweeps(path)[0][0]

    hours_ago = int(time.time() * 1000) - 3 * HOUR_MS
    client.log_metric(live, "loss", 0.01, step=99)
    client.set_terminated(live)  # known RUNNING: re-read whatever its times
    new = _run(client, exp, "new")  # start_time window
    late = _run(client, exp, "late", start_time=hours_ago)  # end_time window only
    still = _run(client, exp, "still", start_time=hours_ago, finish=False)  # status = RUNNING
    old = _run(client, exp, "old", start_time=hours_ago, finish=False)
    client.set_terminated(old, end_time=hours_ago + 1000)  # outside every window

    second = mlflow_runs.sync(url, path, experiments=[name])
    assert "incremental" in _sweeps(path)[0][0]
    rows = dict(_query(path, "SELECT run_id, status FROM runs"))
    assert rows == {
        done: "FINISHED",
        live: "FINISHED",
        new: "FINISHED",
        late: "FINISHED",
        still: "RUNNING",
    }
    assert (second.inserted, second.updated) == (3, 1)
    assert _query(path, "SELECT max(step) FROM run_metrics WHERE run_id = ?", [live]) == [(99,)]

    full = mlflow_runs.sync(url, path, experiments=[name], full=True)
    assert full.inserted == 1 and old in dict(_query(path, "SELECT run_id, 1 FROM runs"))


def test_only_changed_metric_keys_are_refetched(
    server: tuple[Server, str], client: MlflowClient, tmp_path: Path
) -> None:
    url, path = server[0].url, tmp_path / "fw.duckdb"
    exp, name = _experiment(client)
    run = _run(client, exp, "r", finish=False)
    mlflow_runs.sync(url, path, experiments=[name])
    # Mark every stored point: a refetched key comes back clean, an untouched one stays marked.
    with db.connect(path) as con:
        con.execute("UPDATE run_metrics SET value = -1")
    client.log_metric(run, "loss", 0.001, step=10)
    report = mlflow_runs.sync(url, path, experiments=[name])

    assert report.updated == 1
    values = _query(
        path, "SELECT key, count(*), min(value) FROM run_metrics GROUP BY key ORDER BY key"
    )
    assert values == [("eval_loss", 1, -1.0), ("loss", 6, 0.001)]
    assert _query(path, "SELECT step, value FROM run_metric_latest WHERE key = 'loss'") == [
        (10, 0.001)
    ]


def test_full_sweep_marks_deleted_and_restored_runs_and_keeps_rows(
    server: tuple[Server, str],
    client: MlflowClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, path = server[0].url, tmp_path / "fw.duckdb"
    exp, name = _experiment(client)
    keep, gone = _run(client, exp, "keep"), _run(client, exp, "gone")
    mlflow_runs.sync(url, path, experiments=[name])
    client.delete_run(gone)

    mlflow_runs.sync(url, path, experiments=[name])  # incremental: can't see deletions
    assert _query(path, "SELECT count(*) FROM runs WHERE deleted") == [(0,)]

    monkeypatch.setenv("FORGETWATCH_FULL_SWEEP_HOURS", "0")  # a sweep is due at once
    report = mlflow_runs.sync(url, path, experiments=[name])
    assert report.updated == 1
    flags = dict(_query(path, "SELECT run_id, deleted FROM runs"))
    assert flags == {keep: False, gone: True}
    assert _query(path, "SELECT count(*) FROM run_metrics WHERE run_id = ?", [gone]) == [(6,)]

    monkeypatch.delenv("FORGETWATCH_FULL_SWEEP_HOURS")
    client.restore_run(gone)
    mlflow_runs.sync(url, path, experiments=[name], full=True)
    assert dict(_query(path, "SELECT run_id, deleted FROM runs")) == {keep: False, gone: False}


def test_nested_runs_record_their_parent(
    server: tuple[Server, str], client: MlflowClient, tmp_path: Path
) -> None:
    url, path = server[0].url, tmp_path / "fw.duckdb"
    exp, name = _experiment(client)
    parent = _run(client, exp, "sweep")
    child = _run(client, exp, "trial-1", tags={"mlflow.parentRunId": parent})
    mlflow_runs.sync(url, path, experiments=[name])
    rows = _query(path, "SELECT run_id, parent_run_id, synced_at IS NOT NULL FROM runs")
    assert sorted(rows) == sorted([(parent, None, True), (child, parent, True)])


def test_runs_created_during_a_sync_are_neither_skipped_nor_duplicated(
    server: tuple[Server, str],
    client: MlflowClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, path = server[0].url, tmp_path / "fw.duckdb"
    exp, name = _experiment(client)
    before = [_run(client, exp, f"before-{i}") for i in range(12)]
    monkeypatch.setattr(mlflow_runs, "PAGE_SIZE", 2)  # many pages, so creation interleaves
    during: list[str] = []

    def create() -> None:
        other = MlflowClient(url)
        for i in range(12):
            during.append(_run(other, exp, f"during-{i}", steps=3))

    writer = threading.Thread(target=create)
    writer.start()
    first = mlflow_runs.sync(url, path, experiments=[name])
    writer.join()
    second = mlflow_runs.sync(url, path, experiments=[name])

    stored = [row[0] for row in _query(path, "SELECT run_id FROM runs")]
    assert sorted(stored) == sorted(before + during)
    assert first.inserted + second.inserted == len(before) + len(during)
    dupes = _query(
        path,
        "SELECT count(*) - count(DISTINCT (run_id, key, step)) FROM run_metrics",
    )
    assert dupes == [(0,)]
    points = _query(path, "SELECT count(*) FROM run_metrics")[0][0]
    assert points == len(before) * 6 + len(during) * 4


def test_backend_store_reader_gives_the_rows_rest_gives(
    server: tuple[Server, str], client: MlflowClient, tmp_path: Path
) -> None:
    url, store = server[0].url, server[1]
    exp, name = _experiment(client)
    a = _run(client, exp, "a", steps=40)
    client.log_metric(a, "grad_norm", float("nan"), step=3)
    client.log_metric(a, "grad_norm", float("inf"), step=4)
    _run(client, exp, "b", steps=7)
    rest, fast = tmp_path / "rest.duckdb", tmp_path / "store.duckdb"
    mlflow_runs.sync(url, rest, experiments=[name])
    mlflow_runs.sync(url, fast, experiments=[name], backend_store_uri=store)

    assert "rest" in _sweeps(rest)[0][0] and "store" in _sweeps(fast)[0][0]
    assert _snapshot(fast) == _snapshot(rest)
    assert _query(fast, "SELECT count(*) FROM run_metrics") == [(41 + 8 + 2,)]
    # A NaN point arrives as a missing value (pandas NaN is SQL NULL), the same on both paths.
    nan = _query(fast, "SELECT value FROM run_metrics WHERE key = 'grad_norm' AND step = 3")
    assert nan == [(None,)]


@pytest.mark.parametrize("kill_at", ["runs", "logged models"])
@pytest.mark.parametrize("read_from", ["rest", "store"])
def test_sync_killed_mid_way_converges_to_a_clean_sync(
    server: tuple[Server, str], client: MlflowClient, tmp_path: Path, kill_at: str, read_from: str
) -> None:
    """SIGKILL the syncing process after its first batch, or after all batches but before
    watermarks are saved; the next sync must leave exactly a clean sync's rows. Both
    sources write two runs a batch here (REST pages, store batches)."""
    url = server[0].url
    store = server[1] if read_from == "store" else ""
    exp, name = _experiment(client)
    for i in range(5):
        _run(client, exp, f"r{i}", finish=i != 2)
    clean, crashed = tmp_path / "clean.duckdb", tmp_path / "crashed.duckdb"
    child = (
        "import os, signal, sys\n"
        "from forgetwatch.collectors import mlflow_batches, mlflow_runs\n"
        "mlflow_runs.PAGE_SIZE = 2\n"
        "mlflow_batches.STORE_BATCH_RUNS = 2\n"
        "def progress(done, total, label):\n"
        f"    if label == {kill_at!r}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "mlflow_runs.sync(sys.argv[1], sys.argv[2], experiments=[sys.argv[3]], progress=progress,\n"
        "                 backend_store_uri=sys.argv[4] or None)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, url, str(crashed), name, store],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert _query(crashed, "SELECT count(*) FROM runs")[0][0] >= 2
    assert _query(crashed, "SELECT count(*) FROM sync_state") == [(0,)]

    mlflow_runs.sync(url, crashed, experiments=[name], backend_store_uri=store or None)
    mlflow_runs.sync(url, clean, experiments=[name], backend_store_uri=store or None)
    assert _snapshot(crashed) == _snapshot(clean)


def test_store_and_rest_paths_store_the_same_rows_through_changes(
    server: tuple[Server, str],
    client: MlflowClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same store synced over REST and read directly, first sync, incremental re-sync
    and full sweep: every collected table holds the same rows on both paths."""
    monkeypatch.setattr(mlflow_batches, "STORE_BATCH_RUNS", 2)  # several store batches
    url, store = server[0].url, server[1]
    exp, name = _experiment(client)
    out = tmp_path / "outputs"
    (out / "lora" / "checkpoint-5").mkdir(parents=True)
    sweep = _run(client, exp, "sweep")
    lora = _run(client, exp, "lora", tags={"mlflow.parentRunId": sweep, "team": "nlp"})
    trained = [Param("_name_or_path", "/models/base"), Param("output_dir", str(out / "lora"))]
    client.log_batch(lora, params=[*trained, Param("peft_config", "LoraConfig(r=8)")])
    full = _run(client, exp, "full")
    client.log_batch(full, params=[trained[0], Param("output_dir", str(out / "full"))])
    live = _run(client, exp, "live", finish=False)
    client.log_metric(live, "grad_norm", float("nan"), step=9)  # a NaN latest point
    client.create_run(exp, run_name="bare")  # no params, no metrics
    gone = _run(client, exp, "gone")
    model = client.create_logged_model(exp, name="checkpoint-5", source_run_id=lora)
    registered = f"reg-{time.time_ns()}"
    client.create_registered_model(registered)
    client.create_model_version(
        registered, f"models:/{model.model_id}", run_id=lora, model_id=model.model_id
    )
    rest, fast = tmp_path / "rest.duckdb", tmp_path / "store.duckdb"
    seen: list[tuple[int, int]] = []

    def sync_both(**kw: bool) -> None:
        mlflow_runs.sync(url, rest, experiments=[name], **kw)
        mlflow_runs.sync(
            url,
            fast,
            experiments=[name],
            backend_store_uri=store,
            progress=lambda done, total, label: (
                seen.append((done, total)) if label == "runs" else None
            ),
            **kw,
        )
        assert _snapshot(fast) == _snapshot(rest)

    sync_both()
    assert seen == [(2, 6), (4, 6), (6, 6)]  # batches of two, the total known
    assert "store runs, store histories" in _sweeps(fast)[0][0]
    assert _query(fast, "SELECT count(*) FROM runs") == [(6,)]
    assert _query(fast, "SELECT value FROM run_metric_latest WHERE key = 'grad_norm'") == [(None,)]
    assert _query(
        fast, "SELECT count(*) FROM registered_versions WHERE name = ?", [registered]
    ) == [(1,)]

    client.log_metric(live, "loss", 0.01, step=99)
    client.set_terminated(live)
    client.delete_run(gone)
    _run(client, exp, "later")
    sync_both()  # incremental: the finished run, its new point and the new run
    assert "incremental" in _sweeps(fast)[0][0]
    assert _query(fast, "SELECT status FROM runs WHERE run_id = ?", [live]) == [("FINISHED",)]
    sync_both(full=True)  # the sweep notices the deleted run on both paths
    assert _query(fast, "SELECT deleted FROM runs WHERE run_id = ?", [gone]) == [(True,)]


def test_a_backend_store_of_another_server_is_refused(
    server: tuple[Server, str], client: MlflowClient, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    MlflowClient(f"sqlite:///{other}").create_experiment("elsewhere")
    exp, name = _experiment(client)
    _run(client, exp, "r")
    path = tmp_path / "fw.duckdb"
    with pytest.raises(BadInputError, match="lacks 1 of the 1 experiments") as err:
        mlflow_runs.sync(
            server[0].url, path, experiments=[name], backend_store_uri=f"sqlite:///{other}"
        )
    assert err.value.where == "--backend-store-uri"
    assert _query(path, "SELECT count(*) FROM runs") == [(0,)]


def test_store_batches_hold_bounded_runs_and_points() -> None:
    runs = [StoredRun(f"r{i}", "1", f"r{i}", "FINISHED", i, None, None) for i in range(6)]
    counts = {"r0": 5, "r1": 5, "r2": 50, "r3": 1, "r4": 1, "r5": 1}
    parts = mlflow_batches.split_by_points(runs, counts, max_runs=2, max_points=10)
    assert [[r.run_id for r in part] for part in parts] == [
        ["r0", "r1"],
        ["r2"],  # one run over the point bound still goes, alone
        ["r3", "r4"],
        ["r5"],
    ]


def test_backend_store_must_be_an_existing_mlflow_store(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist") as err:
        mlflow_history.StoreHistories(f"sqlite:///{tmp_path / 'missing.db'}")
    assert err.value.where == "--backend-store-uri"
    with pytest.raises(BadInputError, match="not a sqlite"):
        mlflow_history.StoreHistories("postgresql://host/mlflow")

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE runs (run_uuid TEXT)")
        con.execute("CREATE TABLE metrics (run_uuid TEXT, key TEXT)")
    store = mlflow_history.StoreHistories(f"sqlite:///{other}")
    with pytest.raises(BadInputError, match="lacks 1 of the 1 runs"):
        store.fetch(pd.DataFrame({"run_id": ["abc"], "key": ["loss"]}))


def test_a_sqlite_tracking_uri_reads_histories_from_the_store_itself(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = MlflowClient(uri)
    exp, name = _experiment(local)
    run = _run(local, exp, "local", steps=12)
    path = tmp_path / "fw.duckdb"
    report = mlflow_runs.sync(uri, path, experiments=[name])
    assert report.inserted == 1 and "store" in _sweeps(path)[0][0]
    counts = _query(
        path, "SELECT key, count(*) FROM run_metrics WHERE run_id = ? GROUP BY 1", [run]
    )
    assert sorted(counts) == [("eval_loss", 1), ("loss", 12)]


def test_local_artifact_folders_are_listed_as_the_client_lists_them(tmp_path: Path) -> None:
    local = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = local.create_experiment("art", artifact_location=str(tmp_path / "art"))
    run = local.create_run(exp).info
    local.log_artifacts(run.run_id, str(LM_EVAL_OUTPUT), artifact_path="lm_eval/deep")
    local.log_text(run.run_id, "notes", "notes.txt")
    root = mlflow_artifacts.local_root(run.artifact_uri)
    assert root is not None
    assert mlflow_artifacts.local_root(root.as_uri()) == root
    assert mlflow_artifacts.local_root("mlflow-artifacts:/1/abc/artifacts") is None
    for path in (None, "lm_eval", "lm_eval/deep", "missing"):
        on_disk = mlflow_artifacts._list_local(root, run.run_id, path)
        listed = mlflow_artifacts._list_dir(local, run.run_id, path)
        shape = [(f.path, f.is_dir, f.file_size) for f in on_disk.files]
        assert shape == [(f.path, f.is_dir, f.file_size) for f in listed.files], path
        assert on_disk.subdirs == listed.subdirs and on_disk.error is None


def test_a_sqlite_tracking_uri_ingests_artifact_evals_from_local_folders(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = MlflowClient(uri)
    exp = local.create_experiment("art-sync", artifact_location=str(tmp_path / "art"))
    run = local.create_run(exp).info.run_id
    local.log_artifacts(run, str(LM_EVAL_OUTPUT), artifact_path="lm_eval")
    local.set_terminated(run)
    path = tmp_path / "fw.duckdb"
    report = mlflow_runs.sync(uri, path, experiments=["art-sync"])
    assert report.ok, report.summary()
    assert _query(path, "SELECT run_id, source_kind FROM evals") == [(run, "artifact")]


class _RefusingRepository:
    """The HTTP edge, stood in for: an http artifact repository whose server answers
    ``status`` (requests raises, as MLflow's repository does), no server needed."""

    def __init__(self, status: int) -> None:
        self.status = status

    def list_artifacts(self, path: str | None = None) -> list:
        response = requests.Response()
        response.status_code = self.status
        raise requests.HTTPError(f"{self.status} Client Error", response=response)


def test_a_refused_artifact_listing_stops_the_sync_and_a_missing_one_is_reported() -> None:
    client = MlflowClient("sqlite:///:memory:")
    with pytest.raises(MlflowException) as err:
        mlflow_artifacts._list_dir(client, "r1", None, _RefusingRepository(403))
    assert mlflow_access.is_access_error(err.value)
    missing = mlflow_artifacts._list_dir(client, "r1", "ev", _RefusingRepository(404))
    assert missing.files == [] and "run r1: artifacts ev unreadable" in (missing.error or "")
