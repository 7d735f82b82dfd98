"""Collect MLflow runs (params, tags, metric histories, checkpoints) into DuckDB, incrementally.

Works against any tracking URI MLflow's client accepts: an ``http(s)://`` server
or a local store (``sqlite:///mlflow.db``). Which runs are read is decided by
``mlflow_windows`` (start/end-time windows with slack, running runs, periodic
full sweeps). Where they are read from is decided once per sync: a sqlite
backend store we can read (the tracking URI itself, or ``--backend-store-uri``
for a server) is read directly, runs and histories in bulk (``mlflow_store``);
otherwise MLflow's REST API serves them (``mlflow_batches``, ``mlflow_history``).
Both give the same rows.

Each batch of runs is planned and written in one transaction (``mlflow_write``):
only changed run rows and the histories of changed (run, key) pairs. Watermarks
are saved only once every batch and the structure collector are done, so a sync
killed at any point converges on re-sync to the rows of a clean sync.

Limitation: a point logged at an older step than a key's latest one does not
change MLflow's latest point, so it is only picked up when a later point is.

A re-sync of a ``sqlite:///`` tracking URI whose store has not changed since the
last completed sync is answered by ``mlflow_noop`` without importing MLflow,
pandas or the analysis code: their imports alone cost ~2 s, many times the work.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING

from forgetwatch import analysis, db
from forgetwatch.collectors import mlflow_noop
from forgetwatch.collectors import mlflow_windows as windows
from forgetwatch.collectors.mlflow_access import (
    check_reachable,
    client_limits,
    resolve_tracking_uri,
    select_experiments,
    wrap_mlflow_error,
)
from forgetwatch.collectors.mlflow_store import backend_store
from forgetwatch.collectors.report import Progress, SyncReport, no_progress
from forgetwatch.errors import SourceUnavailableError

if TYPE_CHECKING:  # the rest is imported when a sync has something to read
    import duckdb
    from mlflow.tracking import MlflowClient

    from forgetwatch.collectors.mlflow_batches import RunBatch, RunSource
    from forgetwatch.collectors.mlflow_history import HistorySource

__all__ = ["PAGE_SIZE", "infer_method", "pick_runs", "sync"]

PAGE_SIZE = 200  # runs per REST search page (one batch each)


def infer_method(params: dict[str, str], tags: dict[str, str]) -> str:
    """full / lora / qlora / unknown (``mlflow_batches.infer_method``, imported on use)."""
    from forgetwatch.collectors import mlflow_batches

    return mlflow_batches.infer_method(params, tags)


def pick_runs(client: MlflowClient, uri: str, backend_store_uri: str | None) -> RunSource:
    """The backend store when we can read it (as for histories), else REST search pages."""
    from forgetwatch.collectors.mlflow_batches import RestRuns, StoreRuns

    store = backend_store(uri, backend_store_uri)
    return StoreRuns(store) if store else RestRuns(client, PAGE_SIZE)


def _sync_batch(
    batch: RunBatch,
    db_path: str | os.PathLike[str] | None,
    histories: HistorySource,
    report: SyncReport,
) -> set[str]:
    """Plan, fetch and write one batch; the run ids it inserted or updated."""
    from forgetwatch.collectors.mlflow_write import Plan, write_batch

    # Planning only reads: a read-only open skips the schema check a write-open runs.
    with db.connect(db_path, read_only=True) as con:
        plan = Plan(con, batch.rows, batch.latest)
    if not plan.empty:
        # The database is closed while histories download: pages and jobs can read meanwhile.
        points = histories.fetch(plan.changed_pairs[["run_id", "key"]])
        with db.connect(db_path) as con:
            write_batch(con, batch.rows, batch.latest, plan, points, windows.utcnow())
    report.inserted += len(plan.new_ids)
    report.updated += len(plan.touched_ids - plan.new_ids)
    report.skipped += len(batch) - len(plan.touched_ids)
    return plan.touched_ids


def _mark_deleted(
    con: duckdb.DuckDBPyConnection,
    uri: str,
    scope: list[str] | None,
    seen: set[str],
    now: datetime,
) -> int:
    """Flag stored runs that a full sweep no longer finds active; rows are kept, never deleted."""
    import pandas as pd

    con.register("seen_ids", pd.DataFrame({"run_id": sorted(seen)}, dtype="object"))
    in_scope = "" if scope is None else "AND list_contains(?, experiment_id)"
    marked = con.execute(
        f"""UPDATE runs SET deleted = true, synced_at = ?
        WHERE tracking_uri = ? AND NOT coalesce(deleted, false) {in_scope}
          AND run_id NOT IN (SELECT run_id FROM seen_ids)""",
        [now, uri] if scope is None else [now, uri, scope],
    ).fetchall()[0][0]
    con.unregister("seen_ids")
    return int(marked)


def sync(
    tracking_uri: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    *,
    experiments: list[str] | None = None,
    progress: Progress = no_progress,
    full: bool = False,
    backend_store_uri: str | None = None,
) -> SyncReport:
    """Bring the database up to date with ``experiments`` (default: all active ones).

    Incremental unless ``full`` (or the first sync, or a full sweep is due):
    see ``mlflow_windows`` for which runs are read. A local store that has not
    changed since the last sync is not read at all (``mlflow_noop``).
    """
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    report = SyncReport(source=f"mlflow {uri}")
    quick = not full and mlflow_noop.nothing_to_read(
        uri, db_path, experiments, backend_store_uri, report, progress
    )
    if quick:
        return report
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with client_limits():
        try:
            client = MlflowClient(tracking_uri=uri)  # opens a database store right away
            _sync(client, uri, db_path, experiments, progress, full, backend_store_uri, report)
        except MlflowException as exc:
            raise wrap_mlflow_error(uri, exc, "read runs") from exc
        except ImportError as exc:  # postgresql:// and friends need a driver MLflow lacks here
            raise SourceUnavailableError(
                f"MLflow cannot open {uri}: {exc}",
                "Install the database driver this URI names (e.g. pip install psycopg2-binary "
                "or mysqlclient), or sync from the tracking server's http:// URL.",
                where=uri,
            ) from exc
    return report


def _sync(
    client: MlflowClient,
    uri: str,
    db_path: str | os.PathLike[str] | None,
    experiments: list[str] | None,
    progress: Progress,
    full: bool,
    backend_store_uri: str | None,
    report: SyncReport,
) -> None:
    from forgetwatch.collectors import mlflow_structure
    from forgetwatch.collectors.linking import relink_models
    from forgetwatch.collectors.mlflow_history import pick_source

    started = windows.utcnow()
    # Taken before anything is read: a change made while this sync reads is seen by the next.
    digest = mlflow_noop.store_digest(uri, backend_store_uri)
    wanted = select_experiments(client, uri, experiments)
    runs = pick_runs(client, uri, backend_store_uri)
    histories = pick_source(client, uri, backend_store_uri)
    source = windows.source_key(uri, list(wanted) if experiments else None)
    with db.connect(db_path) as con:
        marks = windows.load(con, source)
        sweep = full or windows.needs_full_sweep(marks, started)
        running = windows.known_running(con, uri, list(wanted))
        pending = set(windows.pending_run_ids(con, uri, marks))
    window = None if sweep else windows.incremental_window(marks, running)
    seen: set[str] = set()
    new_marks = marks
    changed: set[str] = set()
    artifact_uris: dict[str, str] = {}
    done = 0
    for batch in runs.batches(uri, wanted, window, seen):
        touched = _sync_batch(batch, db_path, histories, report)
        changed |= touched
        artifact_uris.update(batch.artifact_uris(touched))
        new_marks = new_marks.advanced(batch.start_ms, batch.end_ms)
        done += len(batch)
        progress(done, max(batch.total or len(seen), done, 1), "runs")
    if changed or pending:  # pending: a killed sync's batches, committed but never linked
        with db.connect(db_path) as con, db.transaction(con):
            relink_models(con)
    mlflow_structure.sync_structure(
        client,
        uri,
        db_path,
        experiment_ids=list(wanted),
        changed_run_ids=sorted(changed | pending),
        report=report,
        progress=progress,
        artifact_uris=artifact_uris,
    )
    with db.connect(db_path) as con, db.transaction(con):
        if sweep:
            scope = list(wanted) if experiments else None
            report.updated += _mark_deleted(con, uri, scope, seen, windows.utcnow())
            new_marks.last_full_sweep = started
        new_marks.synced_at = windows.utcnow()
        new_marks.store_digest = digest
        kind = "full sweep" if sweep else "incremental"
        read = f"{len(seen)} runs read ({runs.name} runs, {histories.name} histories)"
        windows.save(con, source, new_marks, f"{kind}: {read}")
    # Runs link evaluated models to their bases: redo the stored tests whose pairing changed.
    report.notes.append(analysis.refresh(db_path, progress=analysis.labelled(progress)).summary())
