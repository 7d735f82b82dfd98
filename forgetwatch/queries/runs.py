"""Queries behind the Runs and Run pages: run lists, histories, one model's deltas."""

from __future__ import annotations

from typing import Any

import pandas as pd

from forgetwatch.errors import BadInputError
from forgetwatch.queries.deltas import Con, key_params_sql, scores_cte


def db_summary(con: Con) -> dict[str, int]:
    """Row counts for empty states and the status line (cheap: DuckDB counts from metadata).

    ``evaluated_models`` counts models with an eval; ``models`` every row, including the
    checkpoint folders a sync saw but nobody evaluated.
    """
    row = con.execute(
        """SELECT (SELECT count(*) FROM runs WHERE deleted IS NOT TRUE),
                  (SELECT count(*) FROM models),
                  (SELECT count(DISTINCT model_id) FROM evals),
                  (SELECT count(*) FROM evals), (SELECT count(*) FROM scores),
                  (SELECT count(*) FROM samples)"""
    ).fetchone()
    assert row is not None
    keys = ("runs", "models", "evaluated_models", "evals", "scores", "samples")
    return dict(zip(keys, row, strict=True))


def filter_options(con: Con) -> dict[str, list[str]]:
    """Distinct base models (of runs and of run-less models) and methods, for the filters."""
    bases = con.execute(
        """SELECT base_model FROM runs WHERE base_model IS NOT NULL AND deleted IS NOT TRUE
           UNION
           SELECT base_model_id FROM models WHERE run_id IS NULL AND base_model_id IS NOT NULL
           ORDER BY 1"""
    ).fetchall()
    methods = con.execute(
        "SELECT DISTINCT method FROM runs WHERE method IS NOT NULL AND deleted IS NOT TRUE "
        "ORDER BY 1"
    ).fetchall()
    return {"base_model": [v for (v,) in bases], "method": [v for (v,) in methods]}


# Columns the Runs table can be ordered by, and the SQL each one sorts on. Run columns
# sort before the deltas are computed, so a page costs one page of scores; a delta
# column needs every matching run's deltas first.
RUN_SORTS = {
    "start_time": "r.start_time",  # a model row's: its newest eval
    "run_name": "coalesce(r.run_name, r.run_id)",
    "experiment_name": "r.experiment_name",
    "method": "r.method",
    "status": "r.status",
}
# Deltas are float aggregates whose last bits depend on DuckDB's thread order, so two
# runs with the same delta could swap between queries (and a page boundary with them).
# Sorting on the delta rounded far below anything shown makes those ties real ties,
# which the stable tiebreakers then order.
DELTA_SORTS = {
    "target_gain": "round(d.target_gain, 9)",
    "general_change": "round(d.general_change, 9)",
    "hallucination_change": "round(d.hallucination_change, 9)",
}
SORTS = (*RUN_SORTS, *DELTA_SORTS)

# The rows of the "Models and runs" table: every listed run, and every evaluated model
# no run produced (lm-eval outputs ingested without MLflow), labelled by its short name.
# A model row has no run_id; its model_id is ``row_model_id``. Models that only serve
# as other models' bases are not rows: they show as those rows' base.
_RUNS_MATCHING = """
    SELECT r.run_id, r.run_name, r.experiment_name, r.status, r.start_time, r.base_model,
           r.method, r.params, NULL::VARCHAR AS row_model_id, r.run_id AS row_key
    FROM runs r
    WHERE r.deleted IS NOT TRUE  -- marked by a full sync sweep; kept, but not listed
      AND ($search IS NULL OR concat_ws(' ', r.run_id, r.run_name, r.experiment_name,
                                        r.base_model) ILIKE '%' || $search || '%')
      AND ($base_model IS NULL OR r.base_model = $base_model)
      AND ($method IS NULL OR r.method = $method)
    UNION ALL
    SELECT NULL, coalesce(m.display_name, m.model_id), NULL, NULL,
           (SELECT max(e.evaluated_at) FROM evals e WHERE e.model_id = m.model_id),
           m.base_model_id, NULL, NULL::MAP(VARCHAR, VARCHAR), m.model_id,
           'model:' || m.model_id
    FROM models m
    WHERE m.run_id IS NULL AND m.kind <> 'base'
      AND m.model_id IN (SELECT model_id FROM evals)
      AND ($search IS NULL OR concat_ws(' ', m.model_id, m.display_name, m.base_model_id)
                              ILIKE '%' || $search || '%')
      AND ($base_model IS NULL OR m.base_model_id = $base_model)
      AND $method IS NULL"""


def _filter_params(
    search: str | None, base_model: str | None, method: str | None
) -> dict[str, Any]:
    return {"search": search or None, "base_model": base_model, "method": method}


def _order_by(sort: str, descending: bool) -> str:
    """ORDER BY items for ``sort`` (a name from SORTS; never user text pasted as SQL).

    Missing values go last either way, and newest-first then run id break ties, so
    every page boundary is stable.
    """
    column = RUN_SORTS.get(sort) or DELTA_SORTS.get(sort)
    if column is None:
        raise BadInputError(
            f"Unknown sort column {sort!r}",
            f"Sort by one of: {', '.join(SORTS)}.",
            where="sort",
        )
    direction = "DESC" if descending else "ASC"
    return f"{column} {direction} NULLS LAST, r.start_time DESC NULLS LAST, r.row_key"


def runs_count(
    con: Con,
    *,
    search: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
) -> int:
    """How many runs match the Runs page filters (the "of N" of its pager)."""
    sql = f"SELECT count(*) FROM ({_RUNS_MATCHING}) r"
    row = con.execute(sql, _filter_params(search, base_model, method)).fetchone()
    return int(row[0]) if row else 0


def runs_page(
    con: Con,
    *,
    search: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    sort: str = "start_time",
    descending: bool = True,
    limit: int | None = 50,
    offset: int = 0,
) -> pd.DataFrame:
    """One page of runs matching the filters, with key params and the final model's deltas.

    Filtering, ordering (``sort``, one of SORTS) and paging (``limit``/``offset``; a
    ``limit`` of None = every matching run) all happen here, so a page of 50 out of
    10,000 runs reaches pandas as 50 rows. ``search`` matches run name, run id,
    experiment and base model, case-insensitively. Deltas are NULL for runs whose
    final model (or base) has no evals yet; ``model_id`` is that final model.
    """
    order = _order_by(sort, descending)
    params = _filter_params(search, base_model, method)
    paged = ""
    if limit is not None:
        paged = f"ORDER BY {order} LIMIT $limit OFFSET $offset"
        params |= {"limit": limit, "offset": offset}
    # A run column pages first and scores only the page; a delta column scores all.
    early, late = (paged, "") if sort in RUN_SORTS else ("", paged)
    sql = f"""
WITH page AS (
    SELECT * FROM ({_RUNS_MATCHING}) r
    {early}
),
finals AS (  -- one final per run, preferring an evaluated one (as final_model_id does)
    SELECT m.run_id,
           arg_min(m.model_id, (m.model_id NOT IN (SELECT model_id FROM evals), m.model_id))
               AS model_id
    FROM models m JOIN page USING (run_id) WHERE m.kind = 'final' GROUP BY m.run_id
),
row_models AS (  -- the model each row stands for: a run's final, or the model row itself
    SELECT r.row_key, coalesce(f.model_id, r.row_model_id) AS model_id
    FROM page r LEFT JOIN finals f USING (run_id)
),
{scores_cte("SELECT model_id FROM row_models WHERE model_id IS NOT NULL")}
SELECT r.run_id, r.run_name, r.experiment_name, r.status, r.start_time, r.base_model,
       r.method, {key_params_sql()},
       d.target_gain, d.general_change, d.hallucination_change, f.model_id
FROM page r
LEFT JOIN row_models f USING (row_key)
LEFT JOIN model_delta d USING (model_id)
{late or "ORDER BY " + order}
"""
    return con.execute(sql, params).df()


def runs_overview(
    con: Con,
    *,
    search: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Every run matching the filters (or the newest ``limit``), newest first, with deltas.

    ``runs_page`` without paging and without the ``model_id`` column, for callers
    that want the whole list (checks and tests); pages use ``runs_page``.
    """
    runs = runs_page(con, search=search, base_model=base_model, method=method, limit=limit)
    return runs.drop(columns="model_id")


def run_choices(con: Con) -> pd.DataFrame:
    """Every listed run for a picker, newest first: run_id and the label to show.

    The label is the run name, with the run id added where two runs share a name,
    so every choice reads differently. No limit: a picker filters as the user types.
    """
    return con.execute(
        """SELECT r.run_id,
                  CASE WHEN r.run_name IS NULL THEN r.run_id
                       WHEN count(*) OVER (PARTITION BY r.run_name) > 1
                           THEN r.run_name || ' (' || r.run_id || ')'
                       ELSE r.run_name END AS label
           FROM runs r
           WHERE r.deleted IS NOT TRUE
           ORDER BY r.start_time DESC NULLS LAST, r.run_id"""
    ).df()


def run_info(con: Con, run_id: str) -> dict[str, Any] | None:
    """The run's header fields and key params, or None when the run is unknown."""
    df = con.execute(
        f"""SELECT r.run_id, r.run_name, r.experiment_name, r.status, r.start_time,
                   r.end_time, r.base_model, r.method, r.output_dir, {key_params_sql()}
            FROM runs r WHERE r.run_id = ?""",
        [run_id],
    ).df()
    return None if df.empty else df.iloc[0].to_dict()


def metric_keys(con: Con, run_id: str) -> list[str]:
    """Metric names logged by the run, for the training-curve picker."""
    rows = con.execute(
        "SELECT DISTINCT key FROM run_metrics WHERE run_id = ? ORDER BY key", [run_id]
    ).fetchall()
    return [key for (key,) in rows]


def metric_history(con: Con, run_id: str, keys: list[str], max_points: int = 2000) -> pd.DataFrame:
    """Histories of ``keys`` (run_id, key, step, value), at most ~``max_points`` per key.

    Longer histories keep every n-th point plus the last one, chosen in SQL, so a
    million-step run never reaches pandas in full.
    """
    sql = """
WITH h AS (
    SELECT run_id, key, step, value,
           row_number() OVER (PARTITION BY key ORDER BY step, ts) AS rn,
           count(*) OVER (PARTITION BY key) AS n
    FROM run_metrics
    WHERE run_id = $run_id AND list_contains($keys, key)
)
SELECT run_id, key, step, value FROM h
WHERE n <= $max_points OR (rn - 1) % ceil(n / $max_points)::BIGINT = 0 OR rn = n
ORDER BY key, step
"""
    return con.execute(sql, {"run_id": run_id, "keys": keys, "max_points": max_points}).df()


def final_model_id(con: Con, run_id: str) -> str | None:
    """The run's final model, preferring one that has been evaluated."""
    row = con.execute(
        """SELECT m.model_id FROM models m
           WHERE m.run_id = ? AND m.kind = 'final'
           ORDER BY EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id) DESC,
                    m.model_id
           LIMIT 1""",
        [run_id],
    ).fetchone()
    return None if row is None else str(row[0])


def run_models(con: Con, run_id: str) -> pd.DataFrame:
    """The run's evaluated models (final first, then checkpoints by step) for a picker."""
    return con.execute(
        """SELECT m.model_id, m.kind, m.step, coalesce(m.display_name, m.model_id) AS label
           FROM models m
           WHERE m.run_id = ? AND m.kind IN ('final', 'checkpoint')
             AND EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id)
           ORDER BY m.kind = 'final' DESC, m.step NULLS LAST, m.model_id""",
        [run_id],
    ).df()


def task_deltas(con: Con, model_id: str) -> pd.DataFrame:
    """Per suite task: the model's and its base's latest primary score, and the delta.

    ``base_value``/``delta`` are NULL where the base was not evaluated on the task.
    ``n_samples``/``n_original`` are the model's documents scored and in the task
    (fewer scored when --limit cut it); ``higher_is_better`` is the task's direction.
    """
    sql = f"""WITH {scores_cte("SELECT $model_id AS model_id")}
SELECT task, capability, metric, filter, base_value, value, delta, higher_is_better,
       n_samples, n_original
FROM task_delta ORDER BY capability, task"""
    return con.execute(sql, {"model_id": model_id}).df()


def capability_deltas(con: Con, model_id: str) -> pd.DataFrame:
    """Per capability: task count, mean base score, mean score and mean delta.

    Uninformative tasks (``deltas.uninformative_sql``) are left out of the means, as in
    the stored capability tests; with every task uninformative they all count (0.0).
    """
    sql = f"""WITH {scores_cte("SELECT $model_id AS model_id")}
SELECT capability, count(*) AS tasks,
       coalesce(avg(base_value) FILTER (WHERE NOT uninformative), avg(base_value)) AS base_value,
       coalesce(avg(value) FILTER (WHERE NOT uninformative), avg(value)) AS value,
       coalesce(avg(delta) FILTER (WHERE NOT uninformative), avg(delta)) AS delta
FROM task_delta GROUP BY capability ORDER BY capability"""
    return con.execute(sql, {"model_id": model_id}).df()


def model_summary(con: Con, model_id: str) -> dict[str, float | None]:
    """The model's target gain, general change and hallucination change (None if unknown)."""
    sql = f"""WITH {scores_cte("SELECT $model_id AS model_id")}
SELECT target_gain, general_change, hallucination_change FROM model_delta"""
    df = con.execute(sql, {"model_id": model_id}).df()
    columns = ("target_gain", "general_change", "hallucination_change")
    if df.empty:
        return dict.fromkeys(columns)
    return {c: None if pd.isna(df.at[0, c]) else float(df.at[0, c]) for c in columns}


def evaluated_models(con: Con) -> list[str]:
    """Every model with at least one eval."""
    return [str(m) for (m,) in con.execute("SELECT DISTINCT model_id FROM evals").fetchall()]


def judged_models(
    con: Con, *, base_model: str | None = None, method: str | None = None
) -> pd.DataFrame:
    """Every fine-tuned model (final or checkpoint) the analysis has compared with its base.

    What the Runs page's headline judges: one row per model with a stored capability
    delta, named as Compare names it. ``base_model``/``method`` narrow it as the
    page's filters do (None = any). Reads the stored tests, so its cost is one scan
    of ``capability_tests``, not a pairing.
    """
    return con.execute(
        """SELECT m.model_id, m.run_id,
                  coalesce(r.run_name, m.display_name, m.model_id) AS run_name,
                  CASE WHEN m.kind = 'checkpoint' THEN 'checkpoint' ELSE 'final' END AS kind,
                  m.step
           FROM models m LEFT JOIN runs r ON r.run_id = m.run_id
           WHERE m.base_model_id IS NOT NULL AND r.deleted IS NOT TRUE
             AND (m.run_id IS NULL OR m.kind IN ('final', 'checkpoint'))
             AND ($base_model IS NULL OR m.base_model_id = $base_model)
             AND ($method IS NULL OR r.method = $method)
             AND m.model_id IN (SELECT model_id FROM capability_tests
                                WHERE delta IS NOT NULL)
           ORDER BY m.model_id""",
        {"base_model": base_model, "method": method},
    ).df()
