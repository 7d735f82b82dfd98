"""Roles and auth modes: who is an operator, which proxies are trusted, and when
``forgetwatch serve`` refuses to start."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from forgetwatch import access
from forgetwatch.access import OPERATOR, VIEWER, PermissionDeniedError
from forgetwatch.cli.serve import check_host
from forgetwatch.errors import BadInputError, ForgetwatchError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def team(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETWATCH_OPERATORS", " Ada@Example.org ,bob")
    for name in ("FORGETWATCH_AUTH", "FORGETWATCH_TRUSTED_PROXIES", "FORGETWATCH_AUTH_HEADER"):
        monkeypatch.delenv(name, raising=False)


def test_operators_are_listed_case_insensitively_everyone_else_views() -> None:
    assert access.role_of("ada@example.org") == OPERATOR
    assert access.role_of("BOB") == OPERATOR
    assert access.role_of("eve@example.org") == VIEWER
    assert access.local_user().is_operator  # loopback without auth: as before


def test_the_proxy_header_counts_only_from_a_trusted_proxy(monkeypatch) -> None:
    headers = {"x-forwarded-email": "ada@example.org"}
    user = access.user_from_proxy(headers, None)  # None: Streamlit's loopback peer
    assert user is not None and user.is_operator and user.via == "proxy"
    assert access.user_from_proxy(headers, "203.0.113.9") is None  # straight to the server
    assert access.user_from_proxy({}, None) is None  # the proxy sent nobody
    monkeypatch.setenv("FORGETWATCH_TRUSTED_PROXIES", "10.0.0.0/8")
    assert access.user_from_proxy(headers, "10.1.2.3") is not None
    assert access.user_from_proxy(headers, None) is None  # loopback is no longer trusted
    monkeypatch.setenv("FORGETWATCH_AUTH_HEADER", "X-Auth-Request-User")
    assert access.user_from_proxy({"X-Auth-Request-User": "bob"}, "10.1.2.3").role == OPERATOR
    monkeypatch.setenv("FORGETWATCH_TRUSTED_PROXIES", "proxy.internal")
    with pytest.raises(ForgetwatchError, match="not an address or network"):
        access.trusted_proxy("10.1.2.3")


def test_only_operators_may_launch() -> None:
    viewer = access.user_from_oidc("eve@example.org", "Eve")
    with pytest.raises(PermissionDeniedError, match="eve@example.org is a viewer"):
        access.require_operator(viewer, "launch evals")
    with pytest.raises(PermissionDeniedError, match="Nobody is signed in"):
        access.require_operator(None, "launch evals")
    ada = access.user_from_oidc("ada@example.org", None)
    assert access.require_operator(ada, "launch evals") is ada


def serve_args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"host": "127.0.0.1", "allow_remote": False, "auth": None, **kw})


def test_serve_beyond_loopback_needs_an_auth_mode(tmp_path: Path, monkeypatch) -> None:
    assert check_host(serve_args()) == "none"
    with pytest.raises(BadInputError, match="without authentication"):
        check_host(serve_args(host="0.0.0.0", allow_remote=True))
    assert check_host(serve_args(host="0.0.0.0", allow_remote=True, auth="proxy")) == "proxy"
    monkeypatch.setenv("FORGETWATCH_AUTH", "proxy")
    assert check_host(serve_args(host="0.0.0.0", allow_remote=True)) == "proxy"
    monkeypatch.setenv("FORGETWATCH_AUTH", "kerberos")
    with pytest.raises(BadInputError, match="FORGETWATCH_AUTH='kerberos'"):
        check_host(serve_args())


def test_serve_refuses_oidc_without_secrets_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "forgetwatch", "serve", "--db", str(tmp_path / "x.duckdb"),
         "--host", "0.0.0.0", "--allow-remote", "--auth", "oidc"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "secrets.toml" in done.stderr and "secrets.toml.example" in done.stderr


def test_oidc_secrets_are_checked_for_every_key(tmp_path: Path) -> None:
    from forgetwatch.cli.serve import check_oidc_secrets

    (tmp_path / ".streamlit").mkdir()
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://x/oauth2callback"\n')
    with pytest.raises(BadInputError, match="lacks cookie_secret, client_id"):
        check_oidc_secrets(tmp_path)
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text()
    secrets.write_text(example)
    check_oidc_secrets(tmp_path)  # the shipped example is complete
