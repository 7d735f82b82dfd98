"""Every SQL query the dashboard (and the CLI) runs, as named functions.

Each function takes an open DuckDB connection and returns a DataFrame or a small
dict. Work stays in SQL so pages hold only what they show: aggregates are
computed in the database, lists are LIMITed, and long metric histories are
downsampled before they reach pandas. Pages never build SQL themselves.

Delta semantics (docs/schema.md): per task in ``suite_tasks``, a model's score
is its most recent eval (``evaluated_at``, then ``ingested_at``) on the task's
primary metric/filter; delta = score(model) - score(base). Capability delta is
the mean of its tasks' deltas; general change is the mean of the ``knowledge``,
``code`` and ``instructions`` capability deltas; hallucination change is the
change of ``1 - score`` on ``hallucination`` tasks (positive = worse).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

Con = duckdb.DuckDBPyConnection

GENERAL_CAPABILITIES = ("knowledge", "code", "instructions")
# Reading order in comparison tables: what was gained, then what may have been lost.
CAPABILITY_ORDER = ("target", *GENERAL_CAPABILITIES, "hallucination")

# Key training params shown per run, each read from the first MLflow param name present.
KEY_PARAMS: dict[str, tuple[str, ...]] = {
    "learning_rate": ("learning_rate",),
    "num_train_epochs": ("num_train_epochs",),
    "max_steps": ("max_steps",),
    "lora_r": ("lora_r", "lora_rank", "r"),
}


def _key_params_sql(alias: str = "r") -> str:
    """SELECT-list items reading ``KEY_PARAMS`` from the ``params`` MAP of runs ``alias``.

    MLflow logs "-1"/"None" for unset values; those read as NULL. The HF Trainer logs
    LoRA settings only inside ``peft_config`` ("{'default': LoraConfig(..., r=8, ...)}"),
    so the LoRA rank falls back to parsing it.
    """
    items = []
    for name, keys in KEY_PARAMS.items():
        reads = ", ".join(f"{alias}.params['{key}']" for key in keys)
        if name == "lora_r":
            peft = f"{alias}.params['peft_config']"
            reads += rf", nullif(regexp_extract({peft}, '\br=(\d+)', 1), '')"
        items.append(f"nullif(nullif(coalesce({reads}), 'None'), '-1') AS {name}")
    return ",\n       ".join(items)


def _scores_cte(models_sql: str) -> str:
    """CTEs ``wanted``/``latest``/``task_delta``/``model_delta`` for the models in ``models_sql``.

    ``models_sql`` selects ``model_id`` of the fine-tuned models of interest; only
    their scores and their bases' scores are read, so cost follows the page, not
    the whole table. ``model_delta`` has one row per model with target_gain,
    general_change and hallucination_change.
    """
    return f"""
wanted AS ({models_sql}),
targets AS (
    SELECT m.model_id, m.base_model_id FROM models m JOIN wanted USING (model_id)
),
latest AS (
    SELECT e.model_id, st.task, st.capability, st.metric, st.filter, s.value, s.stderr,
           s.n_samples, e.eval_id, e.lm_eval_version, e.n_shot[st.task] AS n_shot, e.eval_limit,
           e.task_hashes[st.task] AS task_hash, e.chat_template_sha, e.evaluated_at
    FROM scores s
    JOIN suite_tasks st ON st.task = s.task AND st.metric = s.metric AND st.filter = s.filter
    JOIN evals e ON e.eval_id = s.eval_id
    WHERE e.model_id IN (SELECT model_id FROM targets UNION SELECT base_model_id FROM targets)
    QUALIFY row_number() OVER (
        PARTITION BY e.model_id, st.task
        ORDER BY e.evaluated_at DESC NULLS LAST, e.ingested_at DESC NULLS LAST, e.eval_id DESC
    ) = 1
),
task_delta AS (
    SELECT t.model_id, l.task, l.capability, l.metric, l.filter,
           b.value AS base_value, l.value, l.value - b.value AS delta
    FROM targets t
    JOIN latest l ON l.model_id = t.model_id
    LEFT JOIN latest b ON b.model_id = t.base_model_id AND b.task = l.task
),
cap_delta AS (
    SELECT model_id, capability, avg(delta) AS delta
    FROM task_delta GROUP BY model_id, capability
),
model_delta AS (
    SELECT model_id,
           max(delta) FILTER (WHERE capability = 'target') AS target_gain,
           avg(delta) FILTER (WHERE capability IN {GENERAL_CAPABILITIES}) AS general_change,
           -max(delta) FILTER (WHERE capability = 'hallucination') AS hallucination_change
    FROM cap_delta GROUP BY model_id
)"""


def db_summary(con: Con) -> dict[str, int]:
    """Row counts for empty states and the status line (cheap: DuckDB counts from metadata)."""
    row = con.execute(
        """SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM models),
                  (SELECT count(*) FROM evals), (SELECT count(*) FROM scores),
                  (SELECT count(*) FROM samples)"""
    ).fetchone()
    assert row is not None
    return dict(zip(("runs", "models", "evals", "scores", "samples"), row, strict=True))


def filter_options(con: Con) -> dict[str, list[str]]:
    """Distinct base models and methods, for the Runs page filter widgets."""
    return {
        column: [
            v
            for (v,) in con.execute(
                f"SELECT DISTINCT {column} FROM runs WHERE {column} IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        for column in ("base_model", "method")
    }


def runs_overview(
    con: Con,
    *,
    search: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """One row per run (newest first) with key params and its final model's deltas.

    ``search`` matches run name, run id, experiment and base model, case-insensitively.
    Deltas are NULL for runs whose final model (or base) has no evals yet.
    """
    sql = f"""
WITH page AS (
    SELECT * FROM runs r
    WHERE ($search IS NULL OR concat_ws(' ', r.run_id, r.run_name, r.experiment_name,
                                        r.base_model) ILIKE '%' || $search || '%')
      AND ($base_model IS NULL OR r.base_model = $base_model)
      AND ($method IS NULL OR r.method = $method)
    ORDER BY r.start_time DESC NULLS LAST, r.run_id
    LIMIT $limit
),
finals AS (  -- one final per run, preferring an evaluated one (as final_model_id does)
    SELECT m.run_id,
           arg_min(m.model_id, (m.model_id NOT IN (SELECT model_id FROM evals), m.model_id))
               AS model_id
    FROM models m JOIN page USING (run_id) WHERE m.kind = 'final' GROUP BY m.run_id
),
{_scores_cte("SELECT model_id FROM finals")}
SELECT r.run_id, r.run_name, r.experiment_name, r.status, r.start_time, r.base_model,
       r.method, {_key_params_sql()},
       d.target_gain, d.general_change, d.hallucination_change
FROM page r
LEFT JOIN finals f USING (run_id)
LEFT JOIN model_delta d USING (model_id)
ORDER BY r.start_time DESC NULLS LAST, r.run_id
"""
    params = {"search": search or None, "base_model": base_model, "method": method, "limit": limit}
    return con.execute(sql, params).df()


def run_info(con: Con, run_id: str) -> dict[str, Any] | None:
    """The run's header fields and key params, or None when the run is unknown."""
    df = con.execute(
        f"""SELECT r.run_id, r.run_name, r.experiment_name, r.status, r.start_time,
                   r.end_time, r.base_model, r.method, r.output_dir, {_key_params_sql()}
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
    """
    sql = f"""WITH {_scores_cte("SELECT $model_id AS model_id")}
SELECT task, capability, metric, filter, base_value, value, delta
FROM task_delta ORDER BY capability, task"""
    return con.execute(sql, {"model_id": model_id}).df()


def capability_deltas(con: Con, model_id: str) -> pd.DataFrame:
    """Per capability: task count, mean base score, mean score and mean delta."""
    sql = f"""WITH {_scores_cte("SELECT $model_id AS model_id")}
SELECT capability, count(*) AS tasks, avg(base_value) AS base_value,
       avg(value) AS value, avg(delta) AS delta
FROM task_delta GROUP BY capability ORDER BY capability"""
    return con.execute(sql, {"model_id": model_id}).df()


def model_summary(con: Con, model_id: str) -> dict[str, float | None]:
    """The model's target gain, general change and hallucination change (None if unknown)."""
    sql = f"""WITH {_scores_cte("SELECT $model_id AS model_id")}
SELECT target_gain, general_change, hallucination_change FROM model_delta"""
    df = con.execute(sql, {"model_id": model_id}).df()
    columns = ("target_gain", "general_change", "hallucination_change")
    if df.empty:
        return dict.fromkeys(columns)
    return {c: None if pd.isna(df.at[0, c]) else float(df.at[0, c]) for c in columns}


def _compare_models_sql(include_checkpoints: bool) -> str:
    """Evaluated fine-tuned models matching the Compare filters, newest runs first.

    Parameters: ``$run_ids`` (NULL = every run), ``$base_model``, ``$method`` (NULL =
    any) and ``$limit``. Picking the page's models before scoring them keeps cost
    proportional to ``limit``, not to the table.
    """
    kinds = "('final', 'checkpoint')" if include_checkpoints else "('final')"
    return f"""SELECT m.model_id FROM models m JOIN runs r ON r.run_id = m.run_id
        WHERE m.kind IN {kinds} AND m.base_model_id IS NOT NULL
          AND ($run_ids IS NULL OR list_contains($run_ids, m.run_id))
          AND ($base_model IS NULL OR m.base_model_id = $base_model)
          AND ($method IS NULL OR r.method = $method)
          AND EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id)
        ORDER BY r.start_time DESC NULLS LAST, m.run_id, m.kind = 'final' DESC, m.step
        LIMIT $limit"""


def _compare_params(
    run_ids: list[str] | None, base_model: str | None, method: str | None, limit: int
) -> dict[str, Any]:
    return {
        "run_ids": list(run_ids) if run_ids else None,
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
) -> pd.DataFrame:
    """One row per evaluated fine-tuned model (final, and checkpoints if asked).

    Models without any delta (e.g. their base was never evaluated) are left out,
    since they cannot be placed on the gain-vs-forgetting chart. At most ``limit``
    models, from the newest runs, so a browser never gets tens of thousands of points.
    ``run_ids``/``base_model``/``method`` narrow the set (None = no filter).
    """
    sql = f"""WITH {_scores_cte(_compare_models_sql(include_checkpoints))}
SELECT d.model_id, m.run_id, r.run_name, m.kind, m.step, r.method, m.base_model_id,
       d.target_gain, d.general_change, d.hallucination_change
FROM model_delta d
JOIN models m USING (model_id)
JOIN runs r ON r.run_id = m.run_id
WHERE coalesce(d.target_gain, d.general_change, d.hallucination_change) IS NOT NULL
ORDER BY r.start_time DESC NULLS LAST, m.run_id, m.kind = 'final' DESC, m.step"""
    return con.execute(sql, _compare_params(run_ids, base_model, method, limit)).df()


def compare_options(con: Con) -> dict[str, list[str]]:
    """Choices for the Compare page filters: runs with evals, base models, methods, tasks."""
    runs = con.execute(
        """SELECT r.run_id FROM runs r
           WHERE EXISTS (SELECT 1 FROM models m JOIN evals e USING (model_id)
                         WHERE m.run_id = r.run_id)
           ORDER BY r.start_time DESC NULLS LAST, r.run_id"""
    ).fetchall()
    bases = con.execute(
        """SELECT base_model_id FROM models WHERE base_model_id IS NOT NULL
             AND kind IN ('final', 'checkpoint')
           GROUP BY 1 ORDER BY count(*) DESC, 1"""
    ).fetchall()
    tasks = con.execute("SELECT task FROM suite_tasks ORDER BY capability, task").fetchall()
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
) -> pd.DataFrame:
    """Per compared model and suite task: base and model scores with stderrs and settings.

    The same models as ``compare_points`` with the same filters (``tasks`` narrows
    the rows, None = all). ``settings_mismatch`` names what differs between the
    model's eval and the base's eval of the task (n-shot, limit, lm-eval version,
    task hash, chat template), empty when they match.
    """
    sql = f"""WITH {_scores_cte(_compare_models_sql(include_checkpoints))}
SELECT t.model_id, m.run_id, r.run_name, m.kind, m.step, r.method, t.base_model_id,
       l.capability, l.task, l.metric, l.filter,
       b.value AS base_value, l.value, l.value - b.value AS delta,
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
JOIN runs r ON r.run_id = m.run_id
WHERE $tasks IS NULL OR list_contains($tasks, l.task)
ORDER BY r.start_time DESC NULLS LAST, m.run_id, m.kind = 'final' DESC, m.step,
         list_position($capabilities, l.capability) NULLS LAST, l.capability, l.task"""
    params = _compare_params(run_ids, base_model, method, limit)
    extra = {"tasks": list(tasks) if tasks else None, "capabilities": list(CAPABILITY_ORDER)}
    return con.execute(sql, params | extra).df()


def eval_provenance(con: Con, model_ids: list[str], tasks: list[str] | None = None) -> pd.DataFrame:
    """Where each model's shown scores came from: one row per (model, eval) actually used.

    Uses the same "latest eval per task" rule as the deltas, so the provenance
    names exactly the evals behind the numbers.
    """
    sql = f"""WITH {_scores_cte("SELECT unnest($model_ids) AS model_id")},
used AS (
    SELECT * FROM latest
    WHERE model_id IN (SELECT unnest($model_ids))
      AND ($tasks IS NULL OR list_contains($tasks, task))
),
provenance AS (
SELECT u.model_id, m.kind, r.run_name, m.run_id, u.eval_id,
       any_value(e.lm_eval_version) AS lm_eval_version,
       CAST(any_value(e.n_shot) AS VARCHAR) AS n_shot,
       any_value(e.eval_limit) AS eval_limit,
       CAST(any_value(e.task_hashes) AS VARCHAR) AS task_hashes,
       any_value(e.chat_template_sha) AS chat_template_sha,
       any_value(e.evaluated_at) AS evaluated_at,
       string_agg(u.task, ', ' ORDER BY u.task) AS tasks,
       any_value(e.source_file) AS source_file
FROM used u
JOIN evals e USING (eval_id)
JOIN models m ON m.model_id = u.model_id
LEFT JOIN runs r ON r.run_id = m.run_id
GROUP BY ALL
)
SELECT * FROM provenance ORDER BY kind = 'base' DESC, model_id, evaluated_at"""
    params = {"model_ids": list(model_ids), "tasks": list(tasks) if tasks else None}
    return con.execute(sql, params).df()
