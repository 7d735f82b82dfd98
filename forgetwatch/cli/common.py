"""What every command shares: the ``--db`` option."""

from __future__ import annotations

import argparse

from forgetwatch import settings


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """``--db FILE``, defaulting to $FORGETWATCH_DB, the same on every command."""
    parser.add_argument(
        "--db",
        default=None,
        help=f"DuckDB file (default: ${settings.SETTINGS['db'].env} or "
        f"{settings.SETTINGS['db'].default})",
    )
