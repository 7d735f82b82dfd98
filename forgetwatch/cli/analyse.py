"""``forgetwatch analyse``: bring the stored paired tests up to date, or rebuild them.

Every sync and ingest already ends with this step; run it by hand after changing
``FORGETWATCH_STATS_SEED`` or ``FORGETWATCH_BOOTSTRAP_RESAMPLES`` (it notices and
redoes what they affect), or with ``--all`` to recompute everything.
"""

from __future__ import annotations

import argparse
from typing import Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import DatabaseMissingError

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"analyse": "compute the stored paired tests that new data needs (--all: every one)"}


def cmd_analyse(args: argparse.Namespace) -> int:
    from forgetwatch import analysis
    from forgetwatch.progress import bar

    if not settings.db_path(args.db).exists():
        raise DatabaseMissingError(
            "No forgetwatch database to analyse",
            "Run `forgetwatch sync` or `forgetwatch ingest DIR` first, or pass --db FILE.",
            where=str(settings.db_path(args.db)),
        )
    with bar("analyse models") as progress:
        report = analysis.refresh(args.db, everything=args.all, progress=progress)
    print(report.summary())
    return 0


def add_command(sub: Any) -> None:
    """Register this command on the top-level subparsers of ``forgetwatch``."""
    analyse = sub.add_parser("analyse", help=HELP["analyse"])
    add_db_option(analyse)
    analyse.add_argument(
        "--all",
        action="store_true",
        help="recompute every model's tests, not only those whose inputs changed",
    )
    analyse.set_defaults(func=cmd_analyse)
