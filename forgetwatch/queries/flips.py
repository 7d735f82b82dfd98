"""Queries behind the Flips page: which examples a fine-tune got newly wrong (or right).

A flip pairs one sample of the fine-tune's eval with the same sample of its
base's eval: same task, doc_id, metric and filter, and the same doc hash when
both have one (a changed dataset is not a flip). Each side's eval is its most
recent one with samples for the task, the rule the deltas use. Only 0/1 outcomes
flip; continuous per-sample scores (TruthfulQA mc2's ``acc``) are left out.

A samples task is placed under the suite task it is, or the suite group whose
name it starts with (``mmlu_anatomy`` under ``mmlu``), and then only that suite
task's primary metric/filter counts. A task outside the suite falls under the
capability ``other`` and counts one metric too, the first of
``suite.PRIMARY_METRICS`` it has (else its first by name): flips are counted per
question, so ``acc`` and ``acc_norm`` never count one question twice.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from forgetwatch.queries.deltas import CAPABILITY_ORDER, Con
from forgetwatch.suite import PRIMARY_METRICS

Direction = Literal["right_to_wrong", "wrong_to_right"]
DIRECTIONS: tuple[Direction, ...] = ("right_to_wrong", "wrong_to_right")

_PAIRED_CTE = """
side AS MATERIALIZED (  -- one scan of samples: both models' rows, with their eval's recency
    SELECT e.model_id, e.evaluated_at, e.ingested_at, s.*
    FROM samples s JOIN evals e ON e.eval_id = s.eval_id
    WHERE e.model_id IN ($model_id, $base_model_id)
),
chosen AS (  -- per model and task, the latest eval that logged samples
    SELECT DISTINCT model_id, task, eval_id, evaluated_at, ingested_at FROM side
    QUALIFY row_number() OVER (
        PARTITION BY model_id, task
        ORDER BY evaluated_at DESC NULLS LAST, ingested_at DESC NULLS LAST, eval_id DESC
    ) = 1
),
outcomes AS MATERIALIZED (
    SELECT s.* EXCLUDE (evaluated_at, ingested_at)
    FROM side s JOIN chosen c ON c.eval_id = s.eval_id AND c.task = s.task
    WHERE s.value IN (0, 1)
),
first_metric AS (  -- a task no suite maps: its primary-looking metric, so one flip per doc
    SELECT task,
           arg_min(metric, (coalesce(list_position($preferred, metric), 999), metric,
                            filter <> 'none', filter)) AS metric,
           arg_min(filter, (coalesce(list_position($preferred, metric), 999), metric,
                            filter <> 'none', filter)) AS filter
    FROM (SELECT DISTINCT task, metric, filter FROM outcomes) GROUP BY task
),
meta AS (  -- the suite task each samples task belongs to: itself, else the longest prefix
    SELECT o.task, st.capability, coalesce(st.metric, fm.metric) AS metric,
           coalesce(st.filter, fm.filter) AS filter
    FROM (SELECT DISTINCT task FROM outcomes) o
    LEFT JOIN suite_tasks st ON o.task = st.task OR starts_with(o.task, st.task || '_')
    JOIN first_metric fm ON fm.task = o.task
    QUALIFY row_number() OVER (PARTITION BY o.task ORDER BY length(st.task) DESC NULLS LAST) = 1
),
paired AS (
    SELECT coalesce(meta.capability, 'other') AS capability, m.task, m.doc_id, m.metric,
           m.filter, coalesce(m.prompt, b.prompt) AS prompt, m.target,
           b.response AS base_response, m.response, m.doc_hash, m.prompt_hash,
           m.eval_id, b.eval_id AS base_eval_id,
           CASE WHEN b.value = 1 AND m.value = 0 THEN 'right_to_wrong'
                WHEN b.value = 0 AND m.value = 1 THEN 'wrong_to_right'
                WHEN m.value = 1 THEN 'both_right' ELSE 'both_wrong' END AS outcome
    FROM outcomes m
    JOIN outcomes b ON b.model_id = $base_model_id AND b.task = m.task
         AND b.doc_id = m.doc_id AND b.metric = m.metric AND b.filter = m.filter
         AND (b.doc_hash IS NULL OR m.doc_hash IS NULL OR b.doc_hash = m.doc_hash)
    JOIN meta ON meta.task = m.task
    WHERE m.model_id = $model_id AND m.metric = meta.metric AND m.filter = meta.filter
)"""

_ORDER = "list_position($capabilities, capability) NULLS LAST, capability, task"


def flip_models(con: Con) -> pd.DataFrame:
    """Fine-tuned models (finals, checkpoints, adapters) with samples, newest runs first.

    Columns: model_id, kind, step, run_id, run_name, base_model_id, label,
    base_has_samples (False when the base is unknown or logged no samples).
    """
    return con.execute(
        """WITH sampled AS (
               SELECT DISTINCT e.model_id FROM evals e
               WHERE EXISTS (SELECT 1 FROM samples s WHERE s.eval_id = e.eval_id)
           )
           SELECT m.model_id, m.kind, m.step, m.run_id, r.run_name, m.base_model_id,
                  coalesce(r.run_name, m.display_name, m.model_id)
                      || CASE WHEN m.kind = 'checkpoint' AND m.step IS NOT NULL
                              THEN ' @' || m.step ELSE '' END AS label,
                  m.base_model_id IN (SELECT model_id FROM sampled) AS base_has_samples
           FROM models m JOIN sampled USING (model_id)
           LEFT JOIN runs r ON r.run_id = m.run_id
           WHERE m.kind <> 'base' AND r.deleted IS NOT TRUE
           ORDER BY r.start_time DESC NULLS LAST, m.run_id, m.kind = 'final' DESC, m.step,
                    m.model_id"""
    ).df()


def recorded_base(con: Con, model_id: str) -> str | None:
    """The base model recorded for ``model_id``, if any."""
    row = con.execute("SELECT base_model_id FROM models WHERE model_id = ?", [model_id]).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def sampled_models(con: Con) -> list[str]:
    """Every model with samples: the choices for "compare against" besides the recorded base."""
    rows = con.execute(
        """SELECT DISTINCT e.model_id FROM evals e
           WHERE EXISTS (SELECT 1 FROM samples s WHERE s.eval_id = e.eval_id) ORDER BY 1"""
    ).fetchall()
    return [m for (m,) in rows]


def flip_counts(con: Con, model_id: str, base_model_id: str) -> pd.DataFrame:
    """Per task (or subtask): paired samples and how many flipped each way.

    Columns: capability, task, metric, filter, n_pairs, right_to_wrong,
    wrong_to_right, both_right, both_wrong; capabilities in CAPABILITY_ORDER.
    """
    sql = f"""WITH {_PAIRED_CTE}
SELECT capability, task, metric, filter, count(*) AS n_pairs,
       count(*) FILTER (WHERE outcome = 'right_to_wrong') AS right_to_wrong,
       count(*) FILTER (WHERE outcome = 'wrong_to_right') AS wrong_to_right,
       count(*) FILTER (WHERE outcome = 'both_right') AS both_right,
       count(*) FILTER (WHERE outcome = 'both_wrong') AS both_wrong
FROM paired GROUP BY capability, task, metric, filter ORDER BY {_ORDER}, metric, filter"""
    return con.execute(sql, _params(model_id, base_model_id)).df()


def flip_examples(
    con: Con,
    model_id: str,
    base_model_id: str,
    *,
    tasks: list[str] | None = None,
    direction: Direction | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pd.DataFrame:
    """One page of flipped examples: target, the base's and the fine-tune's responses.

    ``search`` matches task, doc id, prompt, target and both responses case-insensitively
    (ILIKE, in the database); ``direction`` None means both ways. ``total`` on
    every row is the match count before paging, for the pager. Ordered by
    capability (CAPABILITY_ORDER), task, doc id.

    A multiple-choice example also has ``choices`` (texts), ``gold`` (the correct
    choice's index) and each side's per-choice ``loglikelihoods`` /
    ``base_loglikelihoods``, from ``sample_choices``; they are NULL for generation
    tasks and for evals stored before choices were read. They are joined to the
    page only, so paging and counting never read them.
    """
    sql = f"""WITH {_PAIRED_CTE},
page AS (
    SELECT capability, task, doc_id, outcome AS direction, prompt, target, base_response,
           response, metric, filter, doc_hash, prompt_hash, eval_id, base_eval_id,
           count(*) OVER () AS total
    FROM paired
    WHERE outcome IN ('right_to_wrong', 'wrong_to_right')
      AND ($direction IS NULL OR outcome = $direction)
      AND ($tasks IS NULL OR list_contains($tasks, task))
      AND ($search IS NULL
           OR concat_ws(' ', task, doc_id, prompt, target, base_response, response)
              ILIKE '%' || $search || '%')
    ORDER BY {_ORDER}, doc_id, metric, filter
    LIMIT $limit OFFSET $offset
)
SELECT p.* EXCLUDE (eval_id, base_eval_id, total),
       coalesce(mc.choices, bc.choices) AS choices, coalesce(mc.gold, bc.gold) AS gold,
       mc.loglikelihoods, bc.loglikelihoods AS base_loglikelihoods, p.total
FROM page p
LEFT JOIN sample_choices mc ON mc.eval_id = p.eval_id AND mc.task = p.task
     AND mc.doc_id = p.doc_id AND mc.filter = p.filter
LEFT JOIN sample_choices bc ON bc.eval_id = p.base_eval_id AND bc.task = p.task
     AND bc.doc_id = p.doc_id AND bc.filter = p.filter
ORDER BY {_ORDER}, doc_id, metric, filter"""
    params = _params(model_id, base_model_id) | {
        "tasks": list(tasks) if tasks else None,
        "direction": direction,
        "search": search or None,
        "limit": limit,
        "offset": offset,
    }
    return con.execute(sql, params).df()


def forgotten(
    con: Con,
    model_id: str,
    base_model_id: str,
    *,
    tasks: list[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pd.DataFrame:
    """ "What did we forget": right -> wrong examples, capability by capability.

    ``tasks`` narrows it as the page's task filter does (None = every task).
    """
    return flip_examples(
        con, model_id, base_model_id, tasks=tasks, direction="right_to_wrong", limit=limit,
        offset=offset,
    )  # fmt: skip


def _params(model_id: str, base_model_id: str) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "base_model_id": base_model_id,
        "capabilities": list(CAPABILITY_ORDER),
        "preferred": list(PRIMARY_METRICS),
    }
