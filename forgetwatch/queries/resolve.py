"""One resolver for every identifier a user types: run id, run name, model path, display name.

Every command and page passes what the user gave through ``resolve``, so
``check``, ``breakeven``, ``flips``, ``export`` and ``eval --all-checkpoints``
accept the same spellings. An ambiguous name is answered with its candidates,
an unknown one with the nearest matches; both are ``BadInputError`` (exit 2).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import pandas as pd

from forgetwatch.errors import BadInputError
from forgetwatch.identity import normalise_path
from forgetwatch.queries.deltas import Con

NEAREST = 5


@dataclass(frozen=True)
class Resolved:
    """What an identifier named: a run (and its final model, if known) or a model."""

    run_id: str | None
    model_id: str | None
    label: str
    matched: str  # "run id", "run name", "model id", "model path", "display name"


def _candidates(con: Con, ident: str) -> pd.DataFrame:
    """Every run or model the identifier names exactly, best match kind first."""
    path = normalise_path(ident)
    return con.execute(
        """
        WITH finals AS (
            SELECT run_id, any_value(model_id ORDER BY model_id) AS model_id
            FROM models WHERE kind = 'final' AND run_id IS NOT NULL GROUP BY run_id
        ),
        hits AS (
            SELECT 1 AS rank, 'run id' AS matched, r.run_id, f.model_id,
                   coalesce(r.run_name, r.run_id) AS label
            FROM runs r LEFT JOIN finals f USING (run_id)
            WHERE r.run_id = $ident AND r.deleted IS NOT TRUE
            UNION ALL
            SELECT 2, 'model id', m.run_id, m.model_id, coalesce(m.display_name, m.model_id)
            FROM models m WHERE m.model_id = $ident OR m.model_id = $path
            UNION ALL
            SELECT 3, 'run name', r.run_id, f.model_id, coalesce(r.run_name, r.run_id)
            FROM runs r LEFT JOIN finals f USING (run_id)
            WHERE r.run_name = $ident AND r.deleted IS NOT TRUE
            UNION ALL
            SELECT 4, 'model path', m.run_id, m.model_id, coalesce(m.display_name, m.model_id)
            FROM models m WHERE m.path = $path OR m.adapter_path = $path
            UNION ALL
            SELECT 5, 'display name', m.run_id, m.model_id,
                   coalesce(m.display_name, m.model_id)
            FROM models m WHERE m.display_name = $ident
        )
        SELECT * FROM hits
        QUALIFY rank = min(rank) OVER ()
        ORDER BY run_id NULLS LAST, model_id NULLS LAST
        """,
        {"ident": ident, "path": path},
    ).df()


def _known_names(con: Con) -> list[str]:
    rows = con.execute(
        """SELECT run_id FROM runs WHERE deleted IS NOT TRUE
           UNION SELECT run_name FROM runs WHERE run_name IS NOT NULL AND deleted IS NOT TRUE
           UNION SELECT display_name FROM models WHERE display_name IS NOT NULL
           UNION SELECT model_id FROM models"""
    ).fetchall()
    return [str(name) for (name,) in rows]


def nearest(con: Con, ident: str, n: int = NEAREST) -> list[str]:
    """The known names closest to ``ident`` (for "did you mean ...?")."""
    known = _known_names(con)
    close = difflib.get_close_matches(ident, known, n=n, cutoff=0.5)
    contains = [k for k in known if ident.lower() in k.lower() and k not in close]
    return (close + contains)[:n]


def resolve(con: Con, ident: str, *, where: str = "identifier") -> Resolved:
    """The one run or model ``ident`` names; ``BadInputError`` if none or several."""
    found = _candidates(con, ident.strip())
    if found.empty:
        hints = nearest(con, ident.strip())
        hint = (
            f"Did you mean: {', '.join(hints)}?"
            if hints
            else (
                "Sync runs (`forgetwatch sync`) or ingest evals (`forgetwatch ingest DIR`) first."
            )
        )
        raise BadInputError(
            f"No run or model named {ident!r}",
            hint + " A run id, run name, model path or display name all work.",
            where=where,
        )
    distinct = found.drop_duplicates(["run_id", "model_id"])
    if len(distinct) > 1:
        listed = "; ".join(
            f"{r.label} (run {r.run_id or '-'}, model {r.model_id or '-'})"
            for r in distinct.head(NEAREST).itertuples()
        )
        raise BadInputError(
            f"{len(distinct)} runs or models match {ident!r} by {distinct['matched'].iloc[0]}",
            f"Pass one run id or model path instead: {listed}.",
            where=where,
        )
    row = distinct.iloc[0]
    return Resolved(
        run_id=None if pd.isna(row["run_id"]) else str(row["run_id"]),
        model_id=None if pd.isna(row["model_id"]) else str(row["model_id"]),
        label=str(row["label"]),
        matched=str(row["matched"]),
    )


def resolve_run(con: Con, ident: str, *, where: str = "RUN") -> Resolved:
    """Like ``resolve``, but the identifier must lead to a run (a model's run counts)."""
    found = resolve(con, ident, where=where)
    if found.run_id is None:
        raise BadInputError(
            f"{ident!r} is a model with no MLflow run",
            "Pass a run id or run name (the Runs page lists them), or a model's command "
            "that takes models (`forgetwatch check MODEL`, `forgetwatch flips --model`).",
            where=where,
        )
    return found


def resolve_model(con: Con, ident: str, *, where: str = "MODEL") -> Resolved:
    """Like ``resolve``, but the identifier must lead to an evaluated model (a run's final)."""
    found = resolve(con, ident, where=where)
    if found.model_id is None:
        raise BadInputError(
            f"Run {found.label!r} has no evaluated final model",
            "Evaluate it with `forgetwatch eval`, or ingest its lm-eval results with "
            "`forgetwatch ingest DIR`.",
            where=where,
        )
    return found
