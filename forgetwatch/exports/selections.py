"""Saved Compare selections: a short key in the URL (``?sel=``) for many picked runs.

A hundred MLflow run ids make a 3,800-character link, which chat tools and issue
trackers cut. The page stores the picks once under their digest
(``review.comparison.selection_key``) and the link carries the key; anyone opening
it against the same database sees the same runs (``queries.compare.saved_selection``).
"""

from __future__ import annotations

from pathlib import Path

from forgetwatch import db
from forgetwatch.review.comparison import selection_key


def save_selection(path: str | Path, run_ids: tuple[str, ...], model_ids: tuple[str, ...]) -> str:
    """Store the picks under their key (once: the same picks keep one row); return the key."""
    key = selection_key(run_ids, model_ids)
    with db.connect(path) as con, db.transaction(con):
        con.execute(
            """INSERT INTO compare_selections (sel_id, run_ids, model_ids)
               VALUES (?, ?, ?) ON CONFLICT (sel_id) DO NOTHING""",
            [key, list(run_ids), list(model_ids)],
        )
    return key
