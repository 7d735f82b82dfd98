"""The ``forgetwatch`` command line: every dashboard action, scriptable.

One module per command, each registering itself with ``add_command``: ``demo``
(build the embedded demo world and serve it), ``sync`` (MLflow runs), ``ingest``
(lm-eval output folders, once or ``--watch``), ``analyse`` (the stored paired
tests; every sync and ingest runs it), ``serve`` (the dashboard),
``eval``/``jobs``/``cancel`` (background eval jobs), ``export`` (the Compare
tables as files), ``flips`` (the Flips page as files), ``check`` (a model against
a forgetting budget, for CI) and ``breakeven`` (fine-tune vs k-shot prompting
cost). Every command names runs and models the same way (``queries.resolve``).
Errors print a title and a next step and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from forgetwatch import settings
from forgetwatch.cli import (
    analyse,
    breakeven,
    check,
    demo,
    eval,
    export,
    flips,
    ingest,
    serve,
    sync,
)
from forgetwatch.errors import ForgetwatchError

COMMANDS = (demo, sync, ingest, analyse, serve, eval, export, flips, check, breakeven)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgetwatch",
        description="What did this fine-tune gain, and what did it forget?",
        epilog=settings.help_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ForgetwatchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
