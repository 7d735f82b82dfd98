"""Ingest lm-eval output folders (results_*.json + samples_*.jsonl) into DuckDB.

Each results file and its samples files form one all-or-nothing unit: a file
that is malformed or truncated is reported by name and field and skipped,
while the other files are ingested and nothing stored is touched.

Results files are taken in batches (up to ``BATCH_EVALS`` evals or
``BATCH_BYTES`` of samples files), because a sweep writes thousands of small
files and the cost per file and per database open, not per row, would
dominate. Two phases per batch, so dashboard readers wait only for the short one:

1. **parse**, with no database open: every results file through the field table
   (``lm_eval_parse``) and every samples file of the batch into one table of a
   private in-memory DuckDB by DuckDB's own JSON reader (``lm_eval_samples``).
   Every unusable file is found here, before anything is written;
2. **write**: attach the database file to that in-memory DuckDB once, copy the
   batch's evals, scores and staged samples in one transaction, detach. Should
   the tables refuse one eval's values, the transaction rolls back and the
   batch is written again one eval per transaction, so only that eval is lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from forgetwatch import analysis, db
from forgetwatch.collectors.base_pairs import store_pairs
from forgetwatch.collectors.linking import relink_models, upsert_model
from forgetwatch.collectors.lm_eval_choices import choice_fields, insert_choices, unread_evals
from forgetwatch.collectors.lm_eval_parse import (
    SCORE_COLUMNS,
    ParsedResults,
    bad_results,
    find_results_files,
    no_results_error,
    parse_model_args,
    parse_results,
)
from forgetwatch.collectors.lm_eval_samples import STAGED_SAMPLES, SamplesFile, stage_batch
from forgetwatch.collectors.report import Progress, SyncReport, no_progress
from forgetwatch.errors import BadInputError
from forgetwatch.queries.resolve import resolve_model
from forgetwatch.suite import Suite

__all__ = [
    "ParsedResults",
    "PhaseTimes",
    "find_results_files",
    "ingest",
    "parse_model_args",
    "parse_results",
    "store_suite",
]

SOURCE_KINDS = ("file", "artifact")
# A batch ends at whichever comes first. Bytes bound the staging memory (the
# process peaked at ~650 MiB with 256 MiB batches) and how long one write holds
# the lock (~0.3 s per batch on 2 cores). Larger batches cost less per row: each
# write has a fixed part, and DuckDB writes whole row groups straight to the
# file. The eval count bounds the statements per transaction.
BATCH_BYTES = 256 * 2**20
BATCH_EVALS = 256


@dataclass
class PhaseTimes:
    """Seconds spent parsing (no lock held) and writing (database open), summed over batches."""

    parse: float = 0.0
    write: float = 0.0


def _insert_evals(
    con: duckdb.DuckDBPyConnection,
    evals: Sequence[tuple[ParsedResults, str]],
    run_id: str | None,
    source_kind: str,
) -> None:
    """One ``evals`` row per (parsed, model id), all in one statement."""
    columns: dict[str, list] = {
        name: []
        for name in ("id", "model", "args", "version", "shot_k", "shot_v", "limit", "hash_k",
                     "hash_v", "template", "date", "source", "run", "hint", "hint_src")
    }  # fmt: skip
    for parsed, model in evals:
        fields = parsed.fields
        hint = parsed.base_hint
        for name, value in (
            ("id", parsed.eval_id),
            ("model", model),
            ("args", fields["model_args"]),
            ("version", fields["lm_eval_version"]),
            ("shot_k", list(fields["n_shot"])),
            ("shot_v", list(fields["n_shot"].values())),
            ("limit", fields["limit"]),
            ("hash_k", list(fields["task_hashes"])),
            ("hash_v", list(fields["task_hashes"].values())),
            ("template", fields["chat_template_sha"]),
            ("date", fields["date"]),
            ("source", str(parsed.path.resolve())),
            ("run", run_id or parsed.run_id),
            ("hint", hint.base_model_id if hint else None),
            ("hint_src", hint.source if hint else None),
        ):
            columns[name].append(value)
    con.execute(
        """
        INSERT INTO evals (eval_id, model_id, model_args, lm_eval_version, n_shot,
                           eval_limit, task_hashes, chat_template_sha, evaluated_at,
                           source_file, ingested_at, run_id, source_kind, base_hint,
                           base_hint_source)
        SELECT id, model, args, version, map(shot_k, shot_v), eval_limit, map(hash_k, hash_v),
               template, evaluated_at, source, now()::TIMESTAMP, run, $kind, hint, hint_src
        FROM (SELECT unnest($id::VARCHAR[]) AS id, unnest($model::VARCHAR[]) AS model,
                     unnest($args::VARCHAR[]) AS args, unnest($version::VARCHAR[]) AS version,
                     unnest($shot_k::VARCHAR[][]) AS shot_k,
                     unnest($shot_v::VARCHAR[][]) AS shot_v,
                     unnest($limit::DOUBLE[]) AS eval_limit,
                     unnest($hash_k::VARCHAR[][]) AS hash_k,
                     unnest($hash_v::VARCHAR[][]) AS hash_v,
                     unnest($template::VARCHAR[]) AS template,
                     unnest($date::TIMESTAMP[]) AS evaluated_at,
                     unnest($source::VARCHAR[]) AS source, unnest($run::VARCHAR[]) AS run,
                     unnest($hint::VARCHAR[]) AS hint, unnest($hint_src::VARCHAR[]) AS hint_src)
        """,
        columns | {"kind": source_kind},
    )


def _insert_scores(con: duckdb.DuckDBPyConnection, evals: Sequence[ParsedResults]) -> None:
    """Every score row of ``evals`` in one statement, typed by the column lists."""
    columns: dict[str, list] = {"eval_id": []} | {name: [] for name in SCORE_COLUMNS}
    for parsed in evals:
        for row in parsed.scores:
            columns["eval_id"].append(parsed.eval_id)
            for name in SCORE_COLUMNS:
                columns[name].append(row[name])
    con.execute(
        """
        INSERT INTO scores (eval_id, task, metric, filter, value, stderr, n_samples,
                            higher_is_better, is_group, n_original)
        SELECT eval_id, task, metric, filter, value, stderr, CAST(n_samples AS BIGINT),
               higher_is_better, is_group, CAST(n_original AS BIGINT)
        FROM (SELECT unnest($eval_id::VARCHAR[]) AS eval_id, unnest($task::VARCHAR[]) AS task,
                     unnest($metric::VARCHAR[]) AS metric, unnest($filter::VARCHAR[]) AS filter,
                     unnest($value::DOUBLE[]) AS value, unnest($stderr::DOUBLE[]) AS stderr,
                     unnest($n_samples::DOUBLE[]) AS n_samples,
                     unnest($higher_is_better::BOOLEAN[]) AS higher_is_better,
                     unnest($is_group::BOOLEAN[]) AS is_group,
                     unnest($n_original::DOUBLE[]) AS n_original)
        """,
        columns,
    )


def _insert_groups(con: duckdb.DuckDBPyConnection, evals: Sequence[ParsedResults]) -> None:
    """lm-eval's group structure of ``evals`` (``task_groups``), in one statement."""
    edges = [(p.eval_id, e) for p in evals for e in p.groups]
    if not edges:
        return
    con.execute(
        """
        INSERT INTO task_groups (eval_id, group_task, subtask, depth, position)
        SELECT unnest($eval_id::VARCHAR[]), unnest($group::VARCHAR[]),
               unnest($subtask::VARCHAR[]), unnest($depth::BIGINT[]),
               unnest($position::BIGINT[])
        """,
        {
            "eval_id": [eval_id for eval_id, _ in edges],
            "group": [e.group for _, e in edges],
            "subtask": [e.subtask for _, e in edges],
            "depth": [e.depth for _, e in edges],
            "position": [e.position for _, e in edges],
        },
    )


def _insert_samples(con: duckdb.DuckDBPyConnection, evals: Sequence[tuple[int, str]]) -> None:
    """Copy the staged rows of ``evals`` ((eval_no, eval_id) pairs) inside DuckDB."""
    con.execute(
        "INSERT INTO samples SELECT b.eval_id, s.task, s.doc_id, s.filter, s.metric, s.value, "
        "s.target, s.response, s.doc_hash, s.prompt_hash, s.target_hash, s.prompt "
        f"FROM {STAGED_SAMPLES} s JOIN (SELECT unnest($no::INTEGER[]) AS eval_no, "
        "unnest($id::VARCHAR[]) AS eval_id) b ON s.eval_no = b.eval_no",
        {"no": [no for no, _ in evals], "id": [eval_id for _, eval_id in evals]},
    )


def _write_evals(
    con: duckdb.DuckDBPyConnection,
    evals: Sequence[tuple[int, ParsedResults]],
    run_id: str | None,
    source_kind: str,
) -> tuple[set[str], set[str]]:
    """Insert ``evals`` (eval_no, parsed) in one transaction: (inserted ids, ids already stored).

    ``con`` is the staging DuckDB with the database file attached, so the samples
    are copied from ``STAGED_SAMPLES`` inside DuckDB. An eval stored meanwhile (by
    another process since this ingest began) is left as it is.
    """
    with db.transaction(con):
        ids = [parsed.eval_id for _, parsed in evals]
        sql = "SELECT eval_id FROM evals WHERE list_contains(?::VARCHAR[], eval_id)"
        known = {row[0] for row in con.execute(sql, [ids]).fetchall()}
        new = [(no, parsed) for no, parsed in evals if parsed.eval_id not in known]
        # Stored before choices were read (an older forgetwatch): fill in only those.
        unread = unread_evals(con, sorted(known))
        refill = [(no, p.eval_id) for no, p in evals if p.eval_id in unread]
        models: dict[tuple[str, str | None], str] = {}
        for _, parsed in new:
            for key in {(parsed.pretrained, None), (parsed.pretrained, parsed.adapter)}:
                if key not in models:  # many evals of one model: one upsert
                    mtime = parsed.model_mtime if key[1] == parsed.adapter else None
                    models[key] = upsert_model(con, key[0], key[1], "external", mtime)
        if new:
            pairs = [(p, models[(p.pretrained, p.adapter)]) for _, p in new]
            _insert_evals(con, pairs, run_id, source_kind)
            _insert_scores(con, [parsed for _, parsed in new])
            _insert_groups(con, [parsed for _, parsed in new])
            _insert_samples(con, [(no, parsed.eval_id) for no, parsed in new])
            # In the same transaction: a kill -9 after this commit must not leave the
            # new models unlinked, as a re-run finds nothing new to insert.
            relink_models(con)
        if new or refill:
            insert_choices(con, STAGED_SAMPLES, [(no, p.eval_id) for no, p in new] + refill)
    return {parsed.eval_id for _, parsed in new}, known


def _write_batch(
    con: duckdb.DuckDBPyConnection,
    evals: Sequence[tuple[int, ParsedResults]],
    run_id: str | None,
    source_kind: str,
    report: SyncReport,
) -> tuple[set[str], set[str]]:
    """One transaction for the batch, or one per eval if the tables refuse some eval's values.

    Returns (inserted ids, ids already stored); a refused eval is reported by name.
    """
    try:
        return _write_evals(con, evals, run_id, source_kind)
    except duckdb.Error:
        pass  # rolled back: write the evals one by one to find the refused one
    inserted: set[str] = set()
    known: set[str] = set()
    for item in evals:
        try:
            new, old = _write_evals(con, [item], run_id, source_kind)
        except duckdb.Error as exc:
            error = bad_results(item[1].path, "<values>", f"could not be stored ({exc})")
            report.errors.append(error.message)
            continue
        inserted |= new
        known |= old
    return inserted, known


def _samples_of(evals: Sequence[ParsedResults]) -> list[SamplesFile]:
    return [
        SamplesFile(
            eval_no=no,
            task=task,
            path=path,
            metrics=tuple(parsed.metrics.get(task, ())),
            filters=tuple(parsed.filters.get(task, ())),
            **choice_fields(parsed.fields.get("configs"), task),
        )
        for no, parsed in enumerate(evals)
        for task, path in parsed.samples.items()
    ]


def _samples_bytes(parsed: ParsedResults) -> int:
    total = 0
    for path in parsed.samples.values():
        # A file vanished since it was found counts nothing; its read reports it by name.
        with suppress(OSError):
            total += path.stat().st_size
    return total


def store_suite(con: duckdb.DuckDBPyConnection, suite: Suite) -> None:
    """Record which capability each task of ``suite`` measures, its primary metric and
    the direction the suite sets for it, if any (``suite_directions``)."""
    rows = [(t.task, suite.name, t.capability, t.metric, t.filter) for t in suite.tasks]
    names = [t.task for t in suite.tasks]
    directions = [
        (t.task, t.higher_is_better) for t in suite.tasks if t.higher_is_better is not None
    ]
    with db.transaction(con):
        con.executemany("INSERT OR REPLACE INTO suite_tasks VALUES (?, ?, ?, ?, ?)", rows)
        con.execute("DELETE FROM suite_directions WHERE list_contains(?, task)", [names])
        if directions:
            con.executemany("INSERT INTO suite_directions VALUES (?, ?)", directions)


def _stored_ids(db_path: str | os.PathLike[str] | None) -> set[str]:
    """Evals stored in full; one stored before choices were read is read again for them."""
    with db.connect(db_path) as con:
        stored = {row[0] for row in con.execute("SELECT eval_id FROM evals").fetchall()}
        return stored - unread_evals(con)


def _parse_one(path: Path, report: SyncReport) -> ParsedResults | None:
    """The parsed results file, or None when it is rejected (and reported)."""
    try:
        parsed = parse_results(path)
        if parsed.missing_samples:
            missing = parsed.missing_samples[0].name
            reason = f"says samples were logged, but {missing} is missing"
            raise bad_results(path, "task_hashes", reason)
    except BadInputError as exc:
        report.errors.append(exc.message)
        return None
    except OSError as exc:
        report.errors.append(bad_results(path, "<file>", f"could not be read ({exc})").message)
        return None
    return parsed


@dataclass
class _Batch:
    """Evals parsed and waiting to be staged, and the results files they account for."""

    evals: list[ParsedResults] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    files: int = 0  # results files taken, rejected and unchanged ones included
    size: int = 0  # bytes of the evals' samples files
    last: str = ""  # the last results file's name, for the progress label

    def add(self, parsed: ParsedResults) -> None:
        self.evals.append(parsed)
        self.ids.add(parsed.eval_id)
        self.size += _samples_bytes(parsed)

    @property
    def full(self) -> bool:
        return len(self.evals) >= BATCH_EVALS or self.size >= BATCH_BYTES


@dataclass
class _Writer:
    """One ingest call's destination and running totals; ``flush`` handles one batch."""

    db_path: str | os.PathLike[str] | None
    run_id: str | None
    source_kind: str
    report: SyncReport
    timings: PhaseTimes
    stored: set[str]

    def flush(self, batch: _Batch) -> None:
        """Stage the batch with no database open, then write it under one attach."""
        if not batch.evals:
            return
        started = time.perf_counter()
        with duckdb.connect(":memory:") as staging:
            errors = stage_batch(staging, _samples_of(batch.evals)).errors
            self.report.errors += [errors[no].message for no in sorted(errors)]
            good = [(no, parsed) for no, parsed in enumerate(batch.evals) if no not in errors]
            self.timings.parse += time.perf_counter() - started
            if not good:
                return
            started = time.perf_counter()
            with db.attached(staging, self.db_path) as con:
                inserted, known = _write_batch(
                    con, good, self.run_id, self.source_kind, self.report
                )
            self.timings.write += time.perf_counter() - started
        self.report.inserted += len(inserted)
        self.report.skipped += len(known)
        self.stored |= inserted | known


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    db_path: str | os.PathLike[str] | None = None,
    *,
    suite: Suite | None = None,
    progress: Progress = no_progress,
    run_id: str | None = None,
    source_kind: str = "file",
    timings: PhaseTimes | None = None,
    base: str | None = None,
) -> SyncReport:
    """Ingest every lm-eval results file under ``paths``; bad files are reported and skipped.

    ``run_id`` is the MLflow run these results were logged to (the artifact
    collector passes it); without it, a run id in the path or the metadata tag
    is used. ``timings``, when given, accumulates the parse and write phases.
    ``progress`` ticks once per batch, with the number of results files handled.
    ``base`` (``ingest --base``) pairs every model of these files with that model.
    """
    if source_kind not in SOURCE_KINDS:
        raise BadInputError(
            f"source_kind {source_kind!r} is not one of {', '.join(SOURCE_KINDS)}",
            "Pass source_kind='file' or 'artifact'.",
            where="ingest(source_kind=...)",
        )
    paths = list(paths)
    files = find_results_files(paths)
    if not files:  # a folder of nothing lm-eval wrote is a mistake, not "0 inserted"
        raise no_results_error(paths)
    report = SyncReport(source="lm-eval")
    timings = timings if timings is not None else PhaseTimes()
    if suite is not None:
        with db.connect(db_path) as con:
            store_suite(con, suite)
    stored = _stored_ids(db_path) if files else set()
    writer = _Writer(db_path, run_id, source_kind, report, timings, stored)
    batch, done = _Batch(), 0
    parsed_ids: set[str] = set()  # every usable results file's eval, stored now or before
    for number, path in enumerate(files, start=1):
        started = time.perf_counter()
        parsed = _parse_one(path, report)
        timings.parse += time.perf_counter() - started
        if parsed is not None:
            parsed_ids.add(parsed.eval_id)
        if parsed is not None and parsed.eval_id in batch.ids:
            # The same results bytes twice: the first copy's outcome decides the second's.
            writer.flush(batch)
            progress(done := done + batch.files, len(files), batch.last)
            batch = _Batch()
        if parsed is not None and parsed.eval_id in stored:
            report.skipped += 1
        elif parsed is not None:
            batch.add(parsed)
        batch.files += 1
        batch.last = path.name
        if batch.full or number == len(files):
            writer.flush(batch)
            progress(done := done + batch.files, len(files), batch.last)
            batch = _Batch()
    if base is not None:
        report.notes.append(_pair_with_base(db_path, parsed_ids, base))
    # New evals (or a new suite, or a base) change what the stored tests read: redo those.
    report.notes.append(analysis.refresh(db_path, progress=analysis.labelled(progress)).summary())
    return report


def _pair_with_base(db_path: str | os.PathLike[str] | None, eval_ids: set[str], base: str) -> str:
    """``ingest --base``: pair every model these evals are of (but the base) with ``base``.

    Resolved after the write, so the base may be among the folders just ingested. An
    unknown base is an error, after the evals were stored (nothing is lost).
    """
    with db.connect(db_path) as con:
        try:
            base_id = resolve_model(con, base, where="--base").model_id
        except BadInputError as exc:
            raise BadInputError(
                exc.title,
                f"{exc.next_step} The evals were ingested; pair them once the base is in the "
                "database: `forgetwatch pair MODEL --base BASE`.",
                where=exc.where,
            ) from exc
        rows = con.execute(
            "SELECT DISTINCT model_id FROM evals WHERE list_contains(?, eval_id) "
            "AND model_id <> ? ORDER BY 1",
            [sorted(eval_ids), base_id],
        ).fetchall()
        models = [m for (m,) in rows]
        with db.transaction(con):
            store_pairs(con, models, base_id)
    return f"paired {len(models)} model(s) with base {base_id}"
