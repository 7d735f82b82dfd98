"""Queries behind the Compare page and review exports: many models against one base."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from forgetwatch.queries.deltas import (
    BASELINE_CAPABILITY,
    CAPABILITY_ORDER,
    Con,
    delta_sql,
    scores_cte,
)
from forgetwatch.queries.runs import filter_options

# When a compared model was made: its run's start, else (no run) its newest eval.
MADE_AT = """coalesce(r.start_time,
                   (SELECT max(e.evaluated_at) FROM evals e WHERE e.model_id = m.model_id))"""
# How a compared model is named: its run, else its own short name.
RUN_NAME = "coalesce(r.run_name, m.display_name, m.model_id)"
# A compared model is a final model unless it is a run's checkpoint: a model with no
# run (kind external or adapter) is drawn and labelled like a run's final.
COMPARED_KIND = "CASE WHEN m.kind = 'checkpoint' THEN 'checkpoint' ELSE 'final' END"
# The runs join every compare query shares: a model without a run (lm-eval outputs
# ingested without MLflow) is compared like a run's final model.
RUNS_JOIN = "LEFT JOIN runs r ON r.run_id = m.run_id"
ORDER = f"{MADE_AT} DESC NULLS LAST, m.run_id NULLS LAST, m.kind = 'checkpoint', m.step, m.model_id"


def _compare_models_sql(include_checkpoints: bool) -> str:
    """Evaluated fine-tuned models matching the Compare filters, newest first.

    A fine-tuned model is any evaluated model with a base: a run's final model or
    checkpoint, or a model with no run whose base a rule or the user recorded.
    Parameters: ``$run_ids`` and ``$model_ids`` (both NULL = every model; else the
    models of those runs plus those models), ``$base_model``, ``$method`` (NULL =
    any) and ``$limit``. Picking the page's models before scoring them keeps cost
    proportional to ``limit``, not to the table.
    """
    checkpoints = "" if include_checkpoints else "AND m.kind <> 'checkpoint'"
    return f"""SELECT m.model_id FROM models m {RUNS_JOIN}
        WHERE m.base_model_id IS NOT NULL {checkpoints}
          AND r.deleted IS NOT TRUE
          AND (m.run_id IS NULL OR m.kind IN ('final', 'checkpoint'))
          AND (($run_ids IS NULL AND $model_ids IS NULL)
               OR list_contains($run_ids, m.run_id) OR list_contains($model_ids, m.model_id))
          AND ($base_model IS NULL OR m.base_model_id = $base_model)
          AND ($method IS NULL OR r.method = $method)
          AND EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id)
        ORDER BY {ORDER}
        LIMIT $limit"""


def _compare_params(
    run_ids: list[str] | None,
    base_model: str | None,
    method: str | None,
    limit: int,
    model_ids: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "run_ids": list(run_ids) if run_ids else None,
        "model_ids": list(model_ids) if model_ids else None,
        "base_model": base_model,
        "method": method,
        "limit": limit,
    }


def compare_points(
    con: Con,
    *,
    include_checkpoints: bool = True,
    limit: int = 5000,
    run_ids: list[str] | None = None,
    base_model: str | None = None,
    method: str | None = None,
    model_ids: list[str] | None = None,
) -> pd.DataFrame:
    """One row per evaluated fine-tuned model (final, and checkpoints if asked).

    Models without any delta (e.g. their base was never evaluated) are left out,
    since they cannot be placed on the gain-vs-forgetting chart. At most ``limit``
    models, the newest first, so a browser never gets tens of thousands of points.
    ``run_ids``/``model_ids``/``base_model``/``method`` narrow the set (None = no
    filter). ``run_name`` is the model's short name where it has no run.
    """
    sql = f"""WITH {scores_cte(_compare_models_sql(include_checkpoints))}
SELECT d.model_id, m.run_id, {RUN_NAME} AS run_name, {COMPARED_KIND} AS kind, m.step, r.method,
       m.base_model_id, d.target_gain, d.general_change, d.hallucination_change
FROM model_delta d
JOIN models m USING (model_id)
{RUNS_JOIN}
WHERE coalesce(d.target_gain, d.general_change, d.hallucination_change) IS NOT NULL
ORDER BY {ORDER}"""
    params = _compare_params(run_ids, base_model, method, limit, model_ids)
    return con.execute(sql, params).df()


def compare_options(con: Con) -> dict[str, list[str]]:
    """Choices for the Compare page filters: runs with evals, base models, methods, tasks."""
    runs = con.execute(
        """SELECT r.run_id FROM runs r
           WHERE r.deleted IS NOT TRUE
             AND EXISTS (SELECT 1 FROM models m JOIN evals e USING (model_id)
                         WHERE m.run_id = r.run_id)
           ORDER BY r.start_time DESC NULLS LAST, r.run_id"""
    ).fetchall()
    bases = con.execute(
        """SELECT base_model_id FROM models WHERE base_model_id IS NOT NULL
             AND model_id IN (SELECT model_id FROM evals)
           GROUP BY 1 ORDER BY count(*) DESC, 1"""
    ).fetchall()
    tasks = con.execute(
        "SELECT task FROM suite_tasks WHERE capability <> ? ORDER BY capability, task",
        [BASELINE_CAPABILITY],
    ).fetchall()
    return {
        "run_id": [v for (v,) in runs],
        "base_model": [v for (v,) in bases],
        "method": filter_options(con)["method"],
        "task": [v for (v,) in tasks],
    }


def run_names(con: Con, run_ids: list[str]) -> dict[str, str]:
    """Display name per run id (the id itself when the run has no name)."""
    rows = con.execute(
        "SELECT run_id, coalesce(run_name, run_id) FROM runs WHERE list_contains(?, run_id)",
        [list(run_ids)],
    ).fetchall()
    return dict(rows)


def comparison_scores(
    con: Con,
    *,
    include_checkpoints: bool = True,
    limit: int = 5000,
    run_ids: list[str] | None = None,
    base_model: str | None = None,
    method: str | None = None,
    tasks: list[str] | None = None,
    model_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Per compared model and suite task: base and model scores with stderrs and settings.

    The same models as ``compare_points`` with the same filters (``tasks`` narrows
    the rows, None = all). ``settings_mismatch`` names what differs between the
    model's eval and the base's eval of the task (n-shot, limit, lm-eval version,
    task hash, chat template), empty when they match.
    """
    sql = f"""WITH {scores_cte(_compare_models_sql(include_checkpoints))}
SELECT t.model_id, m.run_id, {RUN_NAME} AS run_name, {COMPARED_KIND} AS kind, m.step, r.method,
       t.base_model_id, l.capability, l.task, l.metric, l.filter,
       b.value AS base_value, l.value, {delta_sql()} AS delta,
       b.stderr AS base_stderr, l.stderr,
       concat_ws(', ',
           CASE WHEN l.n_shot IS DISTINCT FROM b.n_shot
                THEN 'n-shot ' || coalesce(l.n_shot, '?') || ' vs ' || coalesce(b.n_shot, '?') END,
           CASE WHEN l.eval_limit IS DISTINCT FROM b.eval_limit THEN 'limit' END,
           -- per-task limits (lm-eval's samples=) leave config.limit empty: compare counts
           CASE WHEN l.n_samples IS DISTINCT FROM b.n_samples
                THEN coalesce(l.n_samples::VARCHAR, '?') || ' vs '
                     || coalesce(b.n_samples::VARCHAR, '?') || ' samples' END,
           CASE WHEN l.lm_eval_version IS DISTINCT FROM b.lm_eval_version
                THEN 'lm-eval ' || coalesce(l.lm_eval_version, '?') || ' vs '
                     || coalesce(b.lm_eval_version, '?') END,
           CASE WHEN l.task_hash IS DISTINCT FROM b.task_hash THEN 'task hash' END,
           CASE WHEN l.chat_template_sha IS DISTINCT FROM b.chat_template_sha
                THEN 'chat template' END
       ) AS settings_mismatch
FROM targets t
JOIN latest l ON l.model_id = t.model_id
LEFT JOIN latest b ON b.model_id = t.base_model_id AND b.task = l.task
JOIN models m ON m.model_id = t.model_id
{RUNS_JOIN}
WHERE $tasks IS NULL OR list_contains($tasks, l.task)
ORDER BY {ORDER},
         list_position($capabilities, l.capability) NULLS LAST, l.capability, l.task"""
    params = _compare_params(run_ids, base_model, method, limit, model_ids)
    extra = {"tasks": list(tasks) if tasks else None, "capabilities": list(CAPABILITY_ORDER)}
    return con.execute(sql, params | extra).df()


def eval_provenance(con: Con, model_ids: list[str], tasks: list[str] | None = None) -> pd.DataFrame:
    """Where each model's shown scores came from: one row per (model, eval) actually used.

    Uses the same "latest eval per task" rule as the deltas, so the provenance
    names exactly the evals behind the numbers.
    """
    sql = f"""WITH {scores_cte("SELECT unnest($model_ids) AS model_id")},
used AS (
    SELECT * FROM latest
    WHERE model_id IN (SELECT unnest($model_ids))
      AND ($tasks IS NULL OR list_contains($tasks, task))
),
used_evals AS (  -- grouped before the evals' maps join in: they are cast once per eval
    SELECT model_id, eval_id, string_agg(task, ', ' ORDER BY task) AS tasks
    FROM used GROUP BY model_id, eval_id
),
provenance AS (
SELECT u.model_id, m.kind, r.run_name, m.run_id, u.eval_id, e.lm_eval_version,
       CAST(e.n_shot AS VARCHAR) AS n_shot, e.eval_limit,
       CAST(e.task_hashes AS VARCHAR) AS task_hashes, e.chat_template_sha, e.evaluated_at,
       u.tasks, e.source_file
FROM used_evals u
JOIN evals e USING (eval_id)
JOIN models m ON m.model_id = u.model_id
LEFT JOIN runs r ON r.run_id = m.run_id
)
SELECT * FROM provenance ORDER BY kind = 'base' DESC, model_id, evaluated_at"""
    params = {"model_ids": list(model_ids), "tasks": list(tasks) if tasks else None}
    return con.execute(sql, params).df()


def saved_selection(con: Con, key: str) -> tuple[list[str], list[str]] | None:
    """The runs and models a Compare link's ``?sel=`` key names; None if it is not stored.

    A database written before saved selections existed has no such table: its links
    name runs one by one, so a key there is simply unknown.
    """
    try:
        row = con.execute(
            "SELECT run_ids, model_ids FROM compare_selections WHERE sel_id = ?", [key]
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return None if row is None else (list(row[0] or []), list(row[1] or []))
