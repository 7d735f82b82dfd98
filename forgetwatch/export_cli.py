"""``forgetwatch export`` and ``forgetwatch flips``: the Compare and Flips pages, as files.

``export`` builds the report with the same functions the Compare page uses
(``exports.build_comparison`` and ``charts.comparison_figures``), so a file
from the CLI holds the same numbers as a download from the page. ``flips``
writes the Flips page's tables (counts per task, then the flipped examples)
from the same named queries.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forgetwatch import db, exports
from forgetwatch.errors import BadInputError
from forgetwatch.queries import flips


def add_commands(sub: Any) -> None:
    """Register ``export`` on the top-level subparsers of ``forgetwatch``."""
    parser = sub.add_parser(
        "export", help="write the comparison table (csv, md, latex, xlsx or html report)"
    )
    parser.add_argument("--db", default=None, help="DuckDB file (default: $FORGETWATCH_DB)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--runs", nargs="+", metavar="RUN_ID", help="runs to compare")
    which.add_argument("--all", action="store_true", help="every evaluated run")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="only these suite tasks")
    parser.add_argument("--base", help="base model to compare against (default: most common)")
    parser.add_argument("--method", help="only runs of this method (full, lora, ...)")
    parser.add_argument(
        "--no-checkpoints", action="store_true", help="final models only, no checkpoints"
    )
    parser.add_argument(
        "--format", help=f"one of {', '.join(exports.FORMATS)} (default: from --out's suffix)"
    )
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.set_defaults(func=cmd_export)
    add_flips_command(sub)


def add_flips_command(sub: Any) -> None:
    """Register ``flips``: which examples a fine-tune got newly wrong/right vs its base."""
    parser = sub.add_parser(
        "flips", help="write per-task flip counts and flipped examples (model vs its base)"
    )
    parser.add_argument("--db", default=None, help="DuckDB file (default: $FORGETWATCH_DB)")
    parser.add_argument("--model", required=True, help="fine-tuned model id (final/checkpoint)")
    parser.add_argument("--base", help="model to compare with (default: its recorded base)")
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


def _format_name(args: argparse.Namespace) -> str:
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
    from dashboard import charts

    format_name = _format_name(args)
    spec = exports.CompareSpec(
        run_ids=() if args.all else tuple(args.runs),
        tasks=tuple(args.tasks or ()),
        base_model=args.base,
        method=args.method,
        include_checkpoints=not args.no_checkpoints,
    )
    with db.connect(args.db, read_only=True) as con:
        comparison = exports.build_comparison(con, spec)
    if comparison.points.empty:
        raise BadInputError(
            "Nothing to export: no evaluated models match",
            "Check the run ids (`forgetwatch serve`, Runs page) and that they and their base "
            "have lm-eval results.",
        )
    names = ", ".join(dict.fromkeys(comparison.summary.frame["run_name"].dropna()))
    report = comparison.report(
        f"forgetwatch comparison: {names}", charts.comparison_figures(comparison.points)
    )
    data = exports.render(report, format_name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    for note in comparison.notes[1:]:
        print(f"note: {note}")
    print(f"wrote {args.out} ({format_name}, {len(data):,} bytes)")
    return 0


def _flips_report(con: Any, args: argparse.Namespace) -> exports.Report:
    """Counts per task, then the examples: CSV (one table) writes the examples."""
    models = flips.flip_models(con).set_index("model_id")
    if args.model not in models.index:
        raise BadInputError(
            f"No per-sample results for model {args.model!r}",
            "Pass a fine-tuned model id with samples (the Flips page lists them); "
            "evaluate it with lm-eval's --log_samples and `forgetwatch ingest DIR`.",
        )
    base = args.base or models.loc[args.model, "base_model_id"]
    if not isinstance(base, str):
        raise BadInputError(
            f"No base model is recorded for {args.model!r}", "Pass --base MODEL_ID."
        )
    counts = flips.flip_counts(con, args.model, base)
    examples = flips.flip_examples(
        con, args.model, base, tasks=args.task, direction=args.direction,
        search=args.search, limit=args.limit,
    )  # fmt: skip
    note = (
        f"{models.loc[args.model, 'label']} vs {base}: {int(counts['n_pairs'].sum())} paired "
        f"samples, {int(counts['right_to_wrong'].sum())} right -> wrong, "
        f"{int(counts['wrong_to_right'].sum())} wrong -> right."
    )
    views = [
        exports.View("Flips per task", counts),
        exports.View("Flipped examples", examples.drop(columns="total")),
    ]
    return exports.Report(f"forgetwatch flips: {args.model}", views, [note], primary=1)


def cmd_flips(args: argparse.Namespace) -> int:
    format_name = _format_name(args)
    with db.connect(args.db, read_only=True) as con:
        report = _flips_report(con, args)
    data = exports.render(report, format_name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"note: {report.notes[0]}")
    print(f"wrote {args.out} ({format_name}, {len(data):,} bytes)")
    return 0
