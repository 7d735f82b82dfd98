"""Syncing from a basic-auth MLflow server: good, missing and wrong credentials, no permission.

The server is the real ``mlflow server --app-name basic-auth`` on 127.0.0.1 with
its user store in a temp sqlite file, started in its own process group and
stopped with killpg. Every failure must name what happened and the environment
variables to set, and must leave the database as it was.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
)
from mlflow.server.auth.client import AuthServiceClient

from forgetwatch import cli, db
from forgetwatch.collectors import mlflow_access, mlflow_runs
from forgetwatch.errors import SourceUnavailableError
from tests.procs import Server, free_port, start_server

ADMIN, ADMIN_PASSWORD = "admin", "Fw-admin-pass-41c9"  # the ini's bootstrap admin
VIEWER, VIEWER_PASSWORD = "viewer", "Fw-viewer-pass-77ab"
EXPERIMENT = "auth-shared"


@dataclass
class AuthServer:
    server: Server
    run_id: str

    @property
    def url(self) -> str:
        return self.server.url


def _write_ini(root: Path) -> Path:
    """Basic-auth config: users in a temp sqlite file; users see nothing unless granted."""
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        encoding="utf-8",
    )
    return ini


def _login(monkeypatch: pytest.MonkeyPatch, user: str | None, password: str | None) -> None:
    for var, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = start_server(
        cmd,
        url=f"http://127.0.0.1:{port}",
        health_path="/health",
        log=root / "server.log",
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(_write_ini(root)),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "forgetwatch-test-secret",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        timeout=120,
    )
    try:
        with pytest.MonkeyPatch.context() as mp:
            _login(mp, ADMIN, ADMIN_PASSWORD)
            AuthServiceClient(server.url).create_user(VIEWER, VIEWER_PASSWORD)
            mlflow.set_tracking_uri(server.url)
            mlflow.set_experiment(EXPERIMENT)
            with mlflow.start_run(run_name="secured") as run:
                mlflow.log_param("base_model", "gpt2")
                for step in range(3):
                    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        yield AuthServer(server=server, run_id=run.info.run_id)
    finally:
        server.stop()


def _run_ids(path: Path) -> list[str]:
    with db.connect(path, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]


@pytest.mark.slow
def test_good_credentials_sync(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(monkeypatch, ADMIN, ADMIN_PASSWORD)
    report = mlflow_runs.sync(auth_server.url, tmp_path / "fw.duckdb", experiments=[EXPERIMENT])
    assert report.ok, report.summary()
    assert _run_ids(tmp_path / "fw.duckdb") == [auth_server.run_id]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("user", "password", "says"),
    [
        (None, None, "no credentials are set"),
        (ADMIN, "not-the-password", f"refused the credentials of user '{ADMIN}'"),
    ],
    ids=["missing", "wrong-password"],
)
def test_bad_credentials_name_the_variables_and_write_nothing(
    auth_server: AuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    user: str | None,
    password: str | None,
    says: str,
) -> None:
    path = tmp_path / "fw.duckdb"
    _login(monkeypatch, ADMIN, ADMIN_PASSWORD)
    mlflow_runs.sync(auth_server.url, path, experiments=[EXPERIMENT])
    with db.connect(path) as con:  # data a user already collected and is browsing
        con.execute("UPDATE runs SET run_name = 'browsed'")
    _login(monkeypatch, user, password)
    with pytest.raises(SourceUnavailableError) as caught:
        mlflow_runs.sync(auth_server.url, path, experiments=[EXPERIMENT])
    message = caught.value.message
    assert "401" in message and says in message
    assert "MLFLOW_TRACKING_USERNAME" in message and auth_server.url in message
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT run_name FROM runs").fetchall() == [("browsed",)]


@pytest.mark.slow
def test_cli_exits_2_with_the_credentials_message(
    auth_server: AuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _login(monkeypatch, None, None)
    path = tmp_path / "fw.duckdb"
    code = cli.main(["sync", "--tracking-uri", auth_server.url, "--db", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "401" in err and "MLFLOW_TRACKING_USERNAME" in err
    assert not path.exists()  # refused before anything was written


@pytest.mark.slow
def test_user_without_permission_gets_a_403_message(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(monkeypatch, VIEWER, VIEWER_PASSWORD)
    with pytest.raises(SourceUnavailableError) as caught:
        mlflow_runs.sync(auth_server.url, tmp_path / "fw.duckdb", experiments=[EXPERIMENT])
    message = caught.value.message
    assert "403" in message and f"'{VIEWER}' has no permission" in message
    assert f"read experiment '{EXPERIMENT}'" in message
    assert "MLFLOW_TRACKING_USERNAME" in message


def test_unreachable_server_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SourceUnavailableError, match="unreachable"):
        mlflow_runs.sync(url, tmp_path / "fw.duckdb")
    assert not (tmp_path / "fw.duckdb").exists()


def test_client_limits_leave_the_users_mlflow_settings_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in (mlflow_access.RETRIES_ENV, mlflow_access.BACKOFF_ENV, mlflow_access.TIMEOUT_ENV):
        monkeypatch.delenv(var, raising=False)
    ours = mlflow_access.client_limits_env()
    assert ours[mlflow_access.RETRIES_ENV] == "1"  # not MLflow's 7
    assert ours[mlflow_access.TIMEOUT_ENV] == "30"  # not MLflow's 120
    monkeypatch.setenv(mlflow_access.TIMEOUT_ENV, "77")
    assert mlflow_access.TIMEOUT_ENV not in mlflow_access.client_limits_env()
    with mlflow_access.client_limits():
        from mlflow.environment_variables import (
            MLFLOW_HTTP_REQUEST_MAX_RETRIES,
            MLFLOW_HTTP_REQUEST_TIMEOUT,
        )

        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 77
        assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 1


@pytest.mark.parametrize(
    ("user", "error_code", "says"),
    [
        (None, UNAUTHENTICATED, "no credentials are set"),
        (ADMIN, UNAUTHENTICATED, f"refused the credentials of user '{ADMIN}'"),
        (ADMIN, PERMISSION_DENIED, f"user '{ADMIN}' has no permission to read runs"),
    ],
)
def test_client_errors_say_what_happened(
    monkeypatch: pytest.MonkeyPatch, user: str | None, error_code: int, says: str
) -> None:
    """The MLflow client's own exception (as it raises it for a 401/403), classified."""
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.mlflow/credentials to fall back on
    _login(monkeypatch, user, "pw" if user else None)
    exc = MlflowException("API request to endpoint failed", error_code=error_code)
    error = mlflow_access.wrap_mlflow_error("http://mlflow.test", exc, "read runs")
    assert says in error.message
    assert "MLFLOW_TRACKING_USERNAME" in error.message and "http://mlflow.test" in error.message


def test_other_client_errors_keep_mlflows_text() -> None:
    exc = MlflowException("Run 'xyz' not found", error_code=RESOURCE_DOES_NOT_EXIST)
    error = mlflow_access.wrap_mlflow_error("http://mlflow.test", exc)
    assert "Run 'xyz' not found" in error.title and "401" not in error.title
