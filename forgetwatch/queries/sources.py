"""Queries behind the Sources page: what has been collected from where, and when."""

from __future__ import annotations

import pandas as pd

from forgetwatch.queries.deltas import Con

# One row per synced MLflow source (from sync_state) plus one per kind of lm-eval
# input (from evals). sync_state keys MLflow sources as ``mlflow:<uri>`` or
# ``mlflow:<uri>#experiments=...``; the uri part matches runs.tracking_uri.
_SOURCES_SQL = """
WITH mlflow AS (
    SELECT s.*, regexp_extract(s.source, '^mlflow:([^#]*)', 1) AS uri
    FROM sync_state s
),
run_counts AS (
    SELECT tracking_uri AS uri, count(*) AS runs, count(*) FILTER (WHERE deleted) AS deleted
    FROM runs GROUP BY ALL
),
eval_counts AS (  -- evals of a model a run produced, or logged/tagged to a run
    SELECT r.tracking_uri AS uri, count(DISTINCT e.eval_id) AS evals
    FROM evals e
    LEFT JOIN models m USING (model_id)
    JOIN runs r ON r.run_id = coalesce(e.run_id, m.run_id)
    GROUP BY ALL
)
SELECT m.source, 'MLflow' AS kind, m.synced_at AS last_sync, m.detail,
       m.max_start_time, m.max_end_time, m.last_full_sweep,
       coalesce(rc.runs, 0) AS runs, coalesce(rc.deleted, 0) AS deleted_runs,
       coalesce(ec.evals, 0) AS evals
FROM mlflow m LEFT JOIN run_counts rc USING (uri) LEFT JOIN eval_counts ec USING (uri)
UNION ALL BY NAME
SELECT 'lm-eval ' || coalesce(source_kind, 'file') || 's' AS source, 'lm-eval' AS kind,
       max(ingested_at) AS last_sync,
       count(DISTINCT model_id) || ' models' AS detail,
       count(*) AS evals
FROM evals GROUP BY coalesce(source_kind, 'file')
ORDER BY kind DESC, source
"""

SOURCE_COLUMNS = (
    "source", "kind", "last_sync", "runs", "deleted_runs", "evals", "detail",
    "max_start_time", "max_end_time", "last_full_sweep",
)  # fmt: skip


def sources(con: Con) -> pd.DataFrame:
    """Every source collected into the database, with its last sync, watermarks and counts.

    MLflow rows come from ``sync_state`` (written at the end of each sync, so a
    sync that was interrupted still shows its previous completion); lm-eval rows
    are derived from ``evals`` because an ingest has no server to remember.
    """
    frame = con.execute(_SOURCES_SQL).df()
    return frame.reindex(columns=list(SOURCE_COLUMNS))
