"""How evaluated models are named and tied to runs, checkpoints and bases.

Both collectors name a model the same way (``model_id``), so an lm-eval result
and an MLflow run meet in the ``models`` table whichever arrives first. After
each batch, ``relink_models`` re-derives run, step and base for every model in
one set-based UPDATE: a checkpoint is ``<run output_dir>/checkpoint-N``, a final
model is the ``output_dir`` itself, and a LoRA adapter is matched by its
adapter path.

Rules, in order (documented in docs/schema.md, "Linking evals to runs"):

1. **Path**: the evaluated path (adapter path for ``peft=``) is a run's
   ``output_dir`` or lies inside it; ``checkpoint-N`` gives the step.
2. **Eval run id**: otherwise, the run the eval names in ``evals.run_id``:
   passed by the artifact collector (results logged to that run), a
   ``mlflow-run-<run_id>`` folder in the results file's path, or
   ``--metadata '{"mlflow_run_id": "<run_id>"}'`` on the lm_eval command line.
   A model that is that run's own base model is never linked this way.
3. An adapter whose run is unknown still gets its ``pretrained=`` model as base.
"""

from __future__ import annotations

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
    "relink_models",
    "run_id_from_path",
    "upsert_model",
]


def upsert_model(
    con: duckdb.DuckDBPyConnection, pretrained: str, adapter: str | None, kind: str
) -> str:
    """Insert a model if unseen; never downgrade what a collector already knows about it."""
    mid = model_id(pretrained, adapter)
    con.execute(
        """
        INSERT INTO models (model_id, kind, path, adapter_path, display_name)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (model_id) DO UPDATE SET
            kind = CASE WHEN models.kind = 'external' THEN excluded.kind ELSE models.kind END
        """,
        [
            mid,
            kind,
            normalise_path(pretrained),
            normalise_path(adapter) if adapter else None,
            display_name(pretrained, adapter),
        ],
    )
    return mid


def relink_models(con: duckdb.DuckDBPyConnection) -> None:
    """Tie every model to the run whose output_dir holds it, and mark bases.

    Set-based on purpose: one statement whatever the number of models and runs.
    """
    con.execute(
        r"""
        UPDATE models SET
            run_id = hit.run_id,
            step = hit.step,
            kind = CASE WHEN hit.step IS NULL THEN 'final' ELSE 'checkpoint' END,
            base_model_id = hit.base_model
        FROM (
            SELECT m.model_id, r.run_id, r.base_model,
                   TRY_CAST(regexp_extract(m.p, 'checkpoint-(\d+)$', 1) AS BIGINT) AS step,
                   row_number() OVER (
                       PARTITION BY m.model_id ORDER BY length(r.output_dir) DESC
                   ) AS rn
            FROM (SELECT model_id, coalesce(adapter_path, path) AS p FROM models) m
            JOIN runs r
              ON r.output_dir IS NOT NULL
             AND (m.p = r.output_dir OR starts_with(m.p, r.output_dir || '/'))
        ) hit
        WHERE models.model_id = hit.model_id AND hit.rn = 1
        """
    )
    _link_through_eval_run_ids(con)
    con.execute(
        """
        UPDATE models SET kind = 'base'
        WHERE kind = 'external' AND adapter_path IS NULL
          AND model_id IN (SELECT base_model FROM runs WHERE base_model IS NOT NULL)
        """
    )
    con.execute(
        """
        UPDATE models SET base_model_id = path,
               kind = CASE WHEN kind = 'external' THEN 'adapter' ELSE kind END
        WHERE adapter_path IS NOT NULL AND base_model_id IS NULL
        """
    )


def _link_through_eval_run_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Rule 2: models no path matched take the run their evals name (most recent eval wins)."""
    con.execute(
        r"""
        UPDATE models SET
            run_id = hit.run_id,
            step = hit.step,
            kind = CASE WHEN hit.step IS NULL THEN 'final' ELSE 'checkpoint' END,
            base_model_id = hit.base_model
        FROM (
            SELECT m.model_id, r.run_id, r.base_model,
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
