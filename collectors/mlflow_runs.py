"""Collect MLflow runs (params, tags, metric histories, checkpoints) into DuckDB, incrementally.

Works against any tracking URI MLflow's client accepts: an ``http(s)://`` server
or a local store (``sqlite:///mlflow.db``). Which runs are read is decided by
``mlflow_windows`` (start/end-time windows with slack, running runs, periodic
full sweeps); histories come from ``mlflow_history`` (the backend store when
available, else concurrent REST calls).

Each page of runs is written in one transaction, and only what changed is
written: a run row when its status, times, params or tags differ, and a metric
history only for the (run, key) pairs whose latest point (as search reports it)
differs from ``run_metric_latest`` (its history rows and latest point are
replaced in the page's transaction). Watermarks are saved only once every page
and the structure collector are done, so a sync killed at any point converges
on re-sync to the rows of a clean sync. A NaN point is stored as NULL.

Limitation: a point logged at an older step than a key's latest one does not
change MLflow's latest point, so it is only picked up when a later point is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forgetwatch import analysis, db
from forgetwatch.collectors import mlflow_windows as windows
from forgetwatch.collectors.linking import (
    checkpoint_step,
    normalise_path,
    relink_models,
    upsert_model,
)
from forgetwatch.collectors.mlflow_access import (
    check_reachable,
    client_limits,
    resolve_tracking_uri,
    select_experiments,
    wrap_mlflow_error,
)
from forgetwatch.collectors.mlflow_history import HistorySource, pick_source
from forgetwatch.collectors.mlflow_structure import sync_structure
from forgetwatch.collectors.report import Progress, SyncReport, no_progress

PAGE_SIZE = 200
PARENT_TAG = "mlflow.parentRunId"
BASE_MODEL_KEYS = ("base_model", "forgetwatch.base_model")  # tags, in order of preference
BASE_MODEL_PARAMS = ("_name_or_path", "model_name_or_path", "base_model")
METHOD_TAGS = ("method", "forgetwatch.method")


def _first(mapping: dict[str, str], keys: Iterable[str]) -> str | None:
    return next((mapping[k] for k in keys if mapping.get(k)), None)


def infer_method(params: dict[str, str], tags: dict[str, str]) -> str:
    """full / lora / qlora / unknown, from an explicit tag or what the trainer logged."""
    tagged = _first(tags, METHOD_TAGS)
    if tagged:
        return tagged.lower()
    peft = params.get("peft_config", "")
    if peft:
        quantised = "4bit" in json.dumps(params).lower() or "load_in_4bit" in peft
        return "qlora" if quantised else ("lora" if "lora" in peft.lower() else "peft")
    return "full" if _first(params, BASE_MODEL_PARAMS) else "unknown"


def _run_row(run: Run, uri: str, experiment_name: str) -> dict[str, object]:
    params, tags = dict(run.data.params), dict(run.data.tags)
    base = _first(tags, BASE_MODEL_KEYS) or _first(params, BASE_MODEL_PARAMS)
    out = params.get("output_dir")
    return {
        "run_id": run.info.run_id,
        "tracking_uri": uri,
        "experiment_id": run.info.experiment_id,
        "experiment_name": experiment_name,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": windows.to_datetime(run.info.start_time),
        "end_time": windows.to_datetime(run.info.end_time),
        "base_model": normalise_path(base) if base else None,
        "method": infer_method(params, tags),
        "output_dir": normalise_path(out) if out else None,
        "param_keys": list(params),
        "param_values": list(params.values()),
        "tag_keys": list(tags),
        "tag_values": list(tags.values()),
        "parent_run_id": tags.get(PARENT_TAG) or None,
    }


def _latest_points(page: list[Run]) -> pd.DataFrame:
    """The latest point of every (run, key), with step and timestamp.

    ``run.data.metrics`` holds values only; MLflow 3 keeps the full latest
    ``Metric`` objects (step, timestamp) in ``run.data._metric_objs``.
    """
    rows = [(run.info.run_id, *point) for run in page for point in _latest_of(run)]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "ts_ms", "value"]).astype(
        {"run_id": "object", "key": "object", "step": "int64", "ts_ms": "int64", "value": "float64"}
    )


def _latest_of(run: Run) -> list[tuple[str, int, int, float]]:
    objs = getattr(run.data, "_metric_objs", None)
    if objs is None:  # an MLflow without it: values only, so only a new value is a change
        return [(key, -1, 0, value) for key, value in run.data.metrics.items()]
    return [(m.key, m.step, m.timestamp or 0, m.value) for m in objs]


# ts_ms is epoch milliseconds, 0 when MLflow has none.
_TS = "CASE WHEN {col} <> 0 THEN epoch_ms({col}) END"

_CHANGED_RUNS_SQL = """
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
   OR r.params IS DISTINCT FROM map(i.param_keys, i.param_values)
   OR r.tags IS DISTINCT FROM map(i.tag_keys, i.tag_values)
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


class _PagePlan:
    """What one page changes, decided against the database before anything is fetched."""

    def __init__(self, con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, latest: pd.DataFrame):
        con.register("incoming_runs", rows)
        con.register("incoming_latest", latest)
        changed = con.execute(_CHANGED_RUNS_SQL).df()
        self.changed_pairs = con.execute(_CHANGED_PAIRS_SQL).df()
        self.vanished_pairs = con.execute(_VANISHED_PAIRS_SQL).df()
        con.unregister("incoming_runs")
        con.unregister("incoming_latest")
        self.new_ids = set(changed.loc[~changed["known"].astype(bool), "run_id"])
        metric_ids = set(self.changed_pairs["run_id"]) | set(self.vanished_pairs["run_id"])
        # Rows to (re)write, with a new synced_at: changed fields or changed histories.
        self.touched_ids = set(changed["run_id"]) | metric_ids

    @property
    def empty(self) -> bool:
        return not self.touched_ids


def _write_page(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    latest: pd.DataFrame,
    plan: _PagePlan,
    points: pd.DataFrame,
    now: datetime,
) -> None:
    """One transaction: changed run rows, then the changed pairs' histories and latest points."""
    changed_rows = rows[rows["run_id"].isin(plan.touched_ids)]
    pairs = plan.changed_pairs.assign(pair=range(len(plan.changed_pairs)))
    con.register("incoming_runs", changed_rows)
    con.register("incoming_latest", latest)
    con.register("changed_pairs", pairs)
    con.register("gone_pairs", plan.vanished_pairs)
    con.register("incoming_points", points)
    with db.transaction(con):
        con.execute(
            """
            INSERT OR REPLACE INTO runs (run_id, tracking_uri, experiment_id, experiment_name,
                run_name, status, start_time, end_time, base_model, method, output_dir,
                params, tags, parent_run_id, deleted, synced_at)
            SELECT run_id, tracking_uri, experiment_id, experiment_name, run_name, status,
                   start_time, end_time, base_model, method, output_dir,
                   map(param_keys, param_values), map(tag_keys, tag_values),
                   parent_run_id, false, ?
            FROM incoming_runs
            """,
            [now],
        )
        for table in ("run_metrics", "run_metric_latest"):
            for source in ("changed_pairs", "gone_pairs"):
                con.execute(
                    f"DELETE FROM {table} t USING {source} c "
                    "WHERE t.run_id = c.run_id AND t.key = c.key"
                )
        con.execute(
            f"""INSERT INTO run_metrics
            SELECT c.run_id, c.key, p.step, {_TS.format(col="p.ts_ms")}, p.value
            FROM incoming_points p JOIN changed_pairs c USING (pair)"""
        )
        con.execute(
            f"""INSERT INTO run_metric_latest
            SELECT i.run_id, i.key, i.step, {_TS.format(col="i.ts_ms")}, i.value
            FROM incoming_latest i JOIN changed_pairs c USING (run_id, key)"""
        )
        _upsert_run_models(con, changed_rows)
        relink_models(con)
    for name in ("incoming_runs", "incoming_latest", "changed_pairs", "gone_pairs"):
        con.unregister(name)
    con.unregister("incoming_points")


def _sync_page(
    page: list[Run],
    uri: str,
    wanted: dict[str, str],
    db_path: str | os.PathLike[str] | None,
    histories: HistorySource,
    report: SyncReport,
) -> set[str]:
    """Plan, fetch and write one page; the run ids it inserted or updated."""
    rows = pd.DataFrame([_run_row(r, uri, wanted[r.info.experiment_id]) for r in page])
    latest = _latest_points(page)
    # Planning only reads: a read-only open skips the schema check a write-open runs.
    with db.connect(db_path, read_only=True) as con:
        plan = _PagePlan(con, rows, latest)
    if not plan.empty:
        # The database is closed while histories download: pages and jobs can read meanwhile.
        points = histories.fetch(plan.changed_pairs[["run_id", "key"]])
        with db.connect(db_path) as con:
            _write_page(con, rows, latest, plan, points, windows.utcnow())
    report.inserted += len(plan.new_ids)
    report.updated += len(plan.touched_ids - plan.new_ids)
    report.skipped += len(page) - len(plan.touched_ids)
    return plan.touched_ids


def _upsert_run_models(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """A base model per base, a final model per run, and the checkpoints we can see."""
    for row in rows.itertuples():
        if not isinstance(row.base_model, str) or not row.base_model:  # NaN when missing
            continue
        upsert_model(con, row.base_model, None, "base")
        if not isinstance(row.output_dir, str) or not row.output_dir:
            continue
        lora = row.method in ("lora", "qlora", "peft")
        dirs = [row.output_dir, *_checkpoint_dirs(row.output_dir)]
        for path in dirs:
            kind = "checkpoint" if checkpoint_step(path) is not None else "final"
            upsert_model(con, row.base_model if lora else path, path if lora else None, kind)


def _checkpoint_dirs(output_dir: str) -> list[str]:
    """checkpoint-N folders under a run's output_dir, when that folder is on this machine."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("checkpoint-*") if checkpoint_step(str(p)) is not None]
    return sorted(str(p) for p in found)


def _pending_run_ids(
    con: duckdb.DuckDBPyConnection, uri: str, marks: windows.Watermarks
) -> list[str]:
    """Runs written after the last completed sync: a killed sync's changes still get their
    structure (LoggedModels, artifacts) collected by the next one."""
    rows = con.execute(
        "SELECT run_id FROM runs WHERE tracking_uri = ? AND synced_at > ? ORDER BY run_id",
        [uri, marks.synced_at or datetime.min],
    ).fetchall()
    return [row[0] for row in rows]


def _mark_deleted(
    con: duckdb.DuckDBPyConnection,
    uri: str,
    scope: list[str] | None,
    seen: set[str],
    now: datetime,
) -> int:
    """Flag stored runs that a full sweep no longer finds active; rows are kept, never deleted."""
    con.register("seen_ids", pd.DataFrame({"run_id": sorted(seen)}, dtype="object"))
    in_scope = "" if scope is None else "AND list_contains(?, experiment_id)"
    marked = con.execute(
        f"""UPDATE runs SET deleted = true, synced_at = ?
        WHERE tracking_uri = ? AND NOT coalesce(deleted, false) {in_scope}
          AND run_id NOT IN (SELECT run_id FROM seen_ids)""",
        [now, uri] if scope is None else [now, uri, scope],
    ).fetchall()[0][0]
    con.unregister("seen_ids")
    return int(marked)


def sync(
    tracking_uri: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    *,
    experiments: list[str] | None = None,
    progress: Progress = no_progress,
    full: bool = False,
    backend_store_uri: str | None = None,
) -> SyncReport:
    """Bring the database up to date with ``experiments`` (default: all active ones).

    Incremental unless ``full`` (or the first sync, or a full sweep is due):
    see ``mlflow_windows`` for which runs are read.
    """
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    report = SyncReport(source=f"mlflow {uri}")
    with client_limits():
        try:
            _sync(client, uri, db_path, experiments, progress, full, backend_store_uri, report)
        except MlflowException as exc:
            raise wrap_mlflow_error(uri, exc, "read runs") from exc
    return report


def _sync(
    client: MlflowClient,
    uri: str,
    db_path: str | os.PathLike[str] | None,
    experiments: list[str] | None,
    progress: Progress,
    full: bool,
    backend_store_uri: str | None,
    report: SyncReport,
) -> None:
    started = windows.utcnow()
    wanted = select_experiments(client, uri, experiments)
    histories = pick_source(client, uri, backend_store_uri)
    source = windows.source_key(uri, list(wanted) if experiments else None)
    with db.connect(db_path) as con:
        marks = windows.load(con, source)
        sweep = full or windows.needs_full_sweep(marks, started)
        running = windows.known_running(con, uri, list(wanted))
        pending = set(_pending_run_ids(con, uri, marks))
    filters = [""] if sweep else windows.window_filters(marks, running)
    seen: set[str] = set()
    new_marks = marks
    changed: set[str] = set()
    for page in windows.merged_pages(client, list(wanted), filters, PAGE_SIZE, seen):
        changed |= _sync_page(page, uri, wanted, db_path, histories, report)
        new_marks = new_marks.advanced(page)
        progress(len(seen), max(len(seen), 1), "runs")
    sync_structure(
        client,
        uri,
        db_path,
        experiment_ids=list(wanted),
        changed_run_ids=sorted(changed | pending),
        report=report,
        progress=progress,
    )
    with db.connect(db_path) as con, db.transaction(con):
        if sweep:
            scope = list(wanted) if experiments else None
            report.updated += _mark_deleted(con, uri, scope, seen, windows.utcnow())
            new_marks.last_full_sweep = started
        new_marks.synced_at = windows.utcnow()
        kind = "full sweep" if sweep else "incremental"
        windows.save(con, source, new_marks, f"{kind}: {len(seen)} runs read, {histories.name}")
    # Runs link evaluated models to their bases: redo the stored tests whose pairing changed.
    report.notes.append(analysis.refresh(db_path).summary())
