"""Collect MLflow runs (params, tags, full metric histories, checkpoints) into DuckDB.

Works against any tracking URI MLflow's client accepts: an ``http(s)://`` server
or a local store (``sqlite:///mlflow.db``). Runs are read page by page in a
stable order (start_time, run_id) and upserted, so a re-sync converges to the
same rows. Each page is written in one transaction: a crash never leaves half
a page behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from collectors.linking import checkpoint_step, normalise_path, relink_models, upsert_model
from collectors.mlflow_access import check_reachable, resolve_tracking_uri, wrap_mlflow_error
from collectors.report import Progress, SyncReport, no_progress
from forgetwatch import db

PAGE_SIZE = 200
HISTORY_THREADS = 8
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


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None) if value else None


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
        "start_time": _ms(run.info.start_time),
        "end_time": _ms(run.info.end_time),
        "base_model": normalise_path(base) if base else None,
        "method": infer_method(params, tags),
        "output_dir": normalise_path(out) if out else None,
        "param_keys": list(params),
        "param_values": list(params.values()),
        "tag_keys": list(tags),
        "tag_values": list(tags.values()),
    }


def _histories(client: MlflowClient, runs: list[Run]) -> pd.DataFrame:
    """Every point of every metric of ``runs``; MLflow's client has one call per (run, key)."""
    pairs = [(r.info.run_id, key) for r in runs for key in r.data.metrics]

    def fetch(pair: tuple[str, str]) -> list[tuple[str, str, int, datetime | None, float]]:
        run_id, key = pair
        return [
            (run_id, key, m.step, _ms(m.timestamp), m.value)
            for m in client.get_metric_history(run_id, key)
        ]

    with ThreadPoolExecutor(HISTORY_THREADS) as pool:
        rows = [row for chunk in pool.map(fetch, pairs) for row in chunk]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "ts", "value"])


def _iter_runs(client: MlflowClient, experiment_ids: list[str]) -> Iterator[list[Run]]:
    token: str | None = None
    while True:
        page = client.search_runs(
            experiment_ids,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time ASC", "attributes.run_id ASC"],
            page_token=token,
        )
        if page:
            yield list(page)
        token = page.token
        if not token:
            return


_UNCHANGED_SQL = """
SELECT count(*) FROM incoming_runs i JOIN runs r USING (run_id)
WHERE r.status IS NOT DISTINCT FROM i.status
  AND r.end_time IS NOT DISTINCT FROM i.end_time
  AND r.params = map(i.param_keys, i.param_values)
  AND r.tags = map(i.tag_keys, i.tag_values)
  AND (SELECT count(*) FROM run_metrics m WHERE m.run_id = i.run_id)
    = (SELECT count(*) FROM incoming_points p WHERE p.run_id = i.run_id)
"""


def _write_page(
    con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, points: pd.DataFrame, report: SyncReport
) -> None:
    """Upsert one page of runs and replace their histories, counting what was new or changed."""
    con.register("incoming_runs", rows)
    con.register("incoming_points", points)
    known = con.execute(
        "SELECT count(*) FROM runs WHERE run_id IN (SELECT run_id FROM incoming_runs)"
    ).fetchall()[0][0]
    unchanged = con.execute(_UNCHANGED_SQL).fetchall()[0][0]
    with db.transaction(con):
        con.execute(
            """
            INSERT OR REPLACE INTO runs (run_id, tracking_uri, experiment_id, experiment_name,
                run_name, status, start_time, end_time, base_model, method, output_dir,
                params, tags)
            SELECT run_id, tracking_uri, experiment_id, experiment_name, run_name, status,
                   start_time, end_time, base_model, method, output_dir,
                   map(param_keys, param_values), map(tag_keys, tag_values)
            FROM incoming_runs
            """
        )
        con.execute("DELETE FROM run_metrics WHERE run_id IN (SELECT run_id FROM incoming_runs)")
        con.execute(
            "INSERT INTO run_metrics SELECT run_id, key, step, ts, value FROM incoming_points"
        )
        _upsert_run_models(con, rows)
        relink_models(con)
    con.unregister("incoming_runs")
    con.unregister("incoming_points")
    report.inserted += len(rows) - known
    report.updated += known - unchanged
    report.skipped += unchanged


def _upsert_run_models(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """A base model per base, a final model per run, and the checkpoints we can see."""
    for row in rows.itertuples():
        if not row.base_model:
            continue
        upsert_model(con, row.base_model, None, "base")
        if not row.output_dir:
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


def sync(
    tracking_uri: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    *,
    experiments: list[str] | None = None,
    progress: Progress = no_progress,
) -> SyncReport:
    """Pull every active run of ``experiments`` (default: all) into the database."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    report = SyncReport(source=f"mlflow {uri}")
    try:
        exps = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        wanted = {e.experiment_id: e.name for e in exps if not experiments or e.name in experiments}
        done = 0
        for page in _iter_runs(client, list(wanted)):
            rows = pd.DataFrame([_run_row(r, uri, wanted[r.info.experiment_id]) for r in page])
            points = _histories(client, page)
            # Hold the file only while writing: pages and jobs read between pages.
            with db.connect(db_path) as con:
                _write_page(con, rows, points, report)
            done += len(page)
            progress(done, max(done, 1), "runs")
        with db.connect(db_path) as con:
            con.execute(
                "INSERT OR REPLACE INTO sync_state (source, synced_at, detail) "
                "VALUES (?, now()::TIMESTAMP, ?)",
                [f"mlflow:{uri}", f"{done} runs"],
            )
    except MlflowException as exc:
        raise wrap_mlflow_error(uri, exc) from exc
    return report
