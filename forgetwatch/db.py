"""The one module that opens the forgetwatch DuckDB file.

Locking discipline: DuckDB lets one process hold a file, and a read-write
holder blocks every other process (read-only opens included). So no process
keeps a connection open between units of work:

* writers (collectors, the demo) open read-write, write one batch in one
  transaction, and close;
* readers (dashboard pages, exports) open read-only for one page render and close;
* both sides retry a busy lock with backoff for ``FORGETWATCH_LOCK_TIMEOUT`` seconds.

Every read-write open bumps the database's **generation** (``schema_info``) when it
closes, so a reader can key caches on ``generation()``: while the number is
unchanged, nothing stored has changed and a cached answer is still the answer.

A batch is all-or-nothing: a crash mid-write rolls back to the last commit.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

from forgetwatch import settings
from forgetwatch.errors import BadInputError, DatabaseBusyError, DatabaseMissingError

T = TypeVar("T")

SCHEMA_VERSION = "2"
# The stored analysis's meaning (queries.pairing, analysis): bump when a test or its
# inputs change meaning, and every stored result is redone, the no-op check included.
# 2: lm-eval's group structure, lower-is-better tasks; 3: se_difference (for the MDE);
# 4: uninformative tasks left out of capability means, score CIs where the bootstrap
# collapses; 5: a capability whose every task is uninformative reads 0.0, tested.
ANALYSIS_VERSION = "5"
# Another process holds the file, or (ConnectionException) this process has it open
# with the other read-only/read-write mode, e.g. a page render while a button writes.
_LOCK_MARKERS = (
    "Could not set lock",
    "Conflicting lock",
    "database is locked",
    "different configuration",
    "Unique file handle conflict",  # ATTACH while this process has the file open
)
STAGING_ALIAS = "forgetwatch_db"
GENERATION_KEY = "generation"


def _schema_sql() -> str:
    return resources.files("forgetwatch").joinpath("schema.sql").read_text()


def _is_lock_error(exc: duckdb.Error) -> bool:
    return any(marker in str(exc) for marker in _LOCK_MARKERS)


def _retry_busy(open_file: Callable[[], T], path: Path, timeout: float) -> T:
    """Call ``open_file`` until the file's lock is free or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return open_file()
        except (
            duckdb.IOException,
            duckdb.ConnectionException,
            duckdb.ResourceInUseException,
        ) as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise DatabaseBusyError(
                        "The database is busy: another process holds its lock",
                        "Wait for the running sync/ingest to finish, or raise "
                        "FORGETWATCH_LOCK_TIMEOUT.",
                        where=str(path),
                    ) from exc
                raise
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)


def unusable_path(path: Path, reason: object) -> BadInputError:
    """The error for a database path DuckDB cannot open: a folder, unwritable, not DuckDB."""
    try:
        folder = path.is_dir()
    except (OSError, ValueError):  # a name too long or with a NUL byte: not a folder either
        folder = False
    if folder:
        step = f"--db names a folder; pass a file inside it, e.g. {path / 'forgetwatch.duckdb'}."
    else:
        step = (
            f"Pass --db (or set {settings.SETTINGS['db'].env}) to a DuckDB file in a folder "
            "you can write to."
        )
    return BadInputError(f"Cannot open the forgetwatch database: {reason}", step, where=str(path))


def _make_parent(path: Path) -> None:
    """Create the database's folder, as a first write-open does, or say why it cannot be."""
    if "\x00" in str(path):  # DuckDB would cut the name there and open another file
        raise unusable_path(path, "its name holds a NUL byte")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unusable_path(path, f"cannot create its folder ({exc.strerror})") from exc


@contextmanager
def _unusable_on_error(path: Path) -> Iterator[None]:
    """Turn DuckDB's failure to open ``path`` (not a lock: _retry_busy owns those) into
    the error that names the path and what to pass instead."""
    try:
        yield
    except (duckdb.IOException, duckdb.InvalidInputException, duckdb.SerializationException) as exc:
        if _is_lock_error(exc):
            raise
        raise unusable_path(path, exc) from exc


def _open(path: Path, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    with _unusable_on_error(path):
        return _retry_busy(lambda: duckdb.connect(str(path), read_only=read_only), path, timeout)


def apply_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables; safe to run on every open."""
    con.execute(_schema_sql())
    con.execute("INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    con.execute("INSERT INTO schema_info VALUES (?, '0') ON CONFLICT DO NOTHING", [GENERATION_KEY])


def bump_generation(con: duckdb.DuckDBPyConnection) -> None:
    """Mark that this connection may have changed stored data (readers drop their caches)."""
    con.execute(
        "UPDATE schema_info SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) WHERE key = ?",
        [GENERATION_KEY],
    )


def _close_generation(con: duckdb.DuckDBPyConnection) -> None:
    """End a write-open: drop a transaction left open (as closing would), then bump.

    Bumping in its own committed statement means earlier commits of this open are
    always followed by a new generation, even when the unit of work then failed.
    """
    with suppress(duckdb.Error):  # no transaction open: the usual case
        con.execute("ROLLBACK")
    with suppress(duckdb.Error):  # the file went read-only or away; nothing was written either
        bump_generation(con)


def read_generation(con: duckdb.DuckDBPyConnection) -> int:
    """The generation of the database ``con`` has open (0 before any write)."""
    try:
        row = con.execute(
            "SELECT value FROM schema_info WHERE key = ?", [GENERATION_KEY]
        ).fetchone()
    except duckdb.CatalogException:  # a file written before generations existed
        return 0
    return int(row[0]) if row else 0


def generation(path: str | os.PathLike[str] | None = None) -> int:
    """The database's generation number: it changes after every write, and only then.

    Pages key ``st.cache_data`` on it, so a rerun with nothing new re-runs no query.
    One short read-only open (tens of milliseconds); -1 when the file does not exist.
    """
    if not settings.db_path(path).exists():
        return -1
    with connect(path, read_only=True) as con:
        return read_generation(con)


@contextmanager
def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    timeout: float | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database for one unit of work, retrying while another process holds it.

    Read-write opens create the file and apply the schema. Read-only opens of a
    missing file raise ``DatabaseMissingError`` so pages can show an empty state.
    """
    db_file = settings.db_path(path)
    wait = settings.number("lock_timeout") if timeout is None else timeout
    if read_only and not db_file.exists():
        raise DatabaseMissingError(
            "No forgetwatch database yet",
            "Run `forgetwatch demo --no-serve`, `forgetwatch sync` or `forgetwatch ingest DIR`.",
            where=str(db_file),
        )
    if not read_only:
        _make_parent(db_file)
    con = _open(db_file, read_only, wait)
    try:
        if not read_only:
            apply_schema(con)
        yield con
    finally:
        try:
            if not read_only:
                _close_generation(con)
        finally:
            con.close()


@contextmanager
def attached(
    staging: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str] | None = None,
    *,
    timeout: float | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database read-write inside ``staging``, an in-memory DuckDB holding a batch.

    Collectors parse into tables of a private in-memory database with no lock held,
    then copy them in here with ``INSERT ... SELECT ... FROM memory.<table>``: rows
    move inside DuckDB, with no Arrow or Python round trip, so the lock is held only
    for the copy. While attached, unqualified table names mean the database file.
    """
    db_file = settings.db_path(path)
    wait = settings.number("lock_timeout") if timeout is None else timeout
    _make_parent(db_file)
    row = staging.execute("SELECT current_database()").fetchone()
    if row is None:  # current_database() always returns one row
        raise RuntimeError("DuckDB returned no current database")
    home = row[0]
    literal = "'" + str(db_file).replace("'", "''") + "'"
    with _unusable_on_error(db_file):
        _retry_busy(lambda: staging.execute(f"ATTACH {literal} AS {STAGING_ALIAS}"), db_file, wait)
    try:
        staging.execute(f"USE {STAGING_ALIAS}")
        apply_schema(staging)
        yield staging
    finally:
        _close_generation(staging)
        staging.execute(f"USE {home}")
        staging.execute(f"DETACH {STAGING_ALIAS}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One all-or-nothing batch: commit on success, roll back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
