"""``forgetwatch pair``: record which model some models were fine-tuned from.

The command behind the dashboard's base picker, and what ``ingest --base``,
``check --base`` and ``export --base`` do before they read. The pairing is
stored in the database (``model_bases``), wins over every inferred base, and
survives every re-sync; ``--clear`` forgets it, so an inferred base (from the
model's files or its MLflow run) applies again.
"""

from __future__ import annotations

import argparse
from typing import Any

from forgetwatch.cli.common import add_db_option
from forgetwatch.errors import BadInputError

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {"pair": "record a model's base model (what its deltas are measured against)"}

DESCRIPTION = """\
Record the base model of one or more evaluated models.

A base is usually found without help, by the first rule that applies: the peft
adapter's pretrained= model or adapter_config.json, the MLflow run's base model,
_name_or_path in the model's config.json, or lm_eval --metadata base_model. Pair
by hand when none applies (or to override them): every page and command then
measures the models against BASE.
"""


def add_command(sub: Any) -> None:
    """Register ``pair`` on the top-level subparsers of ``forgetwatch``."""
    parser = sub.add_parser(
        "pair",
        help=HELP["pair"],
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="model paths, display names or run names"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--base", metavar="BASE", help="the model they were fine-tuned from")
    which.add_argument(
        "--clear", action="store_true", help="forget the hand pairing (inferred bases apply)"
    )
    add_db_option(parser)
    parser.set_defaults(func=cmd_pair)


def resolve_models(con: Any, idents: list[str], where: str) -> list[str]:
    """The evaluated model each identifier names (a run: its final model)."""
    from forgetwatch.queries.resolve import resolve_model

    return [resolve_model(con, ident, where=where).model_id or ident for ident in idents]


def record_base(db_path: Any, model_ids: list[str], base: str | None) -> str:
    """Resolve ``base`` and store it for ``model_ids`` (None clears); the summary line(s)."""
    from forgetwatch import db
    from forgetwatch.collectors.base_pairs import pair_models
    from forgetwatch.queries.resolve import resolve_model

    base_id = None
    if base is not None:
        with db.connect(db_path, read_only=True) as con:
            base_id = resolve_model(con, base, where="--base").model_id
        if base_id is None:  # resolve_model raises first; kept for the type checker
            raise BadInputError(f"{base!r} names no model", "Pass a model path.", where="--base")
    return pair_models(db_path, model_ids, base_id).summary()


def cmd_pair(args: argparse.Namespace) -> int:
    from forgetwatch import db

    with db.connect(args.db, read_only=True) as con:
        model_ids = resolve_models(con, args.models, "MODEL")
    print(record_base(args.db, model_ids, None if args.clear else args.base))
    return 0
