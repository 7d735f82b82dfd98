"""``forgetwatch breakeven RUN``: when did the fine-tune pay for itself against k-shot prompting?

The same inputs and functions as the Run page's calculator: the run's
``train_runtime`` metric, the k-shot baseline recorded for its base model (its
few-shot examples counted with the base model's tokenizer) and the prices given
on the command line.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

if TYPE_CHECKING:
    from forgetwatch.review import breakeven

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"breakeven": "fine-tune cost vs k-shot prompting: the break-even request volume"}


def cmd_breakeven(args: argparse.Namespace) -> int:
    from forgetwatch import db
    from forgetwatch.queries.resolve import resolve_run
    from forgetwatch.review import breakeven

    with db.connect(args.db, read_only=True) as con:
        run = resolve_run(con, args.run_id)
        setup = breakeven.kshot_setup(con, run.run_id or args.run_id)
    runtime = args.train_runtime_s if args.train_runtime_s is not None else setup.train_runtime_s
    if runtime is None:
        raise BadInputError(
            "The run logged no train_runtime metric",
            "pass --train-runtime-s with the training time in seconds",
            where=args.run_id,
        )
    tokens = args.extra_tokens
    if tokens is None:
        tokens = breakeven.measured_tokens(setup, args.suite or settings.get("suite"))
    result = breakeven.break_even(
        train_runtime_s=runtime,
        gpus=args.gpus,
        gpu_hour_usd=args.gpu_hour_usd,
        extra_tokens=tokens,
        price_per_mtok=args.price_per_mtok,
        requests_per_day=args.requests_per_day,
    )
    for line in report_lines(result, runtime, args.gpus, setup):
        print(line)
    return 0


def report_lines(
    result: breakeven.BreakEven, runtime_s: float, gpus: float, setup: breakeven.KshotSetup
) -> list[str]:
    """The calculator's result as plain text lines (the page shows the same numbers)."""
    from forgetwatch.review.breakeven import fmt_duration

    lines = [
        f"fine-tune cost:        ${result.finetune_usd:,.4f} ({runtime_s:,.0f} s x {gpus:g} GPU)",
        f"k-shot extra tokens:   {result.extra_tokens:,.1f} per request"
        + (f" ({setup.k}-shot, {setup.task})" if setup.task else ""),
        f"k-shot extra cost:     ${result.extra_usd_per_request:,.8f} per request",
    ]
    if result.requests is None:
        lines.append("break-even:            never (k-shot adds no cost per request)")
    else:
        lines.append(
            f"break-even:            {result.requests:,.0f} requests = "
            f"{fmt_duration(result.days)} at {result.requests_per_day:,.0f} requests/day"
        )
    if setup.kshot_score is not None:
        lines.append(f"base + {setup.k}-shot target score: {setup.kshot_score * 100:.1f}")
    if setup.quality_note:
        lines.append(f"note: {setup.quality_note}")
    return lines


def add_command(sub: Any) -> None:
    """Register ``breakeven`` on the top-level subparsers of ``forgetwatch``."""
    parser = sub.add_parser("breakeven", help=HELP["breakeven"])
    parser.add_argument(
        "run_id", metavar="RUN", help="the fine-tune: run id, run name, model path or display name"
    )
    add_db_option(parser)
    parser.add_argument("--gpu-hour-usd", type=float, required=True, help="price of one GPU-hour")
    parser.add_argument(
        "--price-per-mtok", type=float, required=True, help="price per million prompt tokens"
    )
    parser.add_argument(
        "--requests-per-day", type=float, required=True, help="expected request volume"
    )
    parser.add_argument("--gpus", type=float, default=1, help="GPUs the run trained on (1)")
    parser.add_argument(
        "--extra-tokens",
        type=float,
        help="extra prompt tokens per request (default: measured from the k-shot task)",
    )
    parser.add_argument(
        "--train-runtime-s",
        type=float,
        help="training time in seconds (default: the run's train_runtime metric)",
    )
    parser.add_argument(
        "--suite", help="suite holding the k-shot task (default: $FORGETWATCH_SUITE or offline)"
    )
    parser.set_defaults(func=cmd_breakeven)
