"""Batches of MLflow runs, read over REST or from the backend store, as the writer's frames.

Two sources give the same batches for the same store:

* ``RestRuns``: MLflow's ``search_runs``, one batch per page of ``page_size``
  runs (see ``mlflow_windows`` for which searches an incremental sync makes).
* ``StoreRuns``: one read of the sqlite backend store's ``runs``, ``params``,
  ``tags`` and ``latest_metrics`` tables (``mlflow_store``), cut into batches of
  at most ``STORE_BATCH_RUNS`` runs and ``STORE_BATCH_POINTS`` metric points, so
  a sync writes a few large transactions and memory stays bounded.

Every run becomes one row of ``RunBatch.rows`` (the derived base model, method and
output_dir included) by the same ``run_row``, and its latest points (as search
reports them) become ``RunBatch.latest``. Params and tags are kept in key order,
so both sources store identical maps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from forgetwatch.collectors import mlflow_store
from forgetwatch.collectors import mlflow_windows as windows
from forgetwatch.collectors.mlflow_store import StoredRun
from forgetwatch.identity import normalise_path

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

STORE_BATCH_RUNS = 5_000
STORE_BATCH_POINTS = 2_000_000  # metric points per batch: what one write holds in memory
PARENT_TAG = "mlflow.parentRunId"
BASE_MODEL_KEYS = ("base_model", "forgetwatch.base_model")  # tags, in order of preference
BASE_MODEL_PARAMS = ("_name_or_path", "model_name_or_path", "base_model")
METHOD_TAGS = ("method", "forgetwatch.method")
LATEST_COLUMNS = ["run_id", "key", "step", "ts_ms", "value"]
_LATEST_TYPES = {
    "run_id": "object", "key": "object", "step": "int64", "ts_ms": "int64", "value": "float64",
}  # fmt: skip


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


@dataclass(frozen=True)
class RunInfo:
    """The fields of one run the sync stores, whichever source read them."""

    run_id: str
    experiment_id: str
    run_name: str | None
    status: str
    start_ms: int | None
    end_ms: int | None
    artifact_uri: str | None


def run_row(
    info: RunInfo,
    params: dict[str, str],
    tags: dict[str, str],
    uri: str,
    experiment_name: str,
) -> dict[str, object]:
    """One ``runs`` row (plus its artifact_uri, which is not stored) for one run."""
    params, tags = dict(sorted(params.items())), dict(sorted(tags.items()))
    base = _first(tags, BASE_MODEL_KEYS) or _first(params, BASE_MODEL_PARAMS)
    out = params.get("output_dir")
    return {
        "run_id": info.run_id,
        "tracking_uri": uri,
        "experiment_id": info.experiment_id,
        "experiment_name": experiment_name,
        "run_name": info.run_name,
        "status": info.status,
        "start_time": windows.to_datetime(info.start_ms),
        "end_time": windows.to_datetime(info.end_ms),
        "base_model": normalise_path(base) if base else None,
        "method": infer_method(params, tags),
        "output_dir": normalise_path(out) if out else None,
        "param_keys": list(params),
        "param_values": list(params.values()),
        "tag_keys": list(tags),
        "tag_values": list(tags.values()),
        "parent_run_id": tags.get(PARENT_TAG) or None,
        "artifact_uri": info.artifact_uri,
    }


@dataclass
class RunBatch:
    """Runs read together: their rows, their latest points, and their times for watermarks."""

    rows: pd.DataFrame
    latest: pd.DataFrame
    start_ms: list[int | None]
    end_ms: list[int | None]
    total: int | None = None  # runs this sync reads in all, when the source knows

    def __len__(self) -> int:
        return len(self.rows)

    def artifact_uris(self, run_ids: Iterable[str]) -> dict[str, str]:
        """Where these runs keep their artifacts, as MLflow reported it."""
        wanted = set(run_ids)
        pairs = zip(self.rows["run_id"], self.rows["artifact_uri"], strict=True)
        return {r: a for r, a in pairs if r in wanted and isinstance(a, str) and a}


def _latest_frame(rows: list[tuple[str, str, int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=LATEST_COLUMNS).astype(_LATEST_TYPES)


def _batch(
    infos: list[RunInfo],
    rows: list[dict[str, object]],
    latest: list[tuple[str, str, int, int, float]],
    total: int | None,
) -> RunBatch:
    return RunBatch(
        pd.DataFrame(rows),
        _latest_frame(latest),
        [i.start_ms for i in infos],
        [i.end_ms for i in infos],
        total,
    )


# --- REST -----------------------------------------------------------------------------


def _rest_info(run: Run) -> RunInfo:
    i = run.info
    return RunInfo(
        i.run_id, i.experiment_id, i.run_name, i.status, i.start_time, i.end_time, i.artifact_uri
    )


def _latest_of(run: Run) -> list[tuple[str, int, int, float]]:
    """The latest point of every key, with step and timestamp.

    ``run.data.metrics`` holds values only; MLflow 3 keeps the full latest
    ``Metric`` objects (step, timestamp) in ``run.data._metric_objs``.
    """
    objs = getattr(run.data, "_metric_objs", None)
    if objs is None:  # an MLflow without it: values only, so only a new value is a change
        return [(key, -1, 0, value) for key, value in run.data.metrics.items()]
    return [(m.key, m.step, m.timestamp or 0, m.value) for m in objs]


def batch_from_runs(page: list[Run], uri: str, wanted: dict[str, str]) -> RunBatch:
    """One page of ``search_runs`` results as a batch."""
    infos = [_rest_info(run) for run in page]
    rows = [
        run_row(info, dict(run.data.params), dict(run.data.tags), uri, wanted[info.experiment_id])
        for info, run in zip(infos, page, strict=True)
    ]
    latest = [(run.info.run_id, *point) for run in page for point in _latest_of(run)]
    return _batch(infos, rows, latest, None)


class RunSource(Protocol):
    """Where a sync reads its runs from."""

    name: str

    def batches(
        self, uri: str, wanted: dict[str, str], window: windows.Window | None, seen: set[str]
    ) -> Iterator[RunBatch]:
        """Batches of the active runs of ``wanted`` experiments (all, or those in ``window``);
        every run once, its id added to ``seen``."""
        ...


class RestRuns:
    """``search_runs`` over MLflow's API, page by page."""

    name = "rest"

    def __init__(self, client: MlflowClient, page_size: int) -> None:
        self.client = client
        self.page_size = page_size

    def batches(
        self, uri: str, wanted: dict[str, str], window: windows.Window | None, seen: set[str]
    ) -> Iterator[RunBatch]:
        filters = [""] if window is None else window.filters()
        pages = windows.merged_pages(self.client, list(wanted), filters, self.page_size, seen)
        for page in pages:
            yield batch_from_runs(page, uri, wanted)


# --- Backend store --------------------------------------------------------------------


def _stored_info(run: StoredRun) -> RunInfo:
    return RunInfo(
        run.run_id,
        run.experiment_id,
        run.run_name,
        run.status,
        run.start_ms,
        run.end_ms,
        run.artifact_uri,
    )


def batch_from_store(
    runs: list[StoredRun], uri: str, wanted: dict[str, str], total: int
) -> RunBatch:
    """Runs read from the backend store as a batch, the same as their search page would be."""
    infos = [_stored_info(run) for run in runs]
    rows = [
        run_row(info, run.params, run.tags, uri, wanted[info.experiment_id])
        for info, run in zip(infos, runs, strict=True)
    ]
    latest = [(run.run_id, *point) for run in runs for point in run.latest]
    return _batch(infos, rows, latest, total)


def split_by_points(
    runs: list[StoredRun], counts: dict[str, int], max_runs: int, max_points: int
) -> Iterator[list[StoredRun]]:
    """Consecutive slices of ``runs`` holding at most ``max_runs`` runs and (unless one run
    alone holds more) ``max_points`` points."""
    batch: list[StoredRun] = []
    points = 0
    for run in runs:
        n = counts.get(run.run_id, 0)
        if batch and (len(batch) >= max_runs or points + n > max_points):
            yield batch
            batch, points = [], 0
        batch.append(run)
        points += n
    if batch:
        yield batch


class StoreRuns:
    """The sqlite backend store's tables, read directly (see ``mlflow_store``)."""

    name = "store"

    def __init__(self, store_uri: str) -> None:
        self.path = mlflow_store.store_file(store_uri)

    def batches(
        self, uri: str, wanted: dict[str, str], window: windows.Window | None, seen: set[str]
    ) -> Iterator[RunBatch]:
        with mlflow_store.connect(self.path) as con:
            mlflow_store.check_experiments(con, self.path, wanted)
            runs = mlflow_store.read_runs(con, list(wanted), window)
            counts = mlflow_store.point_counts(con, [r.run_id for r in runs])
        runs = [r for r in runs if r.run_id not in seen]
        seen.update(r.run_id for r in runs)
        for part in split_by_points(runs, counts, STORE_BATCH_RUNS, STORE_BATCH_POINTS):
            yield batch_from_store(part, uri, wanted, len(runs))
