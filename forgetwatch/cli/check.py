"""``forgetwatch check``: a run's verdict against a forgetting budget, for CI pipelines.

It prints a Markdown summary fit for a pull-request comment and exits with a
status a pipeline can gate on. The numbers come from the same functions as the
dashboard (``budget.evaluate`` over ``queries.significance``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

if TYPE_CHECKING:
    from forgetwatch import queries
    from forgetwatch.queries.resolve import Resolved

RUN_MATCHES = ("run id", "run name")  # identifiers that name a run, so its final is checked

EXIT_PASS, EXIT_FAIL = 0, 1  # unusable input exits 2, like every forgetwatch error

DESCRIPTION = """\
Check a run's final model (or one checkpoint) against a forgetting budget.

Exit status:
  0  pass: every budget rule is met
  1  fail: a rule is clearly violated (beyond its limit and significant), or
     review: a limit is exceeded but not significantly, or evidence is missing, or
     inconclusive: every limit holds on the observed deltas, but the eval is too
     small to tell (its minimum detectable effect is larger than the distance to
     a limit); pass --inconclusive-ok to let "inconclusive" exit 0, --review-ok
     to let "review" and "inconclusive" exit 0 (a human reads the comment instead)
  2  unusable input: unknown run, nothing evaluated, or a bad budget file

"review" and "inconclusive" fail by default so that missing or thin evidence never
passes a gate silently. A model's status is its worst rule: fail > review >
inconclusive > pass.
"""

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {
    "check": (
        "check a run against a forgetting budget "
        "(exit 0 pass, 1 fail/review/inconclusive, 2 bad input)"
    )
}


def add_command(sub: Any) -> None:
    """Register ``check`` on the top-level subparsers of ``forgetwatch``."""
    parser = sub.add_parser(
        "check",
        help=HELP["check"],
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run", metavar="RUN|MODEL", help="run id, run name, model path or display name"
    )
    parser.add_argument(
        "--budget",
        type=Path,
        default=None,
        help="budget YAML (default: $FORGETWATCH_BUDGET, else the bundled example budget)",
    )
    add_db_option(parser)
    parser.add_argument(
        "--checkpoint", type=int, metavar="STEP", help="check this checkpoint, not the final model"
    )
    parser.add_argument(
        "--review-ok",
        action="store_true",
        help='exit 0 on "review" (and "inconclusive") as well as on "pass"',
    )
    parser.add_argument(
        "--inconclusive-ok",
        action="store_true",
        help='exit 0 on "inconclusive" (the eval too small to tell) as well as on "pass"',
    )
    parser.add_argument(
        "--base",
        metavar="BASE",
        help="measure against this base model; stored, as `forgetwatch pair MODEL --base BASE`",
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown summary to this file")
    parser.set_defaults(func=cmd_check)


def _model(con: queries.Con, ident: str, step: int | None) -> tuple[str, str]:
    """(model_id, label) of the evaluated model ``ident`` names (a run: its final model)."""
    from forgetwatch import queries
    from forgetwatch.queries.resolve import resolve

    found = resolve(con, ident, where="RUN")
    if found.run_id is None or (step is None and found.matched not in RUN_MATCHES):
        return _evaluated(con, found), found.label
    run_id, label = found.run_id, found.label
    evaluated = queries.run_models(con, run_id)
    if step is not None:
        chosen = evaluated[(evaluated["kind"] == "checkpoint") & (evaluated["step"] == step)]
        if chosen.empty:
            steps = sorted(evaluated.loc[evaluated["kind"] == "checkpoint", "step"].astype(int))
            raise BadInputError(
                f"Run {label} has no evaluated checkpoint at step {step}",
                f"Evaluated checkpoints: {', '.join(map(str, steps)) or 'none'}; evaluate it "
                "with `forgetwatch eval`, then `forgetwatch ingest`.",
                where="--checkpoint",
            )
        return str(chosen["model_id"].iloc[0]), f"{label} @ step {step}"
    model_id = queries.final_model_id(con, run_id)
    if model_id is None or model_id not in set(evaluated["model_id"]):
        raise BadInputError(
            f"Run {label}'s final model has no evals",
            "Evaluate it with `forgetwatch eval` (or ingest lm-eval results with "
            "`forgetwatch ingest`), or pass --checkpoint STEP.",
            where="RUN",
        )
    return model_id, f"{label} (final model)"


def _evaluated(con: queries.Con, found: Resolved) -> str:
    """The model a model identifier named, if it has evals."""
    from forgetwatch import queries

    if found.model_id is None or found.model_id not in set(queries.evaluated_models(con)):
        raise BadInputError(
            f"{found.label} has no evals",
            "Evaluate it with `forgetwatch eval`, or ingest its lm-eval results with "
            "`forgetwatch ingest DIR`.",
            where="RUN",
        )
    return found.model_id


def cmd_check(args: argparse.Namespace) -> int:
    from forgetwatch import db
    from forgetwatch.exports.check_report import verdict_markdown
    from forgetwatch.review import budget as budgets

    budget = budgets.load_budget(args.budget or budgets.default_budget_path())
    with db.connect(args.db, read_only=True) as con:
        model_id, label = _model(con, args.run, args.checkpoint)
    if args.base:
        from forgetwatch.cli.pair import record_base

        print(record_base(args.db, [model_id], args.base).splitlines()[0], file=sys.stderr)
    with db.connect(args.db, read_only=True) as con:
        verdict = budgets.evaluate(con, model_id, budget)
    if verdict.base_model_id is None and not verdict.checks["delta"].notna().any():
        raise BadInputError(
            f"No base model is recorded for {label}",
            "Pass --base BASE (stored, as `forgetwatch pair MODEL --base BASE`), or re-run "
            'lm_eval with --metadata \'{"base_model": "BASE"}\' and ingest again.',
            where=model_id,
        )
    if not verdict.checks["delta"].notna().any():
        raise BadInputError(
            f"No deltas for {label}: its base model {verdict.base_model_id or '(unknown)'} has "
            "no evals on the same suite tasks",
            "Evaluate the base model on the suite, then ingest the results.",
            where=model_id,
        )
    text = verdict_markdown(label, verdict)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return EXIT_PASS if gate_passes(verdict.status, args) else EXIT_FAIL


def gate_passes(status: str, args: argparse.Namespace) -> bool:
    """Whether ``status`` exits 0: pass, or a status its ``--…-ok`` flag lets through."""
    allowed = {"pass"}
    if args.review_ok:  # review is the graver of the two, so accepting it accepts both
        allowed |= {"review", "inconclusive"}
    if args.inconclusive_ok:
        allowed.add("inconclusive")
    return status in allowed
