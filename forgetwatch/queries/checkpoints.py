"""Queries behind the Run page's checkpoint section and break-even calculator.

A run's checkpoints are ``models`` rows of kind ``checkpoint``; its final model
sits at the run's last logged step (the Trainer logs ``loss`` up to it), so
checkpoints and final share one step axis. Deltas come from the shared
``scores_cte``, so a curve point equals the Run page's bars for that model.
"""

from __future__ import annotations

import pandas as pd

from forgetwatch.queries.deltas import BASELINE_CAPABILITY, Con, scores_cte

# The run's evaluated checkpoints and final models, each with its step on the run's axis:
# a final model sits at the last logged step (else at the last checkpoint's).
_RUN_MODELS = """
SELECT m.model_id, m.kind,
       coalesce(m.step, (SELECT max(step) FROM run_metrics WHERE run_id = $run_id),
                (SELECT max(step) FROM models WHERE run_id = $run_id)) AS step
FROM models m
WHERE m.run_id = $run_id AND m.kind IN ('checkpoint', 'final')
  AND EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id)"""


def run_checkpoints(con: Con, run_id: str) -> pd.DataFrame:
    """Every checkpoint of the run (by step) with its paths and whether it has an eval.

    What "Evaluate all checkpoints" submits from: the models table, not the disk.
    """
    return con.execute(
        """SELECT m.model_id, m.step, m.path, m.adapter_path,
                  EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id
                          -- a quick check is a partial eval: the checkpoint still needs one
                          AND (e.source_file IS NULL
                               OR e.source_file NOT IN (SELECT source_file FROM partial_evals))
                  ) AS evaluated
           FROM models m
           WHERE m.run_id = ? AND m.kind = 'checkpoint'
           ORDER BY m.step NULLS LAST, m.model_id""",
        [run_id],
    ).df()


def checkpoint_deltas(con: Con, run_id: str) -> pd.DataFrame:
    """Per evaluated checkpoint and final model: step, model_id, kind, capability, delta.

    One row per (model, capability) with a delta vs the base (points as 0..1
    fractions), ordered by step; empty when nothing of the run is evaluated.
    """
    sql = f"""WITH run_models AS ({_RUN_MODELS}),
{scores_cte("SELECT model_id FROM run_models")}
SELECT r.step, r.model_id, r.kind, c.capability, c.delta
FROM cap_delta c JOIN run_models r USING (model_id)
WHERE c.delta IS NOT NULL
ORDER BY r.step, r.kind = 'final', c.capability"""
    return con.execute(sql, {"run_id": run_id}).df()


def checkpoint_summary(con: Con, run_id: str) -> pd.DataFrame:
    """Per evaluated checkpoint and final model: step, kind and the three headline deltas."""
    sql = f"""WITH run_models AS ({_RUN_MODELS}),
{scores_cte("SELECT model_id FROM run_models")}
SELECT r.model_id, r.kind, r.step, d.target_gain, d.general_change, d.hallucination_change
FROM run_models r LEFT JOIN model_delta d USING (model_id)
ORDER BY r.step, r.kind = 'final', r.model_id"""
    return con.execute(sql, {"run_id": run_id}).df()


def icl_baselines(con: Con, run_id: str) -> pd.DataFrame:
    """The run's base model prompted with k examples of the target task (``icl_baseline``).

    One row per baseline task: task, n_shot (k as lm-eval recorded it), value (the
    base's k-shot score), base_target (the base's zero-shot target score, mean over
    target tasks), base_model_id and base_path (for its tokenizer). Empty when the
    base was not evaluated on a baseline task.
    """
    sql = f"""
WITH base AS (
    SELECT b.model_id, b.path FROM models b
    WHERE b.model_id = (SELECT any_value(m.base_model_id) FROM models m
                        WHERE m.run_id = $run_id AND m.base_model_id IS NOT NULL)
),
latest AS (
    SELECT st.task, st.capability, s.value, e.n_shot[st.task] AS n_shot
    FROM scores s
    JOIN suite_tasks st ON st.task = s.task AND st.metric = s.metric AND st.filter = s.filter
    JOIN evals e ON e.eval_id = s.eval_id
    WHERE e.model_id = (SELECT model_id FROM base)
      AND st.capability IN ('{BASELINE_CAPABILITY}', 'target')
    QUALIFY row_number() OVER (
        PARTITION BY st.task
        ORDER BY e.evaluated_at DESC NULLS LAST, e.ingested_at DESC NULLS LAST, e.eval_id DESC
    ) = 1
)
SELECT l.task, TRY_CAST(l.n_shot AS INTEGER) AS n_shot, l.value,
       (SELECT avg(value) FROM latest WHERE capability = 'target') AS base_target,
       (SELECT model_id FROM base) AS base_model_id, (SELECT path FROM base) AS base_path
FROM latest l WHERE l.capability = '{BASELINE_CAPABILITY}'
ORDER BY l.task"""
    return con.execute(sql, {"run_id": run_id}).df()


def run_metric_last(con: Con, run_id: str, key: str) -> float | None:
    """The value of ``key`` at the run's last step (e.g. ``train_runtime`` in seconds)."""
    row = con.execute(
        """SELECT value FROM run_metrics WHERE run_id = ? AND key = ?
           ORDER BY step DESC, ts DESC NULLS LAST LIMIT 1""",
        [run_id, key],
    ).fetchone()
    if row is None:
        row = con.execute(
            "SELECT value FROM run_metric_latest WHERE run_id = ? AND key = ?", [run_id, key]
        ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def best_within_budget(summary: pd.DataFrame, statuses: dict[str, str]) -> pd.Series | None:
    """The row of ``checkpoint_summary`` with the highest target gain whose verdict passes.

    ``statuses`` maps model_id to its budget verdict (pass / review / fail); a
    model without a verdict or a target gain never qualifies. None if none does.
    """
    passing = summary[summary["model_id"].map(statuses).eq("pass") & summary["target_gain"].notna()]
    if passing.empty:
        return None
    return passing.sort_values(["target_gain", "step"], ascending=[False, True]).iloc[0]
