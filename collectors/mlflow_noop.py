"""A re-sync with nothing to read, told apart without MLflow's client.

A ``forgetwatch sync`` run from cron or a training script's epilogue usually finds
nothing new. For a ``sqlite:///`` tracking URI the sync reads the store's tables
directly anyway (``mlflow_store``), so it can also tell that nothing changed: every
completed sync records ``mlflow_store.store_digest`` as it was before the sync read
anything (``Watermarks.store_digest``). When the store still has that digest, an
incremental sync would read the very rows it wrote last time (runs, params, tags,
latest metric points, experiments, LoggedModels, registered versions), so this
module only records the new sync time and checks that the stored analysis is
current, without importing MLflow or pandas.

The check stands aside (the full sync runs) when anything could differ: another
digest, a full sweep due (deleted runs are noticed there), runs a killed sync
wrote but never finished, a database from before digests, or an http server
(which must be asked through its API: it filters what each user may read).
"""

from __future__ import annotations

import os

import duckdb

from forgetwatch import analysis, db, settings
from forgetwatch.collectors import mlflow_store
from forgetwatch.collectors import mlflow_windows as windows
from forgetwatch.collectors.report import Progress, SyncReport, no_progress

DETAIL = "incremental: 0 runs read (store unchanged since the last sync)"


def store_digest(uri: str, backend_store_uri: str | None) -> str | None:
    """The digest of the local store a sync of ``uri`` reads everything from, else None."""
    path = mlflow_store.local_store(uri, backend_store_uri)
    if path is None:
        return None
    with mlflow_store.connect(path) as con:
        return mlflow_store.store_digest(con)


def _unchanged_runs(con: duckdb.DuckDBPyConnection, uri: str, wanted: list[str]) -> int:
    """Stored active runs of these experiments: what the report counts as unchanged."""
    row = con.execute(
        "SELECT count(*) FROM runs WHERE tracking_uri = ? AND NOT coalesce(deleted, false) "
        "AND list_contains(?, experiment_id)",
        [uri, wanted],
    ).fetchone()
    return int(row[0]) if row else 0


def _record_if_unchanged(
    con: duckdb.DuckDBPyConnection, uri: str, source: str, digest: str, wanted: list[str]
) -> int | None:
    """On a read-write connection: when nothing needs reading, save the new sync time and
    return the unchanged runs; None (nothing written) when the full sync must run."""
    marks = windows.load(con, source)
    now = windows.utcnow()
    if marks.store_digest != digest or windows.needs_full_sweep(marks, now):
        return None
    if windows.pending_run_ids(con, uri, marks):
        return None
    with db.transaction(con):
        marks.synced_at = now
        windows.save(con, source, marks, DETAIL)
    return _unchanged_runs(con, uri, wanted)


def _is_file(path: os.PathLike[str]) -> bool:
    """Whether a database file is there; an unusable name is left for ``db`` to explain."""
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False


def nothing_to_read(
    uri: str,
    db_path: str | os.PathLike[str] | None,
    experiments: list[str] | None,
    backend_store_uri: str | None,
    report: SyncReport,
    progress: Progress = no_progress,
) -> bool:
    """True when the sync of ``uri`` had nothing to read and is done (``report`` filled in).

    The database is checked and written under one read-write open, so no other sync
    can complete in between and have its watermarks overwritten by older ones.
    """
    path = mlflow_store.local_store(uri, backend_store_uri)
    if path is None or not _is_file(settings.db_path(db_path)):
        return False
    with mlflow_store.connect(path) as con:
        wanted = mlflow_store.active_experiments(con, experiments)
        digest = mlflow_store.store_digest(con)
    source = windows.source_key(uri, list(wanted) if experiments else None)
    with db.connect(db_path) as con:  # a write-open: it also brings an older schema up to date
        unchanged = _record_if_unchanged(con, uri, source, digest, list(wanted))
        current = unchanged is not None and analysis.up_to_date(con)
    if unchanged is None:
        return False
    report.skipped = unchanged
    if current:
        report.notes.append("analysis: up to date (nothing changed since the last refresh)")
    else:  # its inputs changed through another writer, or the settings did
        report.notes.append(
            analysis.refresh(db_path, progress=analysis.labelled(progress)).summary()
        )
    return True
