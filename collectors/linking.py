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

import os
import re

import duckdb

_CHECKPOINT = re.compile(r"checkpoint-(\d+)/?$")
# A folder named mlflow-run-<run_id> anywhere in a results file's path.
_RUN_FOLDER = re.compile(r"(?:^|/)mlflow-run-([0-9A-Za-z]+)(?:/|$)")


def run_id_from_path(path: str | os.PathLike[str]) -> str | None:
    """The MLflow run id of the innermost ``mlflow-run-<id>`` folder in ``path``, if any."""
    hits = _RUN_FOLDER.findall(os.fspath(path).replace(os.sep, "/"))
    return hits[-1] if hits else None


def normalise_path(ref: str) -> str:
    """A stable spelling of a model reference: absolute local path, or a hub id as given."""
    ref = ref.strip()
    looks_local = ref.startswith(("/", "./", "../", "~")) or os.path.exists(ref)
    if not looks_local:
        return ref
    return os.path.normpath(os.path.abspath(os.path.expanduser(ref)))


def model_id(pretrained: str, adapter: str | None = None) -> str:
    """The key of ``models``: the base path, plus ``+peft=<adapter>`` for adapters."""
    base = normalise_path(pretrained)
    return f"{base}+peft={normalise_path(adapter)}" if adapter else base


def checkpoint_step(path: str) -> int | None:
    """N for a path ending in ``checkpoint-N`` (how the HF Trainer names checkpoints)."""
    match = _CHECKPOINT.search(path)
    return int(match.group(1)) if match else None


def display_name(pretrained: str, adapter: str | None = None) -> str:
    """Short human label: the last one or two path components."""
    ref = adapter or pretrained
    parts = [p for p in ref.rstrip("/").split("/") if p]
    return "/".join(parts[-2:]) if parts else ref


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
