"""Fetch full metric histories for a set of (run, key) pairs, as fast as the source allows.

MLflow's REST API serves one history per call (``get_metric_history`` per run and
key): about 8k points/s on a one-worker server. Its bulk endpoints don't help:
``get-history-bulk-interval`` samples the points and the UI's
``get-history-bulk`` silently truncates at 25,000 points. So there are two sources:

* ``RestHistories``: concurrent ``get_metric_history`` calls; works everywhere.
* ``StoreHistories``: read the ``metrics`` table of the server's sqlite backend
  store directly, read-only, with one join against a temporary table of the
  wanted pairs (about 25x faster). Used when the user names the backend store
  (``--backend-store-uri`` / ``FORGETWATCH_MLFLOW_BACKEND_URI``) or when the
  tracking URI itself is ``sqlite:///``.

Both return the same frame: ``pair`` (index into the wanted pairs), ``step``,
``ts_ms`` (epoch milliseconds, 0 when unknown) and ``value`` (NaN kept as NaN),
so the writer converts timestamps one way whichever source ran.
"""

from __future__ import annotations

import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pandas as pd
from mlflow.tracking import MlflowClient

from forgetwatch import settings
from forgetwatch.errors import BadInputError

POINT_COLUMNS = ["pair", "step", "ts_ms", "value"]
_STORE_CHUNK = 20_000  # wanted pairs per store query: bounds one result set's memory


def empty_points() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pair": pd.Series(dtype="int64"),
            "step": pd.Series(dtype="int64"),
            "ts_ms": pd.Series(dtype="int64"),
            "value": pd.Series(dtype="float64"),
        }
    )


class HistorySource(Protocol):
    """Something that returns every point of each wanted (run_id, key) pair."""

    name: str

    def fetch(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """``pairs`` has columns run_id, key; the result is indexed by row position."""
        ...


class RestHistories:
    """One ``get_metric_history`` call per pair, several in flight at once."""

    name = "rest"

    def __init__(self, client: MlflowClient, threads: int | None = None) -> None:
        self.client = client
        self.threads = threads or settings.integer("history_threads")

    def _one(self, item: tuple[int, str, str]) -> list[tuple[int, int, int, float]]:
        pair, run_id, key = item
        return [
            (pair, m.step, m.timestamp or 0, m.value)
            for m in self.client.get_metric_history(run_id, key)
        ]

    def fetch(self, pairs: pd.DataFrame) -> pd.DataFrame:
        if pairs.empty:
            return empty_points()
        items = list(zip(range(len(pairs)), pairs["run_id"], pairs["key"], strict=True))
        with ThreadPoolExecutor(self.threads) as pool:
            rows = [row for chunk in pool.map(self._one, items) for row in chunk]
        if not rows:
            return empty_points()
        return pd.DataFrame(rows, columns=POINT_COLUMNS).astype(
            {"pair": "int64", "step": "int64", "ts_ms": "int64", "value": "float64"}
        )


def sqlite_store_path(uri: str) -> Path | None:
    """The file behind a ``sqlite:///`` URI, or None for any other kind of URI."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


class StoreHistories:
    """Bulk reads from the sqlite backend store of an MLflow server, never writing to it."""

    name = "store"

    def __init__(self, store_uri: str) -> None:
        path = sqlite_store_path(store_uri)
        if path is None:
            raise BadInputError(
                f"{store_uri} is not a sqlite:/// backend store",
                "Give the server's --backend-store-uri as sqlite:///path/to/mlflow.db, "
                "or leave FORGETWATCH_MLFLOW_BACKEND_URI unset to read histories over REST.",
                where="--backend-store-uri",
            )
        if not path.is_file():
            raise BadInputError(
                f"MLflow backend store {path} does not exist",
                "Pass the same sqlite:/// file the server was started with "
                "(mlflow server --backend-store-uri).",
                where="--backend-store-uri",
            )
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # mode=ro: the server owns this file; a temp table lives in our own temp store.
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        if not {"metrics", "runs"} <= tables:
            con.close()
            raise BadInputError(
                f"{self.path} is not an MLflow backend store (no metrics table)",
                "Pass the sqlite:/// file the MLflow server was started with.",
                where="--backend-store-uri",
            )
        return con

    def fetch(self, pairs: pd.DataFrame) -> pd.DataFrame:
        if pairs.empty:
            return empty_points()
        con = self._connect()
        try:
            self._check_runs(con, pairs)
            frames = [
                self._chunk(con, pairs.iloc[i : i + _STORE_CHUNK], i)
                for i in range(0, len(pairs), _STORE_CHUNK)
            ]
        finally:
            con.close()
        return pd.concat(frames, ignore_index=True) if frames else empty_points()

    def _check_runs(self, con: sqlite3.Connection, pairs: pd.DataFrame) -> None:
        """A store that lacks the runs the server returned is some other server's store."""
        run_ids = sorted(set(pairs["run_id"]))
        con.execute("CREATE TEMP TABLE IF NOT EXISTS fw_ids (run_uuid TEXT PRIMARY KEY)")
        con.execute("DELETE FROM fw_ids")
        con.executemany("INSERT INTO fw_ids VALUES (?)", [(r,) for r in run_ids])
        found = con.execute("SELECT count(*) FROM runs JOIN fw_ids USING (run_uuid)").fetchone()[0]
        if found < len(run_ids):
            raise BadInputError(
                f"MLflow backend store {self.path} lacks {len(run_ids) - found} of the "
                f"{len(run_ids)} runs the tracking server returned",
                "Pass the backend store of the server you sync from, or drop "
                "--backend-store-uri to read histories over REST.",
                where="--backend-store-uri",
            )

    def _chunk(self, con: sqlite3.Connection, pairs: pd.DataFrame, first: int) -> pd.DataFrame:
        con.execute(
            "CREATE TEMP TABLE IF NOT EXISTS fw_pairs "
            "(pair INTEGER, run_uuid TEXT, key TEXT, PRIMARY KEY (run_uuid, key))"
        )
        con.execute("DELETE FROM fw_pairs")
        con.executemany(
            "INSERT INTO fw_pairs VALUES (?, ?, ?)",
            zip(range(first, first + len(pairs)), pairs["run_id"], pairs["key"], strict=True),
        )
        # Uses MLflow's index on metrics (run_uuid, key, step). Only numbers come back:
        # the pair index stands for (run_id, key), so no per-row Python strings.
        rows = con.execute(
            "SELECT p.pair, m.step, m.timestamp, m.value, m.is_nan "
            "FROM fw_pairs p JOIN metrics m ON m.run_uuid = p.run_uuid AND m.key = p.key"
        ).fetchall()
        frame = pd.DataFrame(rows, columns=[*POINT_COLUMNS, "is_nan"])
        if frame.empty:
            return empty_points()
        # MLflow stores NaN as value 0 with is_nan set (its own reader does the same).
        frame.loc[frame["is_nan"].astype(bool), "value"] = math.nan
        return frame[POINT_COLUMNS].astype(
            {"pair": "int64", "step": "int64", "ts_ms": "int64", "value": "float64"}
        )


def pick_source(
    client: MlflowClient, tracking_uri: str, backend_store_uri: str | None
) -> HistorySource:
    """The fastest source available: the backend store when we can read it, else REST."""
    store = backend_store_uri or settings.get("mlflow_backend_uri") or None
    if store is None and sqlite_store_path(tracking_uri) is not None:
        store = tracking_uri
    return StoreHistories(store) if store else RestHistories(client)
