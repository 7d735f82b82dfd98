"""Named reads for partial evals: the quick check's inputs, noise floors, quick outcomes.

A partial eval (``partial_evals``: a quick check or a repeat of the base) never
stands for a model's score; these readers find the *full* eval a quick check
starts from, pair a repeat of the base with it, and list what the checks found.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from forgetwatch.queries.deltas import Con

FULL_EVALS = """
    SELECT e.* FROM evals e
    WHERE e.source_file IS NULL
       OR e.source_file NOT IN (SELECT source_file FROM partial_evals)
"""


def base_of(con: Con, model_id: str) -> str | None:
    """The model's base (``models.base_model_id``), or None when it has none or is unknown."""
    row = con.execute("SELECT base_model_id FROM models WHERE model_id = ?", [model_id]).fetchone()
    return None if row is None else row[0]


def latest_full_evals(
    con: Con, model_id: str, tasks: Sequence[tuple[str, str, str]]
) -> pd.DataFrame:
    """Per (task, metric, filter) of ``tasks``: the model's most recent full eval holding it.

    Columns: task, metric, filter, eval_id, source_file, higher_is_better.
    """
    wanted = {k: [t[i] for t in tasks] for i, k in enumerate(("t", "m", "f"))}
    return con.execute(
        f"""SELECT w.task, w.metric, w.filter, e.eval_id, e.source_file,
                   coalesce(s.higher_is_better, true) AS higher_is_better
            FROM (SELECT unnest($t) AS task, unnest($m) AS metric, unnest($f) AS filter) w
            JOIN scores s ON s.task = w.task AND s.metric = w.metric AND s.filter = w.filter
            JOIN ({FULL_EVALS}) e ON e.eval_id = s.eval_id
            WHERE e.model_id = $model
            QUALIFY row_number() OVER (
                PARTITION BY w.task
                ORDER BY e.evaluated_at DESC NULLS LAST, e.ingested_at DESC NULLS LAST,
                         e.eval_id DESC) = 1
            ORDER BY w.task""",
        {"model": model_id, **wanted},
    ).df()


def item_values(con: Con, eval_id: str, task: str, metric: str, filter_: str) -> pd.DataFrame:
    """The eval's per-item values of one task's metric: doc_id, value (by doc_id)."""
    return con.execute(
        """SELECT doc_id, value FROM samples
           WHERE eval_id = ? AND task = ? AND metric = ? AND filter = ? AND value IS NOT NULL
           ORDER BY doc_id""",
        [eval_id, task, metric, filter_],
    ).df()


def eval_of_source(con: Con, source_file: str) -> str | None:
    row = con.execute("SELECT eval_id FROM evals WHERE source_file = ?", [source_file]).fetchone()
    return None if row is None else row[0]


def repeat_flips(con: Con, reference_eval: str, repeat_eval: str) -> pd.DataFrame:
    """Per (task, metric, filter) both evals hold: paired items, flips, mean |difference|.

    A 0/1 item flips when its outcome differs; a continuous one when it moved at all.
    """
    return con.execute(
        """SELECT a.task, a.metric, a.filter, count(*) AS n_pairs,
                  count(*) FILTER (WHERE abs(a.value - b.value) > 1e-9) AS flips,
                  avg(abs(a.value - b.value)) AS mean_abs_diff
           FROM samples a
           JOIN samples b ON b.task = a.task AND b.doc_id = a.doc_id
                         AND b.metric = a.metric AND b.filter = a.filter
           WHERE a.eval_id = ? AND b.eval_id = ?
             AND a.value IS NOT NULL AND b.value IS NOT NULL
           GROUP BY ALL ORDER BY a.task, a.metric, a.filter""",
        [reference_eval, repeat_eval],
    ).df()


NOISE_COLUMNS = ["model_id", "task", "metric", "filter", "n_pairs", "flips", "flip_rate",
                 "mean_abs_diff", "settings", "measured_at"]  # fmt: skip


def noise_floors(con: Con, model_ids: Sequence[str]) -> pd.DataFrame:
    """The stored noise floor of each of ``model_ids`` (bases), one row per task metric."""
    if not _has(con, "noise_floor"):
        return pd.DataFrame(columns=NOISE_COLUMNS)
    return con.execute(
        f"""SELECT {", ".join(NOISE_COLUMNS)} FROM noise_floor
            WHERE model_id IN (SELECT unnest($ids)) ORDER BY model_id, task""",
        {"ids": list(model_ids)},
    ).df()


QUICK_COLUMNS = ["job_id", "model_id", "base_model_id", "capability", "outcome", "look",
                 "delta", "ci_low", "ci_high", "n_used", "n_items", "checked_at"]  # fmt: skip


def quick_checks(con: Con, job_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Stored quick-check outcomes (all, or of ``job_ids``), newest first."""
    if not _has(con, "quick_checks"):
        return pd.DataFrame(columns=QUICK_COLUMNS)
    where = "WHERE job_id IN (SELECT unnest($ids))" if job_ids is not None else ""
    return con.execute(
        f"""SELECT {", ".join(QUICK_COLUMNS)} FROM quick_checks {where}
            ORDER BY checked_at DESC, job_id, capability""",
        {"ids": list(job_ids)} if job_ids is not None else {},
    ).df()


def _has(con: Con, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
        [table],
    ).fetchone()
    return bool(row and row[0])
