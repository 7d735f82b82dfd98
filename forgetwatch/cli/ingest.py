"""``forgetwatch ingest``: load lm-eval output folders, once or ``--watch``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"ingest": "load lm-eval output folders (results + samples)"}


def cmd_ingest(args: argparse.Namespace) -> int:
    from forgetwatch.collectors import lm_eval_results
    from forgetwatch.collectors.lm_eval_parse import find_results_files, no_results_error
    from forgetwatch.progress import bar
    from forgetwatch.suite import load_suite

    if not args.paths and not args.watch:
        raise BadInputError(
            "Nothing to ingest", "Pass lm-eval output folders, or --watch DIR.", where="ingest"
        )
    suite = load_suite(args.suite or settings.get("suite"))
    report = None
    if args.paths and not find_results_files(args.paths):  # before a progress bar is drawn
        raise no_results_error(args.paths)
    if args.paths:
        with bar("ingest results") as progress:
            report = lm_eval_results.ingest(
                args.paths, args.db, suite=suite, progress=progress, base=args.base
            )
        print(report.summary())
    status = 0 if report is None or report.ok else 1
    if args.watch:
        status = max(status, _watch(args))
    return status


def _watch(args: argparse.Namespace) -> int:
    """Ingest finished result folders under --watch until Ctrl-C; 0 on a clean stop."""
    from forgetwatch.collectors.lm_eval_watch import watch
    from forgetwatch.suite import load_suite

    if not Path(args.watch).is_dir():
        raise BadInputError(
            f"{args.watch} is not a folder",
            "Pass the folder lm-eval writes to (its --output_path).",
            where="--watch",
        )
    print(f"Watching {args.watch} (every {args.interval:g} s, settle {args.settle:g} s); "
          "Ctrl-C stops.", flush=True)  # fmt: skip
    try:
        total = watch(
            args.watch, args.db, interval=args.interval, settle=args.settle,
            suite=load_suite(args.suite or settings.get("suite")),
            on_report=lambda report: print(report.summary(), flush=True),
        )  # fmt: skip
    except KeyboardInterrupt:
        print("Stopped watching.", flush=True)
        return 0
    return 0 if total.ok else 1


def add_command(sub: Any) -> None:
    """Register this command on the top-level subparsers of ``forgetwatch``."""
    ingest = sub.add_parser("ingest", help=HELP["ingest"])
    add_db_option(ingest)
    ingest.add_argument("paths", nargs="*", help="lm-eval --output_path folders or results files")
    ingest.add_argument("--suite", help="suite mapping tasks to capabilities (default: offline)")
    ingest.add_argument(
        "--base",
        metavar="MODEL",
        help="pair every model in these folders with this base model (as `forgetwatch pair`)",
    )
    ingest.add_argument(
        "--watch", metavar="DIR", help="keep ingesting result folders as they appear under DIR"
    )
    ingest.add_argument(
        "--interval", type=float, default=2.0, help="--watch: seconds between scans (default: 2)"
    )
    ingest.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="--watch: seconds a folder's files must stay unchanged before ingest (default: 5)",
    )
    ingest.set_defaults(func=cmd_ingest)
