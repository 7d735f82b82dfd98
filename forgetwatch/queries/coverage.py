"""What the database holds but cannot yet show: unevaluated runs, unpaired models, unmapped tasks.

Pages and commands read these to say what to do next, instead of an empty table.
"""

from __future__ import annotations

from dataclasses import dataclass

from forgetwatch.queries.deltas import Con
from forgetwatch.suite import PRIMARY_METRICS


@dataclass(frozen=True)
class Coverage:
    """Counts behind the empty states."""

    runs: int  # listed runs
    runs_without_evals: int  # runs none of whose models has an eval
    evaluated_models: int
    models_without_base: int  # evaluated, not a base of another, no base recorded
    suite_tasks: int  # tasks the stored suite maps
    models_on_suite: int  # evaluated models with a score on a task the suite maps
    unmapped_tasks: list[tuple[str, str, str]]  # (task, metric, filter) no suite maps


def coverage(con: Con) -> Coverage:
    """One pass over runs, models, evals and scores (no samples): cheap on any size."""
    row = con.execute(
        """SELECT
             (SELECT count(*) FROM runs WHERE deleted IS NOT TRUE),
             (SELECT count(*) FROM runs r WHERE r.deleted IS NOT TRUE AND NOT EXISTS (
                 SELECT 1 FROM models m JOIN evals e USING (model_id) WHERE m.run_id = r.run_id)),
             (SELECT count(DISTINCT model_id) FROM evals),
             (SELECT count(*) FROM models m
              WHERE m.base_model_id IS NULL AND m.model_id IN (SELECT model_id FROM evals)
                AND m.model_id NOT IN (SELECT base_model_id FROM models
                                       WHERE base_model_id IS NOT NULL)
                AND m.model_id NOT IN (SELECT base_model FROM runs
                                       WHERE base_model IS NOT NULL)),
             (SELECT count(*) FROM suite_tasks),
             (SELECT count(DISTINCT e.model_id) FROM evals e JOIN scores s USING (eval_id)
              WHERE s.task IN (SELECT task FROM suite_tasks))"""
    ).fetchone()
    assert row is not None
    runs, unevaluated, evaluated, unbased, mapped, on_suite = (int(v) for v in row)
    return Coverage(runs, unevaluated, evaluated, unbased, mapped, on_suite, unmapped_tasks(con))


def unmapped_tasks(con: Con) -> list[tuple[str, str, str]]:
    """Tasks the evals scored that no stored suite maps: (task, primary metric, filter).

    A group's subtasks are left out: listing the group maps them all.
    The metric is the first of ``PRIMARY_METRICS`` the task was scored on, else its
    first metric by name; the filter is ``none`` where the metric has one.
    """
    rows = con.execute(
        """SELECT task, arg_min(metric, (coalesce(list_position($preferred, metric), 999),
                                         metric, filter <> 'none', filter)) AS metric,
                  arg_min(filter, (coalesce(list_position($preferred, metric), 999),
                                   metric, filter <> 'none', filter)) AS filter
           FROM (SELECT DISTINCT task, metric, filter FROM scores)
           WHERE task NOT IN (SELECT task FROM suite_tasks)
             -- a group's subtasks come with the group (mmlu brings its 57 subjects)
             AND task NOT IN (SELECT subtask FROM task_groups)
           GROUP BY task ORDER BY task""",
        {"preferred": list(PRIMARY_METRICS)},
    ).fetchall()
    return [(str(t), str(m), str(f)) for t, m, f in rows]
