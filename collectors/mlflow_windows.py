"""Which MLflow runs an incremental sync must read, and the watermarks that decide it.

MLflow runs carry no last-updated time, and search filters only support AND, so
one sync merges several searches by run_id (filter syntax checked against
``mlflow server`` 3.17):

* ``attributes.start_time >= W_start - slack``: runs created since the last sync;
* ``attributes.end_time >= W_end - slack``: runs that finished since then, even
  when they started long before (a client clock behind, a resumed run);
* ``attributes.status = 'RUNNING'``: runs MLflow still reports as running;
* ``attributes.run_id IN (...)``: runs our table still holds as RUNNING, so a run
  that finished, failed or was killed is re-read whatever its times say.

The slack absorbs client clocks that disagree by up to that much. A full sweep
(every active run, no filter) runs when ``--full`` is given, on the first sync
of a source, and every ``FORGETWATCH_FULL_SWEEP_HOURS``: it is how deleted and
restored runs are noticed, because MLflow's search has no "changed since".

Watermarks are written only after every page is committed, so a sync killed at
any point re-reads the same windows next time and converges to a clean sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import duckdb

from forgetwatch import settings

if TYPE_CHECKING:  # MLflow is imported only by the searches that call it (start-up cost)
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

ORDER_BY = ["attributes.start_time ASC", "attributes.run_id ASC"]
ID_CHUNK = 100  # run ids per `run_id IN (...)` filter, to keep filter strings short


@dataclass
class Watermarks:
    """Where the last completed sync of one source got to (naive UTC timestamps)."""

    max_start_time: datetime | None = None
    max_end_time: datetime | None = None
    last_full_sweep: datetime | None = None
    synced_at: datetime | None = None  # when the last sync of this source completed
    # ``mlflow_store.store_digest`` of a sqlite store as the last completed sync began
    # reading it: while the store still has this digest, a re-sync has nothing to read.
    store_digest: str | None = None

    def advanced(self, start_ms: Iterable[int | None], end_ms: Iterable[int | None]) -> Watermarks:
        """These watermarks moved forward to the newest of the runs' start and end times
        (epoch milliseconds, None or 0 when a run has none)."""
        return Watermarks(
            _later(self.max_start_time, max((ms for ms in start_ms if ms), default=None)),
            _later(self.max_end_time, max((ms for ms in end_ms if ms), default=None)),
            self.last_full_sweep,
            self.synced_at,
            self.store_digest,
        )


@dataclass(frozen=True)
class Window:
    """The runs an incremental sync reads: any run matching one of these conditions.

    The REST path asks one search per condition (``filters``) and merges them by
    run_id; a backend-store read ORs them in one query. Same runs either way.
    """

    started_since_ms: int
    ended_since_ms: int | None
    running_ids: tuple[str, ...]

    def filters(self) -> list[str]:
        """One search filter string per condition (MLflow's search has no OR)."""
        filters = [f"attributes.start_time >= {self.started_since_ms}"]
        if self.ended_since_ms is not None:
            filters.append(f"attributes.end_time >= {self.ended_since_ms}")
        filters.append("attributes.status = 'RUNNING'")
        ids = self.running_ids
        for i in range(0, len(ids), ID_CHUNK):
            quoted = ", ".join(f"'{run_id}'" for run_id in ids[i : i + ID_CHUNK])
            filters.append(f"attributes.run_id IN ({quoted})")
        return filters


def to_datetime(ms: int | None) -> datetime | None:
    """MLflow epoch milliseconds as a naive UTC timestamp, the way runs.start_time stores it."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None) if ms else None


def to_ms(when: datetime) -> int:
    return int(when.replace(tzinfo=UTC).timestamp() * 1000)


def _later(current: datetime | None, ms: int | None) -> datetime | None:
    seen = to_datetime(ms)
    if seen is None:
        return current
    return seen if current is None else max(current, seen)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def source_key(uri: str, experiment_ids: list[str] | None = None) -> str:
    """``mlflow:<uri>``; a sync limited to some experiments keeps watermarks of its own,
    or syncing one experiment would move the marks past another's unread runs."""
    if not experiment_ids:
        return f"mlflow:{uri}"
    return f"mlflow:{uri}#experiments={','.join(sorted(experiment_ids))}"


def load(con: duckdb.DuckDBPyConnection, source: str) -> Watermarks:
    row = con.execute(
        "SELECT max_start_time, max_end_time, last_full_sweep, synced_at, store_digest "
        "FROM sync_state WHERE source = ?",
        [source],
    ).fetchone()
    return Watermarks(*row) if row else Watermarks()


def save(con: duckdb.DuckDBPyConnection, source: str, marks: Watermarks, detail: str) -> None:
    """Record a completed sync; ``marks.synced_at`` must be its completion time."""
    con.execute(
        "INSERT OR REPLACE INTO sync_state (source, synced_at, detail, max_start_time, "
        "max_end_time, last_full_sweep, store_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            source,
            marks.synced_at,
            detail,
            marks.max_start_time,
            marks.max_end_time,
            marks.last_full_sweep,
            marks.store_digest,
        ],
    )


def pending_run_ids(con: duckdb.DuckDBPyConnection, uri: str, marks: Watermarks) -> list[str]:
    """Runs written after the last completed sync: a killed sync's changes still get their
    structure (LoggedModels, artifacts) collected by the next one."""
    rows = con.execute(
        "SELECT run_id FROM runs WHERE tracking_uri = ? AND synced_at > ? ORDER BY run_id",
        [uri, marks.synced_at or datetime.min],
    ).fetchall()
    return [row[0] for row in rows]


def needs_full_sweep(marks: Watermarks, now: datetime) -> bool:
    """True on a source's first sync and once the last full sweep is too old."""
    if marks.last_full_sweep is None or marks.max_start_time is None:
        return True
    hours = settings.number("full_sweep_hours")
    return now - marks.last_full_sweep >= timedelta(hours=hours)


def slack() -> timedelta:
    return timedelta(minutes=settings.number("sync_slack_minutes"))


def incremental_window(marks: Watermarks, running_ids: list[str]) -> Window:
    """What an incremental sync reads after ``marks``, with each time moved back by the slack."""
    assert marks.max_start_time is not None
    end = marks.max_end_time
    return Window(
        started_since_ms=to_ms(marks.max_start_time - slack()),
        ended_since_ms=None if end is None else to_ms(end - slack()),
        running_ids=tuple(running_ids),
    )


def window_filters(marks: Watermarks, running_ids: list[str]) -> list[str]:
    """The filter strings of an incremental sync (each one search; results merge by run_id)."""
    return incremental_window(marks, running_ids).filters()


def known_running(con: duckdb.DuckDBPyConnection, uri: str, experiment_ids: list[str]) -> list[str]:
    """Runs our table still holds as RUNNING: they are re-read on every sync."""
    rows = con.execute(
        "SELECT run_id FROM runs WHERE tracking_uri = ? AND status = 'RUNNING' "
        "AND NOT coalesce(deleted, false) AND list_contains(?, experiment_id) ORDER BY run_id",
        [uri, experiment_ids],
    ).fetchall()
    return [row[0] for row in rows]


def _search(
    client: MlflowClient, experiment_ids: list[str], filter_string: str, page_size: int
) -> Iterator[list[Run]]:
    """One search, page by page, in a stable order (MLflow pages by offset)."""
    from mlflow.entities import ViewType

    token: str | None = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=page_size,
            order_by=ORDER_BY,
            page_token=token,
        )
        if page:
            yield list(page)
        token = page.token
        if not token:
            return


def merged_pages(
    client: MlflowClient,
    experiment_ids: list[str],
    filters: list[str],
    page_size: int,
    seen: set[str],
) -> Iterator[list[Run]]:
    """Pages of runs from every search in ``filters``, each run once (``seen`` is updated).

    Offset paging sorted by (start_time, run_id) never skips a run created during
    the sync: a new run sorts after the ones already read, and one that sorts
    earlier (a client clock behind) only shifts a run already read into the next
    page, where ``seen`` drops it. A run deleted mid-sync can shift one run past
    a page boundary; the next sync's slack or full sweep reads it.
    """
    if not experiment_ids:
        return
    for filter_string in filters:
        for page in _search(client, experiment_ids, filter_string, page_size):
            fresh = [run for run in page if run.info.run_id not in seen]
            seen.update(run.info.run_id for run in fresh)
            if fresh:
                yield fresh
