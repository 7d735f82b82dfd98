"""The ``forgetwatch`` command line: every dashboard action, scriptable.

One module per command, each registering itself with ``add_command``: ``demo``
(build the embedded demo world and serve it), ``sync`` (MLflow runs), ``ingest``
(lm-eval output folders, once or ``--watch``), ``pair`` (a model's base, by hand),
``suite`` (the suite's tasks, the stored ones it misses, a starter file),
``analyse`` (the stored paired tests; every sync and ingest runs it), ``serve``
(the dashboard), ``eval``/``jobs``/``cancel`` (background eval jobs), ``export``
(the Compare tables as files), ``flips`` (the Flips page as files), ``check`` (a
model against a forgetting budget, for CI) and ``breakeven`` (fine-tune vs k-shot
prompting cost). Every command names runs and models the same way (``queries.resolve``).
Errors print a title and a next step and exit with status 2, never a traceback.

Start-up is kept short: command modules import nothing heavy at module level, and
only the command being run gets its full parser (``--help`` and the other
commands need just each module's one-line ``HELP``), so ``forgetwatch --help``
never pays for pandas, scipy, MLflow or lm-eval.
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
    pair,
    serve,
    suite,
    sync,
)
from forgetwatch.errors import ForgetwatchError

COMMANDS = (demo, sync, ingest, pair, suite, analyse, serve, eval, export, flips, check, breakeven)


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The command ``argv`` names (its first word), or None for ``--help``/no command."""
    words = list(sys.argv[1:] if argv is None else argv)
    return words[0] if words and not words[0].startswith("-") else None


def build_parser(
    argv: Sequence[str] | None = None, *, full: bool = True
) -> argparse.ArgumentParser:
    """The ``forgetwatch`` parser; with ``full=False`` only ``argv``'s command is built out.

    The other commands get a bare sub-parser carrying their one-line help, so the
    top-level help and "invalid choice" errors read the same either way.
    """
    chosen = _chosen(argv)
    parser = argparse.ArgumentParser(
        prog="forgetwatch",
        description="What did this fine-tune gain, and what did it forget?",
        epilog=settings.help_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        if full or chosen in command.HELP:
            command.add_command(sub)
        else:
            for name, text in command.HELP.items():
                sub.add_parser(name, help=text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv, full=False).parse_args(argv)
    try:
        return int(args.func(args))
    except ForgetwatchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
