"""The SQL every delta shares: latest scores per model and task, against the base.

Delta semantics (docs/schema.md): per task in ``suite_tasks``, a model's score
is its most recent eval (``evaluated_at``, then ``ingested_at``) on the task's
primary metric/filter; delta = score(model) - score(base). Capability delta is
the mean of its tasks' deltas; general change is the mean of the ``knowledge``,
``code`` and ``instructions`` capability deltas; hallucination change is the
change of ``1 - score`` on ``hallucination`` tasks (positive = worse). Tasks of
capability ``icl_baseline`` (k-shot prompting of the base) are never deltas.

A task is **uninformative** for a model-vs-base comparison when both sides score 0,
or both 1 (100 points): a score is the mean of per-item values in [0, 1], so every
item of both evals sits at that bound, no item can flip, and the delta is 0 by
construction (``uninformative_sql``). Such a task stays in ``task_delta`` (flagged)
but is left out of the capability mean; a capability whose every task is
uninformative keeps them all, and so reads 0.0: nothing changed, and a model that
kept a perfect score is judged rather than left with no delta.

Every delta reads "+ = better": a task whose metric is lower-is-better (perplexity,
ter) has delta = score(base) - score(model). Its direction is the suite's
``higher_is_better`` (``suite_directions``), else the results file's, else higher is
better; ``latest.higher_is_better`` carries it and ``DELTA_SQL`` applies it.
"""

from __future__ import annotations

import duckdb

Con = duckdb.DuckDBPyConnection


def delta_sql(model: str = "l", base: str = "b") -> str:
    """The "+ = better" delta of ``latest`` rows ``model`` against ``base``."""
    return (
        f"CASE WHEN {model}.higher_is_better THEN {model}.value - {base}.value "
        f"ELSE {base}.value - {model}.value END"
    )


def uninformative_sql(model: str = "l", base: str = "b") -> str:
    """True where ``model`` and ``base`` both score 0, or both 1: no item could flip.

    The one rule, shared by the capability means here and the stored analysis
    (``queries.pairing``), so a page's capability delta and its stored test leave
    out the same tasks. False where the base has no score.
    """
    return f"coalesce({model}.value = {base}.value AND {model}.value IN (0, 1), false)"


GENERAL_CAPABILITIES = ("knowledge", "code", "instructions")
# Reading order in comparison tables: what was gained, then what may have been lost.
CAPABILITY_ORDER = ("target", *GENERAL_CAPABILITIES, "hallucination")
# Suite tasks with this capability (the base model with k-shot prompting on the target
# task) are comparison lines, not regression tasks: no delta reads them.
BASELINE_CAPABILITY = "icl_baseline"

# Key training params shown per run, each read from the first MLflow param name present.
KEY_PARAMS: dict[str, tuple[str, ...]] = {
    "learning_rate": ("learning_rate",),
    "num_train_epochs": ("num_train_epochs",),
    "max_steps": ("max_steps",),
    "lora_r": ("lora_r", "lora_rank", "r"),
}


def key_params_sql(alias: str = "r") -> str:
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


def scores_cte(models_sql: str) -> str:
    """CTEs ``wanted``/``latest``/``task_delta``/``model_delta`` for the models in ``models_sql``.

    ``models_sql`` selects ``model_id`` of the fine-tuned models of interest; only
    their scores and their bases' scores are read, so cost follows the page, not
    the whole table. ``task_delta`` flags ``uninformative`` tasks, which ``cap_delta``
    leaves out of its means. ``model_delta`` has one row per model with target_gain,
    general_change and hallucination_change.
    """
    return f"""
wanted AS ({models_sql}),
targets AS (
    SELECT m.model_id, m.base_model_id FROM models m JOIN wanted USING (model_id)
),
read_evals AS (
    SELECT * FROM evals
    WHERE model_id IN (SELECT model_id FROM targets UNION SELECT base_model_id FROM targets)
      -- quick checks and base repeats ran some items or re-ran the base: never a score
      AND (source_file IS NULL OR source_file NOT IN (SELECT source_file FROM partial_evals))
),
-- Per-task settings unnested once per eval and joined: a MAP lookup per score row
-- (e.n_shot[task]) carried the whole maps through the joins, seconds at 100 models.
eval_n_shot AS (
    SELECT eval_id, unnest(map_keys(n_shot)) AS task, unnest(map_values(n_shot)) AS n_shot
    FROM read_evals
),
eval_task_hash AS (
    SELECT eval_id, unnest(map_keys(task_hashes)) AS task,
           unnest(map_values(task_hashes)) AS task_hash
    FROM read_evals
),
latest AS (
    SELECT e.model_id, st.task, st.capability, st.metric, st.filter, s.value, s.stderr,
           s.n_samples, e.eval_id, e.lm_eval_version, ns.n_shot, e.eval_limit,
           th.task_hash, e.chat_template_sha, e.evaluated_at, s.n_original,
           coalesce(sd.higher_is_better, s.higher_is_better, true) AS higher_is_better
    FROM scores s
    JOIN suite_tasks st ON st.task = s.task AND st.metric = s.metric AND st.filter = s.filter
    LEFT JOIN suite_directions sd ON sd.task = st.task
    JOIN read_evals e ON e.eval_id = s.eval_id
    LEFT JOIN eval_n_shot ns ON ns.eval_id = e.eval_id AND ns.task = st.task
    LEFT JOIN eval_task_hash th ON th.eval_id = e.eval_id AND th.task = st.task
    WHERE st.capability <> '{BASELINE_CAPABILITY}'
    QUALIFY row_number() OVER (
        PARTITION BY e.model_id, st.task
        ORDER BY e.evaluated_at DESC NULLS LAST, e.ingested_at DESC NULLS LAST, e.eval_id DESC
    ) = 1
),
task_delta AS (
    SELECT t.model_id, l.task, l.capability, l.metric, l.filter,
           b.value AS base_value, l.value, {delta_sql()} AS delta, l.higher_is_better,
           l.n_samples, l.n_original, b.n_samples AS base_n_samples,
           {uninformative_sql()} AS uninformative
    FROM targets t
    JOIN latest l ON l.model_id = t.model_id
    LEFT JOIN latest b ON b.model_id = t.base_model_id AND b.task = l.task
),
cap_delta AS (  -- uninformative tasks add a 0 by construction: left out of the mean
    SELECT model_id, capability,
           coalesce(avg(delta) FILTER (WHERE NOT uninformative), avg(delta)) AS delta
    FROM task_delta GROUP BY model_id, capability
),
model_delta AS (
    SELECT model_id,
           max(delta) FILTER (WHERE capability = 'target') AS target_gain,
           avg(delta) FILTER (WHERE capability IN {GENERAL_CAPABILITIES}) AS general_change,
           -max(delta) FILTER (WHERE capability = 'hallucination') AS hallucination_change
    FROM cap_delta GROUP BY model_id
)"""


def has_analysis(con: Con) -> bool:
    """Whether the file has the analysis tables (a file from before them does not).

    Pages open the file read-only and cannot add them; the first write-open
    (``forgetwatch analyse``, a sync, an ingest) does, and fills them in.
    """
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name IN ('analysis_state', 'task_tests', 'capability_tests', "
        "'settings_mismatches')"
    ).fetchone()
    return bool(row and row[0] == 4)
