"""Sources and databases that cannot be used: a titled error with a next step, exit 2.

Each case runs the command as a user does (a subprocess), so a traceback would show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def forgetwatch(*args: str, tracking_uri: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "forgetwatch", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def assert_refused(done: subprocess.CompletedProcess[str], *named: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Next step" in done.stderr, done.stderr
    for text in named:
        assert text in done.stderr, done.stderr


@pytest.mark.parametrize("uri", ["htp://localhost:5000", "sqllite:///x.db"])
def test_an_unknown_tracking_uri_scheme_names_the_setting_and_the_schemes(
    tmp_path: Path, uri: str
) -> None:
    done = forgetwatch("sync", "--db", str(tmp_path / "x.duckdb"), tracking_uri=uri)
    assert_refused(done, "MLFLOW_TRACKING_URI", uri, "http://", "sqlite://")
    assert not (tmp_path / "x.duckdb").exists()


def test_a_missing_sqlite_store_is_refused_and_never_created(tmp_path: Path) -> None:
    store = tmp_path / "missing" / "dir" / "mlflow.db"
    done = forgetwatch(
        "sync", "--db", str(tmp_path / "x.duckdb"), tracking_uri=f"sqlite:///{store}"
    )
    assert_refused(done, str(store), "does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An existing, empty MLflow sqlite store, so only the database path is at fault."""
    from mlflow.tracking import MlflowClient

    path = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return f"sqlite:///{path}"


def test_a_db_path_that_is_a_folder_says_to_name_a_file(tmp_path: Path, store: str) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    done = forgetwatch("sync", "--db", str(folder), tracking_uri=store)
    assert_refused(done, str(folder), "names a folder")


def test_a_db_in_a_folder_that_cannot_be_made_names_the_path(tmp_path: Path, store: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "sub" / "x.duckdb"
    done = forgetwatch("sync", "--db", str(path), tracking_uri=store)
    assert_refused(done, str(path), "cannot create its folder")
    assert blocker.read_text() == "not a folder"


def test_a_db_on_a_read_only_location_names_the_path(store: str) -> None:
    # /proc refuses new files even to root, unlike a chmod-ed folder.
    path = Path("/proc/forgetwatch-test.duckdb")
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    done = forgetwatch("sync", "--db", str(path), tracking_uri=store)
    assert_refused(done, str(path), "folder you can write to")


def test_a_file_that_is_not_duckdb_is_named_and_kept(tmp_path: Path, store: str) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("my notes")
    done = forgetwatch("analyse", "--db", str(path), tracking_uri=store)
    assert_refused(done, str(path))
    assert path.read_text() == "my notes"
