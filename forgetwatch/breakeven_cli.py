"""``forgetwatch breakeven RUN``: when did the fine-tune pay for itself against k-shot prompting?

The same inputs and functions as the Run page's calculator: the run's
``train_runtime`` metric, the k-shot baseline recorded for its base model (its
few-shot examples counted with the base model's tokenizer) and the prices given
on the command line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from forgetwatch import breakeven, db, queries, settings
from forgetwatch.errors import BadInputError


@dataclass(frozen=True)
class KshotSetup:
    """What the calculator needs from the database for one run."""

    train_runtime_s: float | None
    task: str | None  # the icl_baseline task, if the base was evaluated on one
    k: int | None
    kshot_score: float | None
    base_path: str | None


def kshot_setup(con: queries.Con, run_id: str) -> KshotSetup:
    """The run's training time and its base model's k-shot baseline (first one, if several)."""
    if queries.run_info(con, run_id) is None:
        raise BadInputError(
            f"No run {run_id!r} in the database",
            "sync it with `forgetwatch sync`, or list runs on the Runs page",
            where=run_id,
        )
    runtime = queries.run_metric_last(con, run_id, "train_runtime")
    baselines = queries.icl_baselines(con, run_id)
    if baselines.empty:
        return KshotSetup(runtime, None, None, None, None)
    row = baselines.iloc[0]
    k = None if row["n_shot"] is None or row["n_shot"] != row["n_shot"] else int(row["n_shot"])
    return KshotSetup(runtime, str(row["task"]), k, float(row["value"]), row["base_path"])


def measured_tokens(setup: KshotSetup, suite_name: str) -> float:
    """Extra prompt tokens per request, measured from the k-shot task and the base tokenizer."""
    from evals.suite import load_suite

    if setup.task is None or not setup.k or not setup.base_path:
        raise BadInputError(
            "This run's base model has no k-shot baseline eval to measure",
            "evaluate the base on a suite with an icl_baseline task, or pass --extra-tokens",
            where="extra tokens",
        )
    suite = load_suite(suite_name)
    return breakeven.measure_extra_tokens(setup.base_path, setup.task, suite.include_path, setup.k)


def cmd_breakeven(args: argparse.Namespace) -> int:
    with db.connect(args.db, read_only=True) as con:
        setup = kshot_setup(con, args.run_id)
    runtime = args.train_runtime_s if args.train_runtime_s is not None else setup.train_runtime_s
    if runtime is None:
        raise BadInputError(
            "The run logged no train_runtime metric",
            "pass --train-runtime-s with the training time in seconds",
            where=args.run_id,
        )
    tokens = args.extra_tokens
    if tokens is None:
        tokens = measured_tokens(setup, args.suite or settings.get("suite"))
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
    result: breakeven.BreakEven, runtime_s: float, gpus: float, setup: KshotSetup
) -> list[str]:
    """The calculator's result as plain text lines (the page shows the same numbers)."""
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
            f"break-even:            {result.requests:,.0f} requests = {result.days:,.1f} days "
            f"at {result.requests_per_day:,.0f} requests/day"
        )
    if setup.kshot_score is not None:
        lines.append(f"base + {setup.k}-shot target score: {setup.kshot_score * 100:.1f}")
    return lines


def add_commands(sub: Any) -> None:
    """Register ``breakeven`` on the top-level subparsers of ``forgetwatch``."""
    parser = sub.add_parser(
        "breakeven", help="fine-tune cost vs k-shot prompting: the break-even request volume"
    )
    parser.add_argument("run_id", metavar="RUN", help="MLflow run id of the fine-tune")
    parser.add_argument("--db", default=None, help="DuckDB file (default: $FORGETWATCH_DB)")
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
