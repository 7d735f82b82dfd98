"""Decide what one batch of runs changes, then write it in one transaction.

Only what changed is written: a run row when its status, times, params or tags
differ, and a metric history only for the (run, key) pairs whose latest point
(as search reports it) differs from ``run_metric_latest``; those pairs' history
rows and latest points are replaced in the batch's transaction, together with the
run rows and the models they stand for. A NaN point is stored as NULL.

Models are tied to runs (``linking.relink_models``) once per sync, after the last
batch, not per batch: that statement joins every model with every run, and a
sync of 10,000 runs spent seconds on it per batch.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from forgetwatch import db
from forgetwatch.collectors.mlflow_models import run_mentions, upsert_models

# ts_ms is epoch milliseconds, 0 when MLflow has none.
_TS = "CASE WHEN {col} <> 0 THEN epoch_ms({col}) END"
# Maps compare by their entries in key order: rows written before keys were sorted
# must not read as changed.
_MAP_DIFFERS = "list_sort(map_entries({stored})) IS DISTINCT FROM list_sort(map_entries({new}))"

_CHANGED_RUNS_SQL = f"""
SELECT i.run_id, r.run_id IS NOT NULL AS known FROM incoming_runs i LEFT JOIN runs r USING (run_id)
WHERE r.run_id IS NULL OR coalesce(r.deleted, false)
   OR r.tracking_uri IS DISTINCT FROM i.tracking_uri
   OR r.experiment_id IS DISTINCT FROM i.experiment_id
   OR r.experiment_name IS DISTINCT FROM i.experiment_name
   OR r.run_name IS DISTINCT FROM i.run_name
   OR r.status IS DISTINCT FROM i.status
   OR r.start_time IS DISTINCT FROM i.start_time
   OR r.end_time IS DISTINCT FROM i.end_time
   OR r.parent_run_id IS DISTINCT FROM i.parent_run_id
   OR {_MAP_DIFFERS.format(stored="r.params", new="map(i.param_keys, i.param_values)")}
   OR {_MAP_DIFFERS.format(stored="r.tags", new="map(i.tag_keys, i.tag_values)")}
"""

_CHANGED_PAIRS_SQL = f"""
SELECT i.run_id, i.key FROM incoming_latest i LEFT JOIN run_metric_latest l USING (run_id, key)
WHERE l.run_id IS NULL OR l.step IS DISTINCT FROM i.step
   OR l.ts IS DISTINCT FROM ({_TS.format(col="i.ts_ms")}) OR l.value IS DISTINCT FROM i.value
ORDER BY 1, 2
"""

# Keys we hold for a run that search no longer reports for it.
_VANISHED_PAIRS_SQL = """
SELECT l.run_id, l.key FROM run_metric_latest l
WHERE l.run_id IN (SELECT run_id FROM incoming_runs)
  AND NOT EXISTS (SELECT 1 FROM incoming_latest i WHERE i.run_id = l.run_id AND i.key = l.key)
"""

_INSERT_RUNS_SQL = """
INSERT OR REPLACE INTO runs (run_id, tracking_uri, experiment_id, experiment_name,
    run_name, status, start_time, end_time, base_model, method, output_dir,
    params, tags, parent_run_id, deleted, synced_at)
SELECT run_id, tracking_uri, experiment_id, experiment_name, run_name, status,
       start_time, end_time, base_model, method, output_dir,
       map(param_keys, param_values), map(tag_keys, tag_values),
       parent_run_id, false, ?
FROM incoming_runs
"""

_INSERT_POINTS_SQL = f"""
INSERT INTO run_metrics
SELECT c.run_id, c.key, p.step, {_TS.format(col="p.ts_ms")}, p.value
FROM incoming_points p JOIN changed_pairs c USING (pair)
"""

_INSERT_LATEST_SQL = f"""
INSERT INTO run_metric_latest
SELECT i.run_id, i.key, i.step, {_TS.format(col="i.ts_ms")}, i.value
FROM incoming_latest i JOIN changed_pairs c USING (run_id, key)
"""


class Plan:
    """What one batch changes, decided against the database before anything is fetched."""

    def __init__(self, con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, latest: pd.DataFrame):
        con.register("incoming_runs", rows)
        con.register("incoming_latest", latest)
        try:
            changed = con.execute(_CHANGED_RUNS_SQL).df()
            self.changed_pairs = con.execute(_CHANGED_PAIRS_SQL).df()
            self.vanished_pairs = con.execute(_VANISHED_PAIRS_SQL).df()
        finally:
            con.unregister("incoming_runs")
            con.unregister("incoming_latest")
        self.new_ids = set(changed.loc[~changed["known"].astype(bool), "run_id"])
        metric_ids = set(self.changed_pairs["run_id"]) | set(self.vanished_pairs["run_id"])
        # Rows to (re)write, with a new synced_at: changed fields or changed histories.
        self.touched_ids = set(changed["run_id"]) | metric_ids

    @property
    def empty(self) -> bool:
        return not self.touched_ids


def _delete_pairs(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the history and latest point of every changed or vanished pair."""
    for table in ("run_metrics", "run_metric_latest"):
        for source in ("changed_pairs", "gone_pairs"):
            con.execute(
                f"DELETE FROM {table} t USING {source} c "
                "WHERE t.run_id = c.run_id AND t.key = c.key"
            )


def write_batch(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    latest: pd.DataFrame,
    plan: Plan,
    points: pd.DataFrame,
    now: datetime,
) -> None:
    """One transaction: changed run rows, the changed pairs' histories and latest points,
    and the models the changed runs stand for."""
    changed_rows = rows[rows["run_id"].isin(plan.touched_ids)]
    frames = {
        "incoming_runs": changed_rows,
        "incoming_latest": latest,
        "changed_pairs": plan.changed_pairs.assign(pair=range(len(plan.changed_pairs))),
        "gone_pairs": plan.vanished_pairs,
        "incoming_points": points,
    }
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        with db.transaction(con):
            con.execute(_INSERT_RUNS_SQL, [now])
            _delete_pairs(con)
            con.execute(_INSERT_POINTS_SQL)
            con.execute(_INSERT_LATEST_SQL)
            upsert_models(con, run_mentions(changed_rows))
    finally:
        for name in frames:
            con.unregister(name)
