"""Reads behind the Evals page's form: what can be evaluated, and how it was evaluated before.

A new eval is only comparable with its base's when both ran the same way, so the
form starts from the settings of the earlier evals (``task_settings``) and marks
checkpoints that already have one (``eval_candidates``). Only *full* evals count:
a quick check or a repeat of the base (``partial_evals``) never stands for a score.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from forgetwatch.queries.deltas import Con

CANDIDATE_COLUMNS = [
    "model_id", "kind", "path", "adapter_path", "run_id", "step", "run_name", "label", "evaluated",
]  # fmt: skip
SETTING_COLUMNS = ["task", "eval_id", "n_shot", "eval_limit", "n_samples", "n_original"]

_FULL_EVAL = (
    "(e.source_file IS NULL OR e.source_file NOT IN (SELECT source_file FROM partial_evals))"
)


def eval_candidates(con: Con) -> pd.DataFrame:
    """Base, final and checkpoint models with a picker label and whether a full eval exists."""
    return con.execute(
        f"""
SELECT m.model_id, m.kind, m.path, m.adapter_path, m.run_id, m.step, r.run_name,
       CASE m.kind
         WHEN 'base' THEN coalesce(m.display_name, m.path)
         -- a model without a run still gets a label (a picker cannot show NULL)
         WHEN 'final' THEN coalesce(r.run_name, m.run_id, m.display_name, m.path) || ' (final)'
         ELSE coalesce(r.run_name, m.run_id, m.display_name, m.path) || ' @ step ' || m.step
       END AS label,
       m.model_id IN (SELECT e.model_id FROM evals e WHERE {_FULL_EVAL}) AS evaluated
FROM models m LEFT JOIN runs r USING (run_id)
WHERE m.kind IN ('base', 'final', 'checkpoint') AND m.path IS NOT NULL
  AND r.deleted IS NOT TRUE
ORDER BY m.kind, label, m.step"""
    ).df()


def model_kind(con: Con, model_id: str) -> tuple[str, str | None] | None:
    """(kind, base_model_id) of a known model; None when the models table lacks it."""
    row = con.execute(
        "SELECT kind, base_model_id FROM models WHERE model_id = ?", [model_id]
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def task_settings(con: Con, model_id: str, tasks: Sequence[str]) -> pd.DataFrame:
    """Per task of ``tasks``: how the model's latest full eval holding it was run.

    Columns: task, eval_id, n_shot (as lm-eval recorded it, text), eval_limit
    (``--limit``; NULL when none), n_samples (documents scored) and n_original
    (documents in the task), in the order of ``tasks``. "Latest" is the rule the deltas use: newest
    ``evaluated_at``, then ``ingested_at``. Tasks never evaluated are absent.
    """
    return con.execute(
        f"""
WITH per_task AS (
    SELECT s.task, e.eval_id, e.evaluated_at, e.ingested_at, e.eval_limit,
           map_extract_value(e.n_shot, s.task) AS n_shot,
           max(s.n_samples) AS n_samples, max(s.n_original) AS n_original
    FROM evals e JOIN scores s USING (eval_id)
    WHERE e.model_id = $model AND {_FULL_EVAL} AND s.task IN (SELECT unnest($tasks))
    GROUP BY ALL
)
SELECT task, eval_id, n_shot, eval_limit, n_samples, n_original FROM per_task
QUALIFY row_number() OVER (
    PARTITION BY task
    ORDER BY evaluated_at DESC NULLS LAST, ingested_at DESC NULLS LAST, eval_id DESC
) = 1
ORDER BY list_position($tasks, task)""",
        {"model": model_id, "tasks": list(tasks)},
    ).df()
