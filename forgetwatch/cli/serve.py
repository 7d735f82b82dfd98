"""``forgetwatch serve``: the dashboard, bound to loopback unless asked otherwise.

Serving beyond loopback (``--allow-remote``) needs an auth mode (``--auth`` or
``FORGETWATCH_AUTH``): ``proxy`` (a trusted reverse proxy's user header) or
``oidc`` (``st.login`` with ``.streamlit/secrets.toml``). Without one, or with one
that cannot work (no ``[auth]`` secrets, a bad proxy list), the server refuses to
start and says why. Roles are ``forgetwatch.access``'s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"serve": "serve the dashboard"}


def serve(
    db_file: Path,
    host: str,
    port: int,
    theme: str = "light",
    auth: str = "none",
    extra_env: dict[str, str] | None = None,
) -> int:
    """Run the Streamlit dashboard on ``host:port`` reading ``db_file``, with ``auth``
    (and ``extra_env``, e.g. the demo's budget, in the dashboard's environment)."""
    app = resources.files("forgetwatch.dashboard").joinpath("app.py")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--theme.base", theme,
    ]  # fmt: skip
    env = {
        **os.environ,
        settings.SETTINGS["db"].env: str(Path(db_file).resolve()),
        settings.SETTINGS["auth"].env: "" if auth == "none" else auth,
        # uvicorn would rewrite the peer address from X-Forwarded-For; the proxy
        # allow-list must see the real peer (the proxy), so trust no forwarded header.
        "FORWARDED_ALLOW_IPS": "",
        **(extra_env or {}),
    }
    print(f"forgetwatch dashboard: http://{host}:{port}  (database {db_file})", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_host(args: argparse.Namespace) -> str:
    """The Evals page can run code: beyond loopback, deliberately and with auth; the mode."""
    from forgetwatch import access

    mode = access.mode(getattr(args, "auth", None))
    if args.host not in LOOPBACK and not args.allow_remote:
        raise BadInputError(
            f"Refusing to serve on {args.host}: the dashboard can start eval jobs",
            "Serve on 127.0.0.1 behind an authenticating proxy, or pass --allow-remote "
            "with --auth proxy or --auth oidc.",
            where="--host",
        )
    if args.allow_remote and mode == "none":
        raise BadInputError(
            "Refusing to serve beyond loopback without authentication: anyone who reaches "
            "the page could launch eval jobs",
            "Pass --auth proxy (behind an authenticating reverse proxy such as oauth2-proxy) "
            "or --auth oidc (st.login, configured in .streamlit/secrets.toml), or set "
            "FORGETWATCH_AUTH; list operators in FORGETWATCH_OPERATORS.",
            where="--allow-remote",
        )
    if mode == "proxy":
        access.trusted_proxy(None)  # a bad FORGETWATCH_TRUSTED_PROXIES fails now, not per page
    if mode == "oidc":
        check_oidc(Path.cwd())
    return mode


SECRETS_EXAMPLE = ".streamlit/secrets.toml.example in the forgetwatch repository"
OIDC_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")


def check_oidc(cwd: Path) -> None:
    """``st.login`` needs an ``[auth]`` section and Authlib; say which is missing."""
    import importlib.util

    check_oidc_secrets(cwd)
    if importlib.util.find_spec("authlib") is None:
        raise BadInputError(
            "--auth oidc needs Authlib, which is not installed",
            "Install it with `pip install 'forgetwatch[oidc]'`.",
            where="--auth",
        )


def check_oidc_secrets(cwd: Path) -> None:
    """The ``[auth]`` section Streamlit reads: every key ``st.login`` needs is filled in."""
    import tomllib

    places = (cwd / ".streamlit/secrets.toml", Path.home() / ".streamlit/secrets.toml")
    found = [path for path in places if path.is_file()]
    if not found:
        raise BadInputError(
            "--auth oidc needs .streamlit/secrets.toml with an [auth] section",
            f"Copy {SECRETS_EXAMPLE} to .streamlit/secrets.toml where you run "
            "`forgetwatch serve`, and fill in your provider.",
            where=str(cwd / ".streamlit/secrets.toml"),
        )
    try:
        section = tomllib.loads(found[0].read_text()).get("auth", {})
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(
            f"{found[0]} is not valid TOML: {exc}", "Fix the file.", where=str(found[0])
        ) from exc
    missing = [key for key in OIDC_KEYS if not _oidc_value(section, key)]
    if missing:
        raise BadInputError(
            f"The [auth] section of {found[0]} lacks {', '.join(missing)}",
            f"Fill them in as in {SECRETS_EXAMPLE}.",
            where=str(found[0]),
        )


def _oidc_value(section: dict[str, Any], key: str) -> Any:
    """A key of ``[auth]``, or of its one provider table (``[auth.google]``) for client keys."""
    if section.get(key):
        return section[key]
    providers = [v for v in section.values() if isinstance(v, dict)]
    return next((p[key] for p in providers if p.get(key)), None)


def cmd_serve(args: argparse.Namespace) -> int:
    mode = check_host(args)
    return serve(settings.db_path(args.db), args.host, args.port, args.theme, mode)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    parser.add_argument("--theme", choices=["light", "dark"], default="light", help="colour theme")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (needs --auth proxy or oidc)",
    )
    parser.add_argument(
        "--auth",
        choices=["none", "proxy", "oidc"],
        help="how users sign in (default: FORGETWATCH_AUTH, else none: loopback only)",
    )


def add_command(sub: Any) -> None:
    """Register this command on the top-level subparsers of ``forgetwatch``."""
    srv = sub.add_parser("serve", help=HELP["serve"])
    add_db_option(srv)
    add_serve_options(srv)
    srv.set_defaults(func=cmd_serve)
