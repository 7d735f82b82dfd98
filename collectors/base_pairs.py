"""The writer behind ``forgetwatch pair``, ``ingest --base`` and the dashboard's base picker.

A user's pairing is stored in ``model_bases``, apart from the inferred links in
``models``, so that no relink or re-sync ever overwrites it, and every reader of
the database (every dashboard user, every command) sees the same pick. Storing a
pairing relinks the models in the same transaction, then redoes the stored tests
of the models whose base changed (``analysis.refresh``), so the pages show the new
comparison at once.

Identifiers are resolved by the caller (``queries.resolve_model``); this module
takes model ids.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from forgetwatch import analysis, db
from forgetwatch.collectors.linking import relink_models
from forgetwatch.errors import BadInputError


@dataclass
class PairReport:
    """What a pairing changed, for the CLI line and the page's toast."""

    paired: list[str]  # model ids whose stored pairing is now the new base (or cleared)
    base_model_id: str | None  # None when the pairings were cleared
    analysis: str = ""

    def summary(self) -> str:
        if self.base_model_id is None:
            head = f"cleared the base pairing of {len(self.paired)} model(s)"
        else:
            head = f"paired {len(self.paired)} model(s) with base {self.base_model_id}"
        return "\n".join([head, *(f"  {m}" for m in self.paired), f"  {self.analysis}"])


def current_user() -> str | None:
    """Who is pairing, for ``model_bases.set_by`` (None where the OS does not say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _check(con: duckdb.DuckDBPyConnection, model_ids: Sequence[str], base: str) -> None:
    """Refuse pairings that can only mislead: a model with itself, or a two-model loop."""
    if base in model_ids:
        raise BadInputError(
            f"Cannot pair {base!r} with itself",
            "Pass a different model as --base: the one it was fine-tuned from.",
            where="--base",
        )
    row = con.execute("SELECT count(*) FROM models WHERE model_id = ?", [base]).fetchone()
    if not row or not row[0]:
        raise BadInputError(
            f"No model {base!r} in the database",
            "Ingest the base model's lm-eval results first (`forgetwatch ingest DIR`), then pair.",
            where="--base",
        )
    loop = con.execute(
        "SELECT model_id FROM models WHERE model_id = ? AND list_contains(?, base_model_id)",
        [base, list(model_ids)],
    ).fetchone()
    if loop:
        raise BadInputError(
            f"{base!r} already has {loop[0]!r} as its base",
            "Two models cannot be each other's base. Clear that pairing first "
            "(`forgetwatch pair MODEL --clear`).",
            where="--base",
        )


def store_pairs(
    con: duckdb.DuckDBPyConnection,
    model_ids: Sequence[str],
    base_model_id: str | None,
    *,
    set_by: str | None = None,
) -> list[str]:
    """Store (or with None, clear) the pairings and relink, inside the caller's transaction.

    Returns the model ids paired; the caller refreshes the analysis after committing.
    """
    ids = list(dict.fromkeys(model_ids))
    if base_model_id is None:
        con.execute("DELETE FROM model_bases WHERE list_contains(?, model_id)", [ids])
    else:
        _check(con, ids, base_model_id)
        con.execute(
            """
            INSERT OR REPLACE INTO model_bases
            SELECT unnest($ids), $base, now()::TIMESTAMP, $by
            """,
            {"ids": ids, "base": base_model_id, "by": set_by or current_user()},
        )
    relink_models(con)
    return ids


def pair_models(
    db_path: str | os.PathLike[str] | None,
    model_ids: Sequence[str],
    base_model_id: str | None,
    *,
    set_by: str | None = None,
) -> PairReport:
    """Store ``base_model_id`` as the base of every model in ``model_ids`` (None clears).

    One transaction: the pairings and the relink land together or not at all; then
    the stored tests of the models whose base changed are redone.
    """
    with db.connect(db_path) as con, db.transaction(con):
        ids = store_pairs(con, model_ids, base_model_id, set_by=set_by)
    refreshed = analysis.refresh(db_path)
    return PairReport(ids, base_model_id, refreshed.summary())
