"""The analysis step: pair new evals with their bases' and store the tests, once.

Every paired test (McNemar counts, bootstrap CIs, stderr fallbacks) depends only
on stored data, so it is computed when data arrives, not when a page renders.
``refresh`` runs at the end of every ``sync`` and ``ingest`` (and as
``forgetwatch analyse``): it finds the models whose inputs changed — a new eval
of the model or of its base, a new base link, a suite change, other statistics
settings (``queries.pairing.input_keys``) — and redoes only those.

Crash-safe and resumable: each batch of models is one transaction that replaces
their ``task_tests``/``capability_tests``/``settings_mismatches`` rows and records
the inputs they were
computed from in ``analysis_state``. A kill -9 rolls back the batch in flight;
the next refresh finds those models still stale and finishes the job. Batches
hold the database lock only while they run (one query over the batch's samples
plus the bootstraps), so pages wait at most one batch.

``up_to_date`` answers "would a refresh do anything?" without pandas, scipy or the
pairing query: a refresh that finds nothing stale records a digest of what the
analysis reads (``inputs_digest``) and the check recomputes it in one SQL query. A
sync with nothing to write asks it instead of refreshing (start-up cost: pandas and
scipy alone take longer than that whole sync).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

import forgetwatch
from forgetwatch import db, settings

if TYPE_CHECKING:  # imported where the tests are computed: they cost ~1 s of start-up
    import pandas as pd

Progress = Callable[[int, int, str], None]
# Models per transaction: one pairing query each. Small enough that a page waits
# well under a second for the lock, large enough that the query's fixed cost is shared.
BATCH_SIZE = 16
# What the step writes, per model; analysis_state last, as the record that the rest is done.
TABLES = ("task_tests", "capability_tests", "settings_mismatches", "analysis_state")


def _no_progress(done: int, total: int, label: str) -> None:
    pass


def labelled(progress: Progress) -> Progress:
    """``progress`` with each label marked as analysis, for a collector's own bar."""
    return lambda done, total, label: progress(done, total, f"analysing {label}")


@dataclass
class AnalysisReport:
    """What one refresh did."""

    analysed: int = 0  # models whose tests were (re)computed
    current: int = 0  # models whose stored tests were already up to date
    removed: int = 0  # models no longer evaluated: their rows were dropped
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"analysis: {self.analysed} models analysed, {self.current} up to date, "
            f"{self.removed} removed ({self.seconds:.1f} s)"
        )


def stale_models(con: duckdb.DuckDBPyConnection, *, everything: bool = False) -> list[str]:
    """Evaluated models whose stored analysis is missing or was computed from other inputs."""
    from forgetwatch.queries import pairing

    keys = pairing.input_keys(con)
    if everything:
        return list(keys["model_id"])
    stored = con.execute("SELECT model_id, inputs_key FROM analysis_state").df()
    merged = keys.merge(stored, on="model_id", how="left", suffixes=("", "_stored"))
    return list(merged.loc[merged["inputs_key"] != merged["inputs_key_stored"], "model_id"])


def _drop_unevaluated(con: duckdb.DuckDBPyConnection) -> int:
    """Remove the analysis of models that no longer have any eval."""
    with db.transaction(con):
        gone = con.execute(
            "SELECT count(*) FROM analysis_state WHERE model_id NOT IN (SELECT model_id FROM evals)"
        ).fetchone()
        for table in ("task_tests", "capability_tests", "analysis_state"):
            con.execute(f"DELETE FROM {table} WHERE model_id NOT IN (SELECT model_id FROM evals)")
    return int(gone[0]) if gone else 0


def _store(
    con: duckdb.DuckDBPyConnection, model_ids: Sequence[str], results: dict[str, pd.DataFrame],
    keys: pd.DataFrame,
) -> None:  # fmt: skip
    """Replace the batch's rows and record what they were computed from, atomically."""
    import pandas as pd

    from forgetwatch.queries import pairing

    ids = {"ids": list(model_ids)}
    stats_key = pairing.stats_key()
    tasks = results["task_tests"]
    counts = tasks.groupby("model_id").size() if not tasks.empty else pd.Series(dtype=int)
    state = keys.assign(
        stats_key=stats_key,
        n_tasks=[int(counts.get(m, 0)) for m in keys["model_id"]],
    )
    with db.transaction(con):
        for table in TABLES:
            con.execute(f"DELETE FROM {table} WHERE model_id IN (SELECT unnest($ids))", ids)
        for table, frame in results.items():
            if not frame.empty:
                con.register("incoming_tests", frame)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_tests")
                con.unregister("incoming_tests")
        con.register("incoming_state", state)
        con.execute(
            "INSERT INTO analysis_state BY NAME "
            "SELECT *, current_timestamp::TIMESTAMP AS analysed_at FROM incoming_state"
        )
        con.unregister("incoming_state")


def analyse_batch(con: duckdb.DuckDBPyConnection, model_ids: Sequence[str]) -> None:
    """Compute and store the tests of ``model_ids`` on an open read-write connection."""
    from forgetwatch.queries import comparability, pairing

    keys = pairing.input_keys(con, model_ids)
    ids = list(keys["model_id"])
    tasks, capabilities = pairing.analyse(con, ids)
    results = {
        "task_tests": tasks,
        "capability_tests": capabilities,
        "settings_mismatches": comparability.compute_settings_mismatches(con, ids),
    }
    _store(con, ids, results, keys)


# --- the cheap "nothing stale" check -----------------------------------------------------

MARKER_KEY = "analysis_inputs"  # schema_info row: inputs_digest when nothing was stale
# Tables the analysis cannot depend on: the big per-point and per-sample tables (samples
# belong to their eval, whose row is digested), bookkeeping, and the marker's own table.
# Every other table counts, so a table added later is covered without a change here.
_NOT_INPUTS = frozenset(
    {"samples", "run_metrics", "run_metric_latest", "sync_state", "jobs", "schema_info"}
)


def _input_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name"
    ).fetchall()
    return [name for (name,) in rows if name not in _NOT_INPUTS]


def _settings_key() -> str:
    """Every setting as its environment gives it, the code's version and the analysis's:
    a change of any of them (the statistics settings among them) makes the stored
    analysis suspect, so an upgrade redoes the tests even when no data changed."""
    values = (f"{s.env}={os.environ.get(s.env, s.default)}" for s in settings.SETTINGS.values())
    return ";".join(
        [f"forgetwatch={forgetwatch.__version__}", f"analysis={db.ANALYSIS_VERSION}", *values]
    )


def inputs_digest(con: duckdb.DuckDBPyConnection) -> str:
    """One digest of every row the analysis may read, in one SQL pass (no pandas).

    Per table, its row count and the sum of its rows' hashes (order-free, so a rewrite
    of the same rows keeps the digest); the settings key comes on top.
    """
    parts = [
        f"(SELECT '{name}:' || count(*) || ':' || coalesce(sum(hash(t)), 0) FROM \"{name}\" t)"
        for name in _input_tables(con)
    ]
    row = con.execute(f"SELECT md5(concat_ws('|', ?, {', '.join(parts)}))", [_settings_key()])
    found = row.fetchone()
    return str(found[0]) if found else ""


def _record_current(con: duckdb.DuckDBPyConnection) -> None:
    """On a read-write connection that just found nothing stale: remember these inputs."""
    con.execute(
        "INSERT OR REPLACE INTO schema_info VALUES (?, ?)", [MARKER_KEY, inputs_digest(con)]
    )


def up_to_date(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the last refresh found nothing stale and no input changed since: a refresh
    now would analyse nothing. Cheap (one aggregate query); False when unsure."""
    try:
        row = con.execute("SELECT value FROM schema_info WHERE key = ?", [MARKER_KEY]).fetchone()
        return row is not None and row[0] == inputs_digest(con)
    except duckdb.Error:  # a database written before the marker or one of its tables
        return False


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh(
    db_path: str | os.PathLike[str] | None = None,
    *,
    everything: bool = False,
    progress: Progress = _no_progress,
    batch_size: int = BATCH_SIZE,
) -> AnalysisReport:
    """Bring the stored analysis up to date; ``everything`` redoes every model.

    Idempotent: a second call with nothing new analyses nothing. Cheap when
    nothing changed (one query over models, evals and scores, no samples).
    """
    from forgetwatch.queries import pairing

    started = time.perf_counter()
    report = AnalysisReport()
    with db.connect(db_path) as con:
        report.removed = _drop_unevaluated(con)
        stale = stale_models(con, everything=everything)
        report.current = len(pairing.input_keys(con)) - len(stale) if not everything else 0
        if not stale:
            _record_current(con)
    for batch in _batches(stale, batch_size):
        with db.connect(db_path) as con:
            analyse_batch(con, batch)
        report.analysed += len(batch)
        progress(report.analysed, len(stale), batch[-1])
    if stale:
        # Checked again under this open's lock: a writer may have come in between batches.
        with db.connect(db_path) as con:
            if not stale_models(con):
                _record_current(con)
    report.seconds = time.perf_counter() - started
    return report
