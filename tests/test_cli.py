"""The forgetwatch command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgetwatch import db
from forgetwatch.demo.build import World
from tests.procs import free_port, start_server

COMMANDS = ("demo", "sync", "ingest", "serve")


def forgetwatch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forgetwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    done = forgetwatch(command, "--help")
    assert done.returncode == 0
    assert "--db" in done.stdout


def test_top_level_help_lists_commands_and_settings() -> None:
    out = forgetwatch("--help").stdout
    assert all(command in out for command in COMMANDS)
    assert "FORGETWATCH_DB" in out and "MLFLOW_TRACKING_URI" in out


def test_ingest_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    done = forgetwatch("ingest", str(tmp_path / "nope"), "--db", str(tmp_path / "x.duckdb"))
    assert done.returncode == 2
    assert "nope does not exist" in done.stderr and "Next step" in done.stderr


def test_sync_without_a_tracking_uri_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "forgetwatch.cli", "sync", "--db", str(tmp_path / "x.duckdb")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "MLFLOW_TRACKING_URI" in done.stderr


@pytest.mark.slow
def test_ingest_reads_the_db_from_the_environment(quick_world: World, tmp_path: Path) -> None:
    path = tmp_path / "env.duckdb"
    done = forgetwatch("ingest", str(quick_world.eval_dir), env={"FORGETWATCH_DB": str(path)})
    assert done.returncode == 0, done.stderr
    assert "0 rejected" in done.stdout
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM evals").fetchone()[0] > 0


@pytest.mark.slow
def test_demo_builds_a_browsable_database_without_serving(tmp_path: Path) -> None:
    """The README's main job, end to end, on the quick profile; a second run reuses it."""
    workspace = tmp_path / "demo"
    first = forgetwatch(
        "demo", "--profile", "quick", "--no-serve", "--workspace", str(workspace), timeout=600
    )
    assert first.returncode == 0, first.stderr[-3000:]
    with db.connect(workspace / "forgetwatch.duckdb", read_only=True) as con:
        runs, evals = con.execute(
            "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM evals)"
        ).fetchone()
    assert runs >= 2 and evals >= 3
    # The demo is judged by its own budget: its small evals cannot vouch for 1-point limits.
    assert "Budget: " in first.stdout and "demo.yaml" in first.stdout
    again = forgetwatch(
        "demo", "--profile", "quick", "--no-serve", "--workspace", str(workspace), timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{evals} unchanged" in again.stdout


@pytest.mark.slow
def test_serve_answers_on_loopback(demo_db: Path, tmp_path: Path) -> None:
    port = free_port()
    server = start_server(
        [sys.executable, "-m", "forgetwatch.cli", "serve", "--db", str(demo_db),
         "--port", str(port), "--theme", "dark"],
        url=f"http://127.0.0.1:{port}",
        health_path="/_stcore/health",
        expect="ok",
        log=tmp_path / "serve.log",
    )  # fmt: skip
    try:
        assert f"http://127.0.0.1:{port}" in server.log_tail()
    finally:
        server.stop()


def test_serve_refuses_a_non_loopback_host_without_opt_in(tmp_path: Path) -> None:
    done = forgetwatch("serve", "--db", str(tmp_path / "x.duckdb"), "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "Refusing to serve on 0.0.0.0" in done.stderr and "--allow-remote" in done.stderr
