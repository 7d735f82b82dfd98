"""``forgetwatch serve``: the dashboard, bound to loopback unless asked otherwise."""

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


def serve(db_file: Path, host: str, port: int, theme: str = "light") -> int:
    """Run the Streamlit dashboard on ``host:port`` reading ``db_file``."""
    app = resources.files("forgetwatch.dashboard").joinpath("app.py")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--theme.base", theme,
    ]  # fmt: skip
    env = {**os.environ, settings.SETTINGS["db"].env: str(Path(db_file).resolve())}
    print(f"forgetwatch dashboard: http://{host}:{port}  (database {db_file})", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_host(args: argparse.Namespace) -> None:
    """The Evals page can run code; binding beyond loopback must be a deliberate choice."""
    if args.host not in LOOPBACK and not args.allow_remote:
        raise BadInputError(
            f"Refusing to serve on {args.host}: the dashboard can start eval jobs",
            "Serve on 127.0.0.1 behind an authenticating proxy, or pass --allow-remote.",
            where="--host",
        )


def cmd_serve(args: argparse.Namespace) -> int:
    check_host(args)
    return serve(settings.db_path(args.db), args.host, args.port, args.theme)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    parser.add_argument("--theme", choices=["light", "dark"], default="light", help="colour theme")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --host other than loopback"
    )


def add_command(sub: Any) -> None:
    """Register this command on the top-level subparsers of ``forgetwatch``."""
    srv = sub.add_parser("serve", help=HELP["serve"])
    add_db_option(srv)
    add_serve_options(srv)
    srv.set_defaults(func=cmd_serve)
