"""Read an MLflow sqlite backend store directly, read-only, in bulk.

MLflow's client reads a sqlite store through SQLAlchemy, one ORM object per row,
and its search pages by 200 runs: a full sync of 10,000 runs spent most of its
time there. The store's tables are plain (``runs``, ``params``, ``tags``,
``latest_metrics``, ``metrics``, ``experiments``), so a few set-based queries
read the same data in a fraction of the time. DuckDB's sqlite scanner is an
extension that cannot be installed offline, so Python's ``sqlite3`` reads them.

The file is opened with ``mode=ro``: the tracking server (or a training process)
owns it. Temporary tables of wanted ids live in the connection's own temp store.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from forgetwatch import settings
from forgetwatch.collectors.mlflow_windows import Window
from forgetwatch.errors import BadInputError, SourceUnavailableError

OPTION = "--backend-store-uri"
_PREFIX = "sqlite:///"
_REQUIRED_TABLES = {"runs", "metrics", "params", "tags", "latest_metrics", "experiments"}


def sqlite_store_path(uri: str) -> Path | None:
    """The file behind a ``sqlite:///`` URI, or None for any other kind of URI."""
    return Path(uri[len(_PREFIX) :]) if uri.startswith(_PREFIX) else None


def backend_store(tracking_uri: str, backend_store_uri: str | None) -> str | None:
    """The sqlite:/// store to read directly: the one named (option, then environment),
    else the tracking URI itself when it is one; None means REST only."""
    store = backend_store_uri or settings.get("mlflow_backend_uri") or None
    if store is None and sqlite_store_path(tracking_uri) is not None:
        store = tracking_uri
    return store


def local_store(tracking_uri: str, backend_store_uri: str | None) -> Path | None:
    """The file when the tracking URI is a sqlite store that the sync reads everything
    from (no other backend store named): the store a no-op check may read directly."""
    if backend_store(tracking_uri, backend_store_uri) != tracking_uri:
        return None
    return sqlite_store_path(tracking_uri)


def store_file(store_uri: str) -> Path:
    """The backend store's file, checked to exist; a clear error naming the option otherwise."""
    path = sqlite_store_path(store_uri)
    if path is None:
        raise BadInputError(
            f"{store_uri} is not a sqlite:/// backend store",
            "Give the server's --backend-store-uri as sqlite:///path/to/mlflow.db, "
            "or leave FORGETWATCH_MLFLOW_BACKEND_URI unset to read runs over REST.",
            where=OPTION,
        )
    if not path.is_file():
        raise BadInputError(
            f"MLflow backend store {path} does not exist",
            "Pass the same sqlite:/// file the server was started with "
            "(mlflow server --backend-store-uri).",
            where=OPTION,
        )
    return path


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an MLflow store, refused when the file is something else."""
    try:
        # isolation_level=None: transactions are ours to open (one read snapshot per read).
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise BadInputError(
            f"MLflow backend store {path} cannot be read ({exc})",
            "Pass the sqlite:/// file the MLflow server was started with.",
            where=OPTION,
        ) from exc
    try:
        if not {"metrics", "runs"} <= tables:
            raise BadInputError(
                f"{path} is not an MLflow backend store (no metrics table)",
                "Pass the sqlite:/// file the MLflow server was started with.",
                where=OPTION,
            )
        yield con
    except sqlite3.Error as exc:  # locked past the timeout, or the file changed under us
        raise SourceUnavailableError(
            f"MLflow backend store {path} could not be read ({exc})",
            "Retry the sync; if the store stays locked, wait for the process writing it.",
            where=str(path),
        ) from exc
    finally:
        con.close()


def check_store(path: Path, where: str) -> None:
    """``path`` is an MLflow sqlite store (it has MLflow's runs and metrics tables), checked
    read-only before MLflow's client opens it: the client would turn any other sqlite
    file, an empty one included, into a new store."""
    detail = "no runs or metrics table"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        tables, detail = set(), str(exc)
    if not {"runs", "metrics"} <= tables:
        raise BadInputError(
            f"{where}: {path} is not an MLflow store ({detail})",
            "Point it at the sqlite file MLflow writes (the server's --backend-store-uri, "
            "or the file your training script logs to); sync never creates or converts one.",
            where=where,
        )


# What a sync reads from a store, directly or through MLflow's client: runs with their
# params, tags and latest points, experiments, LoggedModels and registered versions.
DIGEST_TABLES = (
    "experiments", "runs", "params", "tags", "latest_metrics",
    "logged_models", "logged_model_params", "logged_model_tags", "logged_model_metrics",
    "registered_models", "model_versions", "model_version_tags", "registered_model_aliases",
)  # fmt: skip


def store_digest(con: sqlite3.Connection) -> str:
    """A digest of everything a sync reads from this store, taken in one read snapshot.

    Equal digests mean an incremental sync would read what it read last time, so it has
    nothing to write. ``metrics`` itself is too large to hash: its row count and last
    rowid stand for it (a new point moves both; ``latest_metrics`` digests the rest).
    Tables an older MLflow lacks are left out.
    """
    digest = hashlib.sha256()
    own = not con.in_transaction
    if own:
        con.execute("BEGIN")
    try:
        present = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        for table in DIGEST_TABLES:
            if table in present:
                count, text = _table_text(con, table)
                digest.update(f"{table}:{count}:".encode())
                digest.update(text.encode("utf-8", "surrogatepass"))
        if "metrics" in present:
            points = con.execute("SELECT count(*), max(rowid) FROM metrics").fetchone()
            digest.update(f"metrics:{points!r}".encode())
    finally:
        if own:
            con.execute("COMMIT")
    return digest.hexdigest()


def _table_text(con: sqlite3.Connection, table: str) -> tuple[int, str]:
    """A table's rows as one string, built by sqlite itself: ``quote()`` tells NULL, numbers
    and text apart, and no Python object is made per row (10x faster than fetching)."""
    columns = [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]
    row_text = " || ',' || ".join(f'quote("{c}")' for c in columns)
    count, text = con.execute(
        f'SELECT count(*), group_concat({row_text}, char(10)) FROM "{table}"'
    ).fetchone()
    return int(count), text or ""


def active_experiments(con: sqlite3.Connection, names: list[str] | None) -> dict[str, str]:
    """Active experiments, id -> name (all, or those named), as the client lists them."""
    rows = con.execute(
        "SELECT CAST(experiment_id AS TEXT), name FROM experiments "
        "WHERE lifecycle_stage = 'active' ORDER BY experiment_id"
    ).fetchall()
    return {e: name for e, name in rows if not names or name in names}


def fill_ids(con: sqlite3.Connection, table: str, ids: Iterable[str]) -> None:
    """(Re)fill the temporary one-column table ``table`` (run_uuid) with ``ids``."""
    own = not con.in_transaction  # one transaction for the inserts, not one per row
    if own:
        con.execute("BEGIN")
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (run_uuid TEXT PRIMARY KEY)")
    con.execute(f"DELETE FROM {table}")
    con.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?)", ((i,) for i in ids))
    if own:
        con.execute("COMMIT")


def check_experiments(con: sqlite3.Connection, path: Path, wanted: dict[str, str]) -> None:
    """The experiments the tracking server listed are in this store, under the same names:
    otherwise it is some other server's store and its runs are not the ones asked for."""
    missing = _REQUIRED_TABLES - {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    if missing:
        raise BadInputError(
            f"{path} is not an MLflow backend store (no {', '.join(sorted(missing))} table)",
            "Pass the sqlite:/// file the MLflow server was started with.",
            where=OPTION,
        )
    names = dict(
        con.execute("SELECT CAST(experiment_id AS TEXT), name FROM experiments").fetchall()
    )
    wrong = sorted(e for e, name in wanted.items() if names.get(e) != name)
    if wrong:
        raise BadInputError(
            f"MLflow backend store {path} lacks {len(wrong)} of the {len(wanted)} "
            f"experiments the tracking server lists (e.g. '{wanted[wrong[0]]}')",
            "Pass the backend store of the server you sync from, or drop "
            "--backend-store-uri to read runs over REST.",
            where=OPTION,
        )


@dataclass
class StoredRun:
    """One run as the store holds it, shaped like what MLflow's search returns for it."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    artifact_uri: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest: list[tuple[str, int, int, float]] = field(default_factory=list)  # key, step, ts, value


RUN_NAME_TAG = "mlflow.runName"
# Active runs of the wanted experiments, in the order the REST path pages them.
_RUNS_SQL = """
SELECT run_uuid, CAST(experiment_id AS TEXT), name, status, start_time, end_time, artifact_uri
FROM runs
WHERE lifecycle_stage = 'active'
  AND CAST(experiment_id AS TEXT) IN (SELECT run_uuid FROM fw_experiments) {window}
ORDER BY start_time IS NULL, start_time, run_uuid
"""
_WINDOW_SQL = """
  AND (start_time >= :started OR end_time >= :ended OR status = 'RUNNING'
       OR run_uuid IN (SELECT run_uuid FROM fw_running))
"""


def read_runs(
    con: sqlite3.Connection, experiment_ids: list[str], window: Window | None
) -> list[StoredRun]:
    """Every active run of these experiments (or those in ``window``), with params, tags and
    latest metrics, read in one snapshot so the four tables agree with each other.

    The child tables are read run by run through MLflow's run_uuid indexes (CROSS JOIN
    keeps sqlite from scanning them whole); their order does not matter, since rows
    keep params and tags in key order.
    """
    fill_ids(con, "fw_experiments", experiment_ids)
    fill_ids(con, "fw_running", window.running_ids if window else ())
    # An ended_since of None matches nothing: end_time >= NULL is never true.
    bounds = {"started": window.started_since_ms, "ended": window.ended_since_ms} if window else {}
    con.execute("BEGIN")  # one read snapshot for all four tables
    try:
        rows = con.execute(
            _RUNS_SQL.format(window=_WINDOW_SQL if window else ""), bounds
        ).fetchall()
        runs = {r[0]: StoredRun(r[0], r[1], r[2] or "", r[3], r[4], r[5], r[6]) for r in rows}
        fill_ids(con, "fw_runs", runs)
        for run_id, key, value in con.execute(
            "SELECT p.run_uuid, p.key, p.value FROM fw_runs f CROSS JOIN params p USING (run_uuid)"
        ):
            runs[run_id].params[key] = value
        for run_id, key, value in con.execute(
            "SELECT t.run_uuid, t.key, coalesce(t.value, '') FROM fw_runs f "
            "CROSS JOIN tags t USING (run_uuid)"
        ):
            runs[run_id].tags[key] = value
        for run_id, key, step, ts, value in con.execute(
            "SELECT m.run_uuid, m.key, m.step, coalesce(m.timestamp, 0), "
            "CASE WHEN m.is_nan THEN NULL ELSE m.value END "
            "FROM fw_runs f CROSS JOIN latest_metrics m USING (run_uuid)"
        ):
            runs[run_id].latest.append((key, step, ts, float("nan") if value is None else value))
    finally:
        con.execute("COMMIT")
    for run in runs.values():
        # MLflow's own fallback (SqlRun.to_mlflow_entity): a run without a name takes its tag.
        run.run_name = run.run_name or run.tags.get(RUN_NAME_TAG) or ""
    return list(runs.values())


def point_counts(con: sqlite3.Connection, run_ids: Iterable[str]) -> dict[str, int]:
    """Metric points stored per run (MLflow's index on metrics.run_uuid makes this cheap)."""
    fill_ids(con, "fw_counted", run_ids)
    # One index range count per run; a join + GROUP BY scans the whole index (8x slower).
    return dict(
        con.execute(
            "SELECT c.run_uuid, (SELECT count(*) FROM metrics m WHERE m.run_uuid = c.run_uuid) "
            "FROM fw_counted c"
        ).fetchall()
    )
