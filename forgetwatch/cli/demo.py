"""``forgetwatch demo``: build the embedded demo world, load it, and serve it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option
from forgetwatch.cli.serve import add_serve_options, check_host, serve

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"demo": "build the embedded demo world and serve the dashboard"}


def _demo_db(args: argparse.Namespace, workspace: Path) -> Path:
    return Path(args.db) if args.db else workspace / "forgetwatch.duckdb"


def demo_budget() -> str:
    """The budget the demo is judged by: FORGETWATCH_BUDGET if set, else ``demo.yaml``.

    The demo's evals are too small for the bundled example's 1- and 3-point limits
    (``budgets/demo.yaml`` says why); the served pages read this file, and their
    headline names it.
    """
    from importlib import resources

    chosen = settings.get("budget")
    return chosen or str(resources.files("forgetwatch").joinpath("budgets", "demo.yaml"))


def cmd_demo(args: argparse.Namespace) -> int:
    from forgetwatch.collectors import lm_eval_results, mlflow_runs
    from forgetwatch.demo.build import build_world
    from forgetwatch.progress import bar, stage_bars
    from forgetwatch.suite import load_suite

    auth = "none" if args.no_serve else check_host(args)
    budget = demo_budget()
    workspace = Path(args.workspace or settings.get("demo_dir")).resolve()
    db_file = _demo_db(args, workspace)
    world = build_world(workspace, profile=args.profile, progress=stage_bars())
    with bar("sync demo runs") as progress:
        print(mlflow_runs.sync(world.tracking_uri, db_file, progress=progress).summary())
    with bar("ingest demo evals") as progress:
        report = lm_eval_results.ingest(
            [world.eval_dir], db_file, suite=load_suite("offline"), progress=progress
        )
    print(report.summary())
    print(f"Demo database: {db_file}")
    print(f"Budget: {budget}  (`forgetwatch check RUN --budget {budget}` gives the verdicts)")
    if args.no_serve:
        return 0 if report.ok else 1
    extra = {settings.SETTINGS["budget"].env: budget}
    return serve(db_file, args.host, args.port, args.theme, auth, extra_env=extra)


def add_command(sub: Any) -> None:
    """Register this command on the top-level subparsers of ``forgetwatch``."""
    demo = sub.add_parser("demo", help=HELP["demo"])
    add_db_option(demo)
    demo.add_argument("--workspace", help="demo folder (default: $FORGETWATCH_DEMO_DIR)")
    demo.add_argument(
        "--profile",
        choices=["full", "quick"],
        default="full",
        help="full: the README demo; quick: a smaller world for tests",
    )
    demo.add_argument("--no-serve", action="store_true", help="build only, don't serve")
    add_serve_options(demo)
    demo.set_defaults(func=cmd_demo)
