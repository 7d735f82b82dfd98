"""``forgetwatch sync``: pull MLflow runs, params, tags and metric histories."""

from __future__ import annotations

import argparse
from typing import Any

from forgetwatch.cli.common import add_db_option

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"sync": "pull MLflow runs, params, tags and metric histories"}


def cmd_sync(args: argparse.Namespace) -> int:
    from forgetwatch.collectors import mlflow_runs
    from forgetwatch.progress import bar

    with bar("sync runs") as progress:
        report = mlflow_runs.sync(
            args.tracking_uri,
            args.db,
            experiments=args.experiment or None,
            progress=progress,
            full=args.full,
            backend_store_uri=args.backend_store_uri,
        )
    print(report.summary())
    return 0 if report.ok else 1


def add_command(sub: Any) -> None:
    """Register this command on the top-level subparsers of ``forgetwatch``."""
    sync = sub.add_parser("sync", help=HELP["sync"])
    add_db_option(sync)
    sync.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    sync.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    sync.add_argument(
        "--full",
        action="store_true",
        help="read every active run (notices deleted and restored runs); "
        "otherwise only new, finished and running runs",
    )
    sync.add_argument(
        "--backend-store-uri",
        help="the server's sqlite:/// backend store, read read-only for fast metric histories "
        "(default: $FORGETWATCH_MLFLOW_BACKEND_URI)",
    )
    sync.set_defaults(func=cmd_sync)
