"""The ``forgetwatch`` command line: every dashboard action, scriptable.

Subcommands: ``demo`` (build the embedded demo world and serve it), ``sync``
(MLflow runs), ``ingest`` (lm-eval output folders, once or ``--watch``), ``serve``
(the dashboard), ``eval``/``jobs``/``cancel`` (background eval jobs, from
``evals.cli``), ``export``/``flips`` (review tables, from ``forgetwatch.export_cli``),
``check`` (a run against a forgetting budget, for CI) and ``breakeven`` (fine-tune vs
k-shot prompting cost). Errors print a title and a next step and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from evals.cli import add_commands as add_eval_commands
from forgetwatch import settings
from forgetwatch.breakeven_cli import add_commands as add_breakeven_commands
from forgetwatch.check_cli import add_commands as add_check_commands
from forgetwatch.errors import BadInputError, ForgetwatchError
from forgetwatch.export_cli import add_commands as add_export_commands


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help=f"DuckDB file (default: ${settings.SETTINGS['db'].env} or "
        f"{settings.SETTINGS['db'].default})",
    )


def cmd_sync(args: argparse.Namespace) -> int:
    from collectors import mlflow_runs
    from forgetwatch.progress import bar

    with bar("sync runs") as progress:
        report = mlflow_runs.sync(
            args.tracking_uri,
            args.db,
            experiments=args.experiment or None,
            progress=progress,
            full=args.full,
            backend_store_uri=args.backend_store_uri,
        )
    print(report.summary())
    return 0 if report.ok else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    from collectors import lm_eval_results
    from evals.suite import load_suite
    from forgetwatch.progress import bar

    if not args.paths and not args.watch:
        raise BadInputError(
            "Nothing to ingest", "Pass lm-eval output folders, or --watch DIR.", where="ingest"
        )
    suite = load_suite(args.suite or settings.get("suite"))
    report = None
    if args.paths:
        with bar("ingest results") as progress:
            report = lm_eval_results.ingest(args.paths, args.db, suite=suite, progress=progress)
        print(report.summary())
    status = 0 if report is None or report.ok else 1
    if args.watch:
        status = max(status, _watch(args))
    return status


def _watch(args: argparse.Namespace) -> int:
    """Ingest finished result folders under --watch until Ctrl-C; 0 on a clean stop."""
    from collectors.lm_eval_watch import watch
    from evals.suite import load_suite

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


def _demo_db(args: argparse.Namespace, workspace: Path) -> Path:
    return Path(args.db) if args.db else workspace / "forgetwatch.duckdb"


def cmd_demo(args: argparse.Namespace) -> int:
    from collectors import lm_eval_results, mlflow_runs
    from evals.suite import load_suite
    from forgetwatch.demo.build import build_world
    from forgetwatch.progress import bar, stage_bars

    if not args.no_serve:
        _check_host(args)
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
    if args.no_serve:
        return 0 if report.ok else 1
    return serve(db_file, args.host, args.port, args.theme)


def serve(db_file: Path, host: str, port: int, theme: str = "light") -> int:
    """Run the Streamlit dashboard on ``host:port`` reading ``db_file``."""
    app = resources.files("dashboard").joinpath("app.py")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--theme.base", theme,
    ]  # fmt: skip
    env = {**os.environ, settings.SETTINGS["db"].env: str(Path(db_file).resolve())}
    print(f"forgetwatch dashboard: http://{host}:{port}  (database {db_file})", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_host(args: argparse.Namespace) -> None:
    """The Evals page can run code; binding beyond loopback must be a deliberate choice."""
    if args.host not in LOOPBACK and not args.allow_remote:
        raise BadInputError(
            f"Refusing to serve on {args.host}: the dashboard can start eval jobs",
            "Serve on 127.0.0.1 behind an authenticating proxy, or pass --allow-remote.",
            where="--host",
        )


def cmd_serve(args: argparse.Namespace) -> int:
    _check_host(args)
    return serve(settings.db_path(args.db), args.host, args.port, args.theme)


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    parser.add_argument("--theme", choices=["light", "dark"], default="light", help="colour theme")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --host other than loopback"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forgetwatch",
        description="What did this fine-tune gain, and what did it forget?",
        epilog=settings.help_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build the embedded demo world and serve the dashboard")
    _add_db(demo)
    demo.add_argument("--workspace", help="demo folder (default: $FORGETWATCH_DEMO_DIR)")
    demo.add_argument(
        "--profile",
        choices=["full", "quick"],
        default="full",
        help="full: the README demo; quick: a smaller world for tests",
    )
    demo.add_argument("--no-serve", action="store_true", help="build only, don't serve")
    _add_serve_options(demo)
    demo.set_defaults(func=cmd_demo)

    sync = sub.add_parser("sync", help="pull MLflow runs, params, tags and metric histories")
    _add_db(sync)
    sync.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    sync.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    sync.add_argument(
        "--full",
        action="store_true",
        help="read every active run (notices deleted and restored runs); "
        "otherwise only new, finished and running runs",
    )
    sync.add_argument(
        "--backend-store-uri",
        help="the server's sqlite:/// backend store, read read-only for fast metric histories "
        "(default: $FORGETWATCH_MLFLOW_BACKEND_URI)",
    )
    sync.set_defaults(func=cmd_sync)

    ingest = sub.add_parser("ingest", help="load lm-eval output folders (results + samples)")
    _add_db(ingest)
    ingest.add_argument("paths", nargs="*", help="lm-eval --output_path folders or results files")
    ingest.add_argument("--suite", help="suite mapping tasks to capabilities (default: offline)")
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

    srv = sub.add_parser("serve", help="serve the dashboard")
    _add_db(srv)
    _add_serve_options(srv)
    srv.set_defaults(func=cmd_serve)
    add_eval_commands(sub)
    add_export_commands(sub)
    add_check_commands(sub)
    add_breakeven_commands(sub)
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
