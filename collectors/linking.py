"""How evaluated models are named and tied to runs, checkpoints and bases.

Both collectors name a model the same way (``model_id``), so an lm-eval result
and an MLflow run meet in the ``models`` table whichever arrives first. After
each batch, ``relink_models`` re-derives run, step and base for every model in
a few set-based UPDATEs: a checkpoint is ``<run output_dir>/checkpoint-N``, a
final model is the ``output_dir`` itself, and a LoRA adapter is matched by its
adapter path.

Run links, in order (documented in docs/schema.md, "Linking evals to runs"):

1. **Path**: the evaluated path (adapter path for ``peft=``) is a run's
   ``output_dir`` or lies inside it; ``checkpoint-N`` gives the step. When
   several runs share that ``output_dir`` (a re-run script), the run whose
   lifetime covers the model files' modification time wins, else the newest,
   and ``models.link_note`` says the link was ambiguous.
2. **Eval run id**: otherwise, the run the eval names in ``evals.run_id``:
   passed by the artifact collector (results logged to that run), a
   ``mlflow-run-<run_id>`` folder in the results file's path, or
   ``--metadata '{"mlflow_run_id": "<run_id>"}'`` on the lm_eval command line.
   A model that is that run's own base model is never linked this way.

Bases, first rule that applies (``apply_bases``; ``model_files`` reads the
files): a user's pairing (``model_bases``), a peft adapter's base
(``pretrained=`` beside ``peft=``, or ``adapter_config.json``), the linked run's
``base_model``, ``config.json``'s ``_name_or_path``, ``--metadata base_model``.
``models.base_source`` records which one.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from forgetwatch.identity import (
    checkpoint_step,
    display_name,
    model_id,
    normalise_path,
    run_id_from_path,
)

__all__ = [
    "checkpoint_step",
    "display_name",
    "model_id",
    "normalise_path",
    "apply_bases",
    "relink_models",
    "run_id_from_path",
    "upsert_model",
]


def upsert_model(
    con: duckdb.DuckDBPyConnection,
    pretrained: str,
    adapter: str | None,
    kind: str,
    files_mtime: datetime | None = None,
) -> str:
    """Insert a model if unseen; never downgrade what a collector already knows about it."""
    mid = model_id(pretrained, adapter)
    con.execute(
        """
        INSERT INTO models (model_id, kind, path, adapter_path, display_name, files_mtime)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (model_id) DO UPDATE SET
            kind = CASE WHEN models.kind = 'external' THEN excluded.kind ELSE models.kind END,
            files_mtime = coalesce(excluded.files_mtime, models.files_mtime)
        """,
        [
            mid,
            kind,
            normalise_path(pretrained),
            normalise_path(adapter) if adapter else None,
            display_name(pretrained, adapter),
            files_mtime,
        ],
    )
    return mid


# Model files saved a little after MLflow marked the run ended (the trainer's last save
# races the end_time write) still belong to that run.
END_SLACK = "INTERVAL 10 MINUTE"


def relink_models(con: duckdb.DuckDBPyConnection) -> None:
    """Tie every model to the run whose output_dir holds it, then record every base.

    Set-based on purpose: a few statements whatever the number of models and runs.
    """
    con.execute(
        rf"""
        UPDATE models SET
            run_id = hit.run_id,
            step = hit.step,
            kind = CASE WHEN hit.step IS NULL THEN 'final' ELSE 'checkpoint' END,
            link_note = CASE WHEN hit.sharing > 1 THEN
                hit.sharing || ' runs share the output folder ' || hit.output_dir || '; linked to '
                || CASE WHEN hit.covers THEN 'the one running when the model files were written'
                        ELSE 'the newest (no run''s lifetime covers the model files'' time)' END
                END
        FROM (
            SELECT m.model_id, r.run_id, r.output_dir,
                   TRY_CAST(regexp_extract(m.p, 'checkpoint-(\d+)$', 1) AS BIGINT) AS step,
                   m.files_mtime BETWEEN r.start_time
                       AND coalesce(r.end_time + {END_SLACK}, TIMESTAMP 'infinity') AS covers,
                   count(*) OVER (PARTITION BY m.model_id, r.output_dir) AS sharing,
                   row_number() OVER (
                       PARTITION BY m.model_id
                       ORDER BY length(r.output_dir) DESC, r.deleted IS TRUE,
                                covers DESC NULLS LAST, r.start_time DESC NULLS LAST, r.run_id
                   ) AS rn
            FROM (SELECT model_id, files_mtime, coalesce(adapter_path, path) AS p FROM models) m
            JOIN runs r
              ON r.output_dir IS NOT NULL
             AND (m.p = r.output_dir OR starts_with(m.p, r.output_dir || '/'))
        ) hit
        WHERE models.model_id = hit.model_id AND hit.rn = 1
        """
    )
    _link_through_eval_run_ids(con)
    apply_bases(con)
    con.execute(
        """
        UPDATE models SET kind = 'base'
        WHERE kind = 'external' AND adapter_path IS NULL AND base_model_id IS NULL
          AND (model_id IN (SELECT base_model FROM runs WHERE base_model IS NOT NULL)
               OR model_id IN (SELECT base_model_id FROM models))
        """
    )
    con.execute(
        """
        UPDATE models SET kind = 'adapter'
        WHERE kind = 'external' AND adapter_path IS NOT NULL
        """
    )


# The base rules, best first: (rank, base_source) as stored in models.base_source.
BASE_RULES = {"user": 0, "peft": 1, "adapter_config.json": 1, "mlflow run": 2,
              "config.json": 3, "metadata": 4}  # fmt: skip


def apply_bases(con: duckdb.DuckDBPyConnection) -> None:
    """Record each model's base from the first rule that applies (see the module docstring).

    One statement over every model; only rows whose base or source changed are written,
    so a re-sync with nothing new writes nothing.
    """
    rules = ", ".join(f"('{source}', {rank})" for source, rank in BASE_RULES.items())
    con.execute(
        f"""
        UPDATE models SET base_model_id = pick.base, base_source = pick.source
        FROM (
            WITH hints AS (  -- the newest eval's hint, per model
                SELECT model_id, base_hint, base_hint_source FROM evals
                WHERE base_hint IS NOT NULL
                QUALIFY row_number() OVER (
                    PARTITION BY model_id
                    ORDER BY evaluated_at DESC NULLS LAST, ingested_at DESC NULLS LAST, eval_id
                ) = 1
            ),
            candidates AS (
                SELECT model_id, base_model_id AS base, 'user' AS source FROM model_bases
                UNION ALL
                SELECT model_id, path, 'peft' FROM models WHERE adapter_path IS NOT NULL
                UNION ALL
                SELECT model_id, base_hint, base_hint_source FROM hints
                UNION ALL
                SELECT m.model_id, r.base_model, 'mlflow run'
                FROM models m JOIN runs r USING (run_id) WHERE r.base_model IS NOT NULL
            ),
            ranked AS (
                SELECT c.model_id, c.base, c.source, r.rank
                FROM candidates c
                JOIN (VALUES {rules}) r(source, rank) USING (source)
                WHERE c.base <> c.model_id
            )
            SELECT m.model_id, arg_min(k.base, k.rank) AS base,
                   arg_min(k.source, k.rank) AS source
            FROM models m LEFT JOIN ranked k USING (model_id)
            GROUP BY m.model_id
        ) pick
        WHERE models.model_id = pick.model_id
          AND (models.base_model_id IS DISTINCT FROM pick.base
               OR models.base_source IS DISTINCT FROM pick.source)
        """,
    )


def _link_through_eval_run_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Rule 2: models no path matched take the run their evals name (most recent eval wins)."""
    con.execute(
        r"""
        UPDATE models SET
            run_id = hit.run_id,
            step = hit.step,
            kind = CASE WHEN hit.step IS NULL THEN 'final' ELSE 'checkpoint' END
        FROM (
            SELECT m.model_id, r.run_id,
                   TRY_CAST(regexp_extract(coalesce(m.adapter_path, m.path),
                                           'checkpoint-(\d+)$', 1) AS BIGINT) AS step,
                   row_number() OVER (
                       PARTITION BY m.model_id ORDER BY e.evaluated_at DESC NULLS LAST, e.eval_id
                   ) AS rn
            FROM models m
            JOIN evals e ON e.model_id = m.model_id AND e.run_id IS NOT NULL
            JOIN runs r ON r.run_id = e.run_id
            WHERE m.run_id IS NULL
              AND m.model_id IS DISTINCT FROM r.base_model
        ) hit
        WHERE models.model_id = hit.model_id AND hit.rn = 1
        """
    )
