"""``forgetwatch flips``: the Flips page as a file (counts per task, then the examples)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgetwatch.cli.common import add_db_option
from forgetwatch.cli.export import format_name_of

if TYPE_CHECKING:
    from forgetwatch import review

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"flips": "write per-task flip counts and flipped examples (model vs its base)"}


def add_command(sub: Any) -> None:
    """Register ``flips``: which examples a fine-tune got newly wrong/right vs its base."""
    from forgetwatch import exports
    from forgetwatch.queries import flips

    parser = sub.add_parser("flips", help=HELP["flips"])
    add_db_option(parser)
    parser.add_argument(
        "--model", required=True, help="the fine-tune: run id, run name, model path or display name"
    )
    parser.add_argument(
        "--base", help="model to compare with, named the same ways (default: its recorded base)"
    )
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--search", help="text to find in prompts, targets and responses")
    parser.add_argument(
        "--direction", choices=flips.DIRECTIONS, help="only one kind of flip (default: both)"
    )
    parser.add_argument("--limit", type=int, default=1000, help="examples to write (1000)")
    parser.add_argument(
        "--format", help=f"one of {', '.join(exports.FORMATS)} (default: from --out's suffix)"
    )
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.set_defaults(func=cmd_flips)


def _flips_report(con: Any, args: argparse.Namespace) -> review.Report:
    """The Flips page's tables for ``--model`` vs ``--base``, as one report."""
    from forgetwatch.review.flips import flips_review, pair_for

    model_id, label, base_id = pair_for(con, args.model, args.base)
    found = flips_review(
        con, model_id, base_id, label=label, tasks=args.task, direction=args.direction,
        search=args.search, limit=args.limit,
    )  # fmt: skip
    return found.report()


def cmd_flips(args: argparse.Namespace) -> int:
    from forgetwatch import db, exports

    format_name = format_name_of(args)
    with db.connect(args.db, read_only=True) as con:
        report = _flips_report(con, args)
    data = exports.render(report, format_name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"note: {report.notes[0]}")
    print(f"wrote {args.out} ({format_name}, {len(data):,} bytes)")
    return 0
