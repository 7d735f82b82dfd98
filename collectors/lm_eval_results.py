"""Ingest lm-eval output folders (results_*.json + samples_*.jsonl) into DuckDB.

Each results file and its samples files form one all-or-nothing batch: a file
that is malformed or truncated is reported by name and field and skipped,
while the other files of the batch are ingested and nothing stored is touched.

Two phases per eval, so dashboard readers wait only for the short one:

1. **parse**, with no database open: the results file through the field table
   (``lm_eval_parse``) and every samples file into a table of a private
   in-memory DuckDB by DuckDB's own JSON reader (``lm_eval_samples``);
2. **write**: attach the database file to that in-memory DuckDB, copy the eval,
   its scores and its staged samples in one transaction, detach.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from forgetwatch import analysis, db
from forgetwatch.collectors.linking import relink_models, upsert_model
from forgetwatch.collectors.lm_eval_parse import (
    ParsedResults,
    bad_results,
    find_results_files,
    parse_model_args,
    parse_results,
)
from forgetwatch.collectors.lm_eval_samples import STAGED_SAMPLES, stage_samples
from forgetwatch.collectors.report import Progress, SyncReport, no_progress
from forgetwatch.errors import BadInputError
from forgetwatch.suite import Suite

__all__ = [
    "ParsedResults",
    "PhaseTimes",
    "find_results_files",
    "ingest",
    "parse_model_args",
    "parse_results",
    "stage_eval_samples",
    "store_suite",
]

SOURCE_KINDS = ("file", "artifact")


@dataclass
class PhaseTimes:
    """Seconds spent parsing (no lock held) and writing (database open), summed over evals."""

    parse: float = 0.0
    write: float = 0.0


def _insert_eval(
    con: duckdb.DuckDBPyConnection,
    parsed: ParsedResults,
    model: str,
    run_id: str | None,
    source_kind: str,
) -> None:
    fields = parsed.fields
    con.execute(
        """
        INSERT INTO evals (eval_id, model_id, model_args, lm_eval_version, n_shot,
                           eval_limit, task_hashes, chat_template_sha, evaluated_at,
                           source_file, ingested_at, run_id, source_kind)
        VALUES (?, ?, ?, ?, map(?::VARCHAR[], ?::VARCHAR[]), ?,
                map(?::VARCHAR[], ?::VARCHAR[]), ?, ?, ?, now()::TIMESTAMP, ?, ?)
        """,
        [
            parsed.eval_id,
            model,
            fields["model_args"],
            fields["lm_eval_version"],
            list(fields["n_shot"]),
            list(fields["n_shot"].values()),
            fields["limit"],
            list(fields["task_hashes"]),
            list(fields["task_hashes"].values()),
            fields["chat_template_sha"],
            fields["date"],
            str(parsed.path.resolve()),
            run_id,
            source_kind,
        ],
    )


def _write_eval(
    con: duckdb.DuckDBPyConnection,
    parsed: ParsedResults,
    has_samples: bool,
    run_id: str | None,
    source_kind: str,
) -> bool:
    """Insert one eval in one transaction; False when it was already stored.

    ``con`` is the staging DuckDB with the database file attached, so the samples
    are copied from ``STAGED_SAMPLES`` inside DuckDB.
    """
    with db.transaction(con):
        if con.execute("SELECT 1 FROM evals WHERE eval_id = ?", [parsed.eval_id]).fetchone():
            return False
        if parsed.adapter:
            upsert_model(con, parsed.pretrained, None, "external")
        model = upsert_model(con, parsed.pretrained, parsed.adapter, "external")
        _insert_eval(con, parsed, model, run_id, source_kind)
        incoming_scores = parsed.scores  # noqa: F841  (read by DuckDB's replacement scan)
        con.execute(
            "INSERT INTO scores SELECT ?, task, metric, filter, value, stderr, "
            "CAST(n_samples AS BIGINT), higher_is_better, is_group FROM incoming_scores",
            [parsed.eval_id],
        )
        if has_samples:
            con.execute(
                "INSERT INTO samples SELECT ?, task, doc_id, filter, metric, value, target, "
                f"response, doc_hash, prompt_hash, target_hash, prompt FROM {STAGED_SAMPLES}",
                [parsed.eval_id],
            )
    return True


def stage_eval_samples(staging: duckdb.DuckDBPyConnection, parsed: ParsedResults) -> bool:
    """Phase 1, heavy part: stage every samples row of one eval; no database is open."""
    if parsed.missing_samples:
        missing = parsed.missing_samples[0]
        raise bad_results(
            parsed.path,
            "task_hashes",
            f"says samples were logged, but {missing.name} is missing",
        )
    return stage_samples(staging, parsed.samples, parsed.metrics, parsed.filters)


def store_suite(con: duckdb.DuckDBPyConnection, suite: Suite) -> None:
    """Record which capability each task of ``suite`` measures, and its primary metric."""
    rows = [(t.task, suite.name, t.capability, t.metric, t.filter) for t in suite.tasks]
    with db.transaction(con):
        con.executemany("INSERT OR REPLACE INTO suite_tasks VALUES (?, ?, ?, ?, ?)", rows)


def _stored_ids(db_path: str | os.PathLike[str] | None) -> set[str]:
    with db.connect(db_path) as con:
        return {row[0] for row in con.execute("SELECT eval_id FROM evals").fetchall()}


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    db_path: str | os.PathLike[str] | None = None,
    *,
    suite: Suite | None = None,
    progress: Progress = no_progress,
    run_id: str | None = None,
    source_kind: str = "file",
    timings: PhaseTimes | None = None,
) -> SyncReport:
    """Ingest every lm-eval results file under ``paths``; bad files are reported and skipped.

    ``run_id`` is the MLflow run these results were logged to (the artifact
    collector passes it); without it, a run id in the path or the metadata tag
    is used. ``timings``, when given, accumulates the parse and write phases.
    """
    if source_kind not in SOURCE_KINDS:
        raise BadInputError(
            f"source_kind {source_kind!r} is not one of {', '.join(SOURCE_KINDS)}",
            "Pass source_kind='file' or 'artifact'.",
            where="ingest(source_kind=...)",
        )
    files = find_results_files(paths)
    report = SyncReport(source="lm-eval")
    timings = timings if timings is not None else PhaseTimes()
    if suite is not None:
        with db.connect(db_path) as con:
            store_suite(con, suite)
    stored = _stored_ids(db_path) if files else set()
    for done, path in enumerate(files, start=1):
        _ingest_one(path, db_path, stored, report, timings, run_id, source_kind)
        progress(done, len(files), path.name)
    if report.inserted:
        with db.connect(db_path) as con, db.transaction(con):
            relink_models(con)
    # New evals (or a new suite) change what the stored tests read: redo those now.
    report.notes.append(analysis.refresh(db_path).summary())
    return report


def _ingest_one(
    path: os.PathLike[str],
    db_path: str | os.PathLike[str] | None,
    stored: set[str],
    report: SyncReport,
    timings: PhaseTimes,
    run_id: str | None,
    source_kind: str,
) -> None:
    """Parse (no lock), then write in one short transaction; errors go to the report."""
    try:
        started = time.perf_counter()
        parsed = parse_results(Path(path))
        if parsed.eval_id in stored:
            report.skipped += 1
            return
        with duckdb.connect(":memory:") as staging:
            has_samples = stage_eval_samples(staging, parsed)
            timings.parse += time.perf_counter() - started
            started = time.perf_counter()
            with db.attached(staging, db_path) as con:
                run = run_id or parsed.run_id
                written = _write_eval(con, parsed, has_samples, run, source_kind)
            timings.write += time.perf_counter() - started
        stored.add(parsed.eval_id)
        if written:
            report.inserted += 1
        else:
            report.skipped += 1
    except BadInputError as exc:
        report.errors.append(exc.message)
    except OSError as exc:
        error = bad_results(Path(path), "<file>", f"could not be read ({exc})")
        report.errors.append(error.message)
    except duckdb.Error as exc:  # a value the tables refuse; the transaction rolled back
        error = bad_results(Path(path), "<values>", f"could not be stored ({exc})")
        report.errors.append(error.message)
