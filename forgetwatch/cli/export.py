"""``forgetwatch export``: the Compare page, as a file.

It builds the report with the same functions the Compare page uses
(``review.build_comparison``, ``charts.comparison_figures`` and
``figures.faded``), so a file from the CLI holds the same numbers as a download
from the page. ``format_name_of`` is shared with ``forgetwatch flips``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"export": "write the comparison table (csv, md, latex, xlsx or html report)"}


def add_command(sub: Any) -> None:
    """Register ``export`` on the top-level subparsers of ``forgetwatch``."""
    from forgetwatch import exports

    parser = sub.add_parser("export", help=HELP["export"])
    add_db_option(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--runs", nargs="+", metavar="RUN", help="runs to compare: ids, names or model paths"
    )
    which.add_argument(
        "--models", nargs="+", metavar="MODEL",
        help="models to compare (paths or display names), with or without an MLflow run",
    )  # fmt: skip
    which.add_argument("--all", action="store_true", help="every evaluated run and model")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="only these suite tasks")
    parser.add_argument(
        "--base",
        help="base model to compare against (default: the most common); with --models, "
        "also stored as their base, as `forgetwatch pair`",
    )
    parser.add_argument("--method", help="only runs of this method (full, lora, ...)")
    parser.add_argument(
        "--no-checkpoints", action="store_true", help="final models only, no checkpoints"
    )
    parser.add_argument(
        "--format", help=f"one of {', '.join(exports.FORMATS)} (default: from --out's suffix)"
    )
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.set_defaults(func=cmd_export)


def format_name_of(args: argparse.Namespace) -> str:
    """The export format ``--format`` names, else the one ``--out``'s suffix implies."""
    from forgetwatch import exports

    if args.format:
        return exports.get_format(args.format).name
    by_extension = {f.extension: f.name for f in exports.FORMATS.values()}
    suffix = args.out.suffix.lstrip(".").lower()
    if suffix not in by_extension:
        raise BadInputError(
            f"Cannot tell the export format from {args.out.name!r}",
            f"Pass --format (one of: {', '.join(exports.FORMATS)}).",
        )
    return by_extension[suffix]


def cmd_export(args: argparse.Namespace) -> int:
    from forgetwatch import db, exports, review
    from forgetwatch.cli.pair import record_base, resolve_models
    from forgetwatch.exports import charts
    from forgetwatch.exports.figures import faded
    from forgetwatch.queries.resolve import resolve_model, resolve_run
    from forgetwatch.review.next_step import next_step

    format_name = format_name_of(args)
    with db.connect(args.db, read_only=True) as con:
        run_ids = [resolve_run(con, r, where="--runs").run_id or r for r in args.runs or ()]
        model_ids = resolve_models(con, list(args.models or ()), "--models")
    base = args.base
    if model_ids and base:
        print(record_base(args.db, model_ids, base).splitlines()[0], file=sys.stderr)
        with db.connect(args.db, read_only=True) as con:
            base = resolve_model(con, base, where="--base").model_id
    spec = review.CompareSpec(
        model_ids=tuple(model_ids),
        run_ids=() if args.all else tuple(run_ids),
        tasks=tuple(args.tasks or ()),
        base_model=base,
        method=args.method,
        include_checkpoints=not args.no_checkpoints,
    )
    with db.connect(args.db, read_only=True) as con:
        comparison = review.build_comparison(con, spec)
        step = next_step(con) if comparison.points.empty else None
    if step is not None:
        raise BadInputError(f"Nothing to export: {step.title}", step.detail)
    if comparison.points.empty:
        raise BadInputError(
            "Nothing to export: no evaluated models match",
            "Check the run ids or models (`forgetwatch serve`, Runs page), that they and their "
            "base have lm-eval results, and that each has a base: `forgetwatch pair MODEL "
            "--base BASE` records one.",
        )
    names = ", ".join(dict.fromkeys(comparison.summary.frame["run_name"].dropna()))
    figures = faded(comparison, charts.comparison_figures(comparison.points))
    report = comparison.report(f"forgetwatch comparison: {names}", figures)
    data = exports.render(report, format_name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    for note in comparison.notes[1:]:
        print(f"note: {note}")
    print(f"wrote {args.out} ({format_name}, {len(data):,} bytes)")
    return 0
