"""``forgetwatch suite``: which tasks the suite maps, which it misses, and a starter file.

Deltas exist only for tasks a suite maps to a capability. Evals of tasks no suite
names (a team's own lm-eval tasks, MMLU without the standard suite) show nothing
until one does, so this lists them and writes a suite file naming each, mapped to
``other``, for the user to edit and pass to ``forgetwatch ingest --suite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"suite": "list the suite's tasks and the stored tasks it misses; write a starter suite"}


def add_command(sub: Any) -> None:
    """Register ``suite`` on the top-level subparsers of ``forgetwatch``."""
    parser = sub.add_parser("suite", help=HELP["suite"])
    parser.add_argument("--suite", help="suite to list (default: $FORGETWATCH_SUITE, else offline)")
    parser.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="write a suite file listing the stored tasks no suite maps, each mapped to `other`",
    )
    add_db_option(parser)
    parser.set_defaults(func=cmd_suite)


def cmd_suite(args: argparse.Namespace) -> int:
    from forgetwatch import db
    from forgetwatch.queries.coverage import unmapped_tasks
    from forgetwatch.suite import load_suite, starter_suite_yaml

    suite = load_suite(args.suite or settings.get("suite"))
    with db.connect(args.db, read_only=True) as con:
        missing = unmapped_tasks(con)
    print(f"suite {suite.name} ({suite.path}):")
    for task in suite.tasks:
        print(f"  {task.task}: {task.capability} ({task.metric_key})")
    if missing:
        print(f"{len(missing)} stored task(s) no suite maps (no delta until one does):")
        for name, metric, filter_ in missing:
            print(f"  {name} ({metric},{filter_})")
    else:
        print("Every stored task is mapped by a suite.")
    if args.write is None:
        return 0
    if not missing:
        raise BadInputError(
            "No unmapped tasks to write",
            "Every stored task is already in a suite; copy a bundled suite "
            f"({suite.path}) to start a new one.",
            where="--write",
        )
    if args.write.exists():
        raise BadInputError(
            f"{args.write} exists",
            "Pass a new file name: --write never overwrites a suite.",
            where="--write",
        )
    args.write.parent.mkdir(parents=True, exist_ok=True)
    args.write.write_text(starter_suite_yaml(missing, name=args.write.stem))
    print(
        f"wrote {args.write}: edit each task's capability, then "
        f"`forgetwatch ingest DIR --suite {args.write}`"
    )
    return 0
