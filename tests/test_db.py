"""The one module that opens DuckDB: schema, missing files, and waiting out other holders."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from forgetwatch import db
from forgetwatch.errors import DatabaseBusyError, DatabaseMissingError

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_in_other_process(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_write_open_creates_every_table(tmp_path: Path) -> None:
    with db.connect(tmp_path / "fw.duckdb") as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {"runs", "run_metrics", "models", "evals", "scores", "samples", "jobs"} <= tables


def test_a_version_1_file_upgrades_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    """Users' existing databases gain the new columns and tables; no stored row is lost."""
    path = tmp_path / "v1.duckdb"
    old = duckdb.connect(str(path))
    old.execute((Path(__file__).parent / "fixtures" / "schema_v1.sql").read_text())
    old.execute("INSERT INTO runs (run_id, run_name) VALUES ('r1', 'kept')")
    old.execute("INSERT INTO evals (eval_id, model_id) VALUES ('e1', 'm1')")
    old.close()

    with db.connect(path) as con:
        assert con.execute("SELECT run_name, deleted FROM runs").fetchall() == [("kept", False)]
        assert con.execute("SELECT eval_id, run_id FROM evals").fetchall() == [("e1", None)]
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        version = con.execute(
            "SELECT value FROM schema_info WHERE key = 'schema_version'"
        ).fetchone()
    assert {"logged_models", "registered_versions", "run_metric_latest"} <= tables
    assert version == (db.SCHEMA_VERSION,)


def test_read_only_open_of_a_missing_file_says_how_to_get_data(tmp_path: Path) -> None:
    missing = tmp_path / "no.duckdb"
    with pytest.raises(DatabaseMissingError) as err, db.connect(missing, read_only=True):
        pass
    assert "forgetwatch demo" in err.value.next_step


def test_waits_for_another_process_to_release_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    with db.connect(path):
        pass
    holder = _hold_in_other_process(path, 1.5)
    started = time.monotonic()
    with db.connect(path, read_only=True, timeout=20) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
    assert time.monotonic() - started >= 0.5
    holder.wait()


def test_gives_up_with_a_clear_error_when_the_holder_stays(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    with db.connect(path):
        pass
    holder = _hold_in_other_process(path, 10)
    try:
        with pytest.raises(DatabaseBusyError) as err, db.connect(path, timeout=0.5):
            pass
        assert "FORGETWATCH_LOCK_TIMEOUT" in err.value.next_step
    finally:
        holder.kill()
        holder.wait()


def _render_read_only_meanwhile(path: Path) -> threading.Thread:
    """A page render in this process holding ``path`` read-only for 0.8 s, already begun."""

    def render() -> None:
        with db.connect(path, read_only=True):
            time.sleep(0.8)

    reader = threading.Thread(target=render)
    reader.start()
    time.sleep(0.2)
    return reader


def test_a_write_waits_for_a_read_only_render_in_the_same_process(tmp_path: Path) -> None:
    """A dashboard button writing while another session renders read-only."""
    path = tmp_path / "fw.duckdb"
    with db.connect(path):
        pass

    reader = _render_read_only_meanwhile(path)
    with db.connect(path, timeout=10) as con:
        con.execute("INSERT INTO sync_state (source, synced_at, detail) VALUES ('t', now(), 'ok')")
    reader.join()
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT detail FROM sync_state").fetchall() == [("ok",)]


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    with db.connect(path) as con:
        with pytest.raises(RuntimeError), db.transaction(con):
            con.execute("INSERT INTO sync_state (source) VALUES ('half')")
            raise RuntimeError("crash mid-batch")
        assert con.execute("SELECT count(*) FROM sync_state").fetchall() == [(0,)]


def _staging_with_rows() -> duckdb.DuckDBPyConnection:
    staging = duckdb.connect(":memory:")
    staging.execute("CREATE TABLE staged AS SELECT 'src' || i AS source FROM range(3) t(i)")
    return staging


def test_attached_copies_staged_rows_into_the_file_and_detaches(tmp_path: Path) -> None:
    """Collectors copy a staged batch by SQL; unqualified names mean the database file."""
    path = tmp_path / "fw.duckdb"
    staging = _staging_with_rows()
    with db.attached(staging, path) as con, db.transaction(con):
        con.execute("INSERT INTO sync_state (source) SELECT source FROM memory.main.staged")
    # Detached again: the staging database is the default once more, the file is free.
    assert staging.execute("SELECT current_database()").fetchone() == ("memory",)
    assert staging.execute("SELECT count(*) FROM staged").fetchone() == (3,)
    with db.connect(path, read_only=True) as con:
        rows = con.execute("SELECT source FROM sync_state ORDER BY 1").fetchall()
    assert rows == [("src0",), ("src1",), ("src2",)]


def test_attached_waits_for_a_read_only_render_in_the_same_process(tmp_path: Path) -> None:
    """ATTACH reports a same-process holder as a file-handle conflict; it is waited out."""
    path = tmp_path / "fw.duckdb"
    with db.connect(path):
        pass

    reader = _render_read_only_meanwhile(path)
    staging = _staging_with_rows()
    with db.attached(staging, path, timeout=10) as con:
        con.execute("INSERT INTO sync_state (source) SELECT source FROM memory.main.staged")
    reader.join()
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sync_state").fetchone() == (3,)


def test_attached_gives_up_with_a_clear_error_when_the_holder_stays(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    with db.connect(path):
        pass
    holder = _hold_in_other_process(path, 10)
    staging = _staging_with_rows()
    try:
        with pytest.raises(DatabaseBusyError) as err, db.attached(staging, path, timeout=0.5):
            pass
        assert "FORGETWATCH_LOCK_TIMEOUT" in err.value.next_step
    finally:
        holder.kill()
        holder.wait()
    assert staging.execute("SELECT count(*) FROM staged").fetchone() == (3,)  # still usable
