"""Read lm-eval samples JSONL files into per-(doc, filter, metric) rows, off the database.

Parsing stages the rows of a whole batch of evals in one table of a private
in-memory DuckDB, so the heavy work (reading and unpivoting millions of lines)
happens before the database file is opened; the write is then one short
``INSERT ... SELECT`` from that table once the file is attached
(``forgetwatch.db.attached``). Rows never leave DuckDB: an Arrow hand-over cost
more than the JSON parse itself.

lm-eval writes one small samples file per task per eval, so a sweep is tens of
thousands of files of a few dozen lines. DuckDB's JSON reader spends more time
per file than per line on files that small, so two readers are tried in order:

* **typed**: small files are copied into one batch file, each line wrapped
  with its file's number (``TAG``), and read in one ``read_json`` call; large
  files join that call in place (``filename=true`` names them). Each metric
  column is read with the type its file's first line shows (``DOUBLE`` for
  numbers and bools, ``DOUBLE[]`` for lists such as IFEval's ``inst_level_*``).
  If the call fails, the batch is split in halves until the refusing files are
  alone; the others stay on this path.
* **tolerant**: one file at a time with every metric read as ``JSON`` and
  converted in SQL (numeric strings, "N/A", mixed types per line). Used for the
  files the typed read refuses or cannot take, and it names the file that is
  truly unreadable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import duckdb

from forgetwatch.collectors.lm_eval_choices import (
    DEFAULT_DELIMITER,
    NO_CHOICES,
    STAGED_CHOICE_COLUMNS,
    choice_columns,
    choice_struct,
    delimiter,
)
from forgetwatch.collectors.lm_eval_fields import SAMPLE_COLUMNS
from forgetwatch.errors import BadInputError

# Where a parse leaves a batch's rows: tables of the staging (in-memory) database,
# named with their catalog so they still resolve once the database file is attached.
STAGED_SAMPLES = "memory.main.staged_samples"
# file_no -> eval_no, task, the metrics its task reports, its path if read in place, and
# the delimiter before each choice (NULL: not a multiple-choice file)
STAGED_FILES = "memory.main.staged_files"
STAGED_COLUMNS = (
    "eval_no INTEGER, task VARCHAR, doc_id BIGINT, filter VARCHAR, metric VARCHAR, "
    "value DOUBLE, target VARCHAR, response VARCHAR, doc_hash VARCHAR, prompt_hash VARCHAR, "
    f"target_hash VARCHAR, prompt VARCHAR, {STAGED_CHOICE_COLUMNS}"
)
# The typed read takes ``arguments`` as JSON: the prompt and, on multiple-choice lines,
# every choice's continuation come out of it (``lm_eval_choices``).
TYPED_COLUMNS = {**SAMPLE_COLUMNS, "arguments": "JSON"}
MAX_OBJECT_BYTES = 268_435_456  # one huge generation must not abort the file
# Files up to this size are copied into the batch file; larger ones cost DuckDB
# little per line and are read where they lie.
COPY_BYTES = 8 * 2**20
# Each copied line is wrapped as {TAG: file number in the batch, "line": the line}.
TAG = "__forgetwatch_file_no"


@dataclass(frozen=True)
class SamplesFile:
    """One samples file of a batch: which eval (``eval_no``) and task its lines belong to.

    ``filters`` is the task's filter_list order, which names the filter of lines
    that carry no ``filter`` key (lm-eval 0.4.5 and older). ``multiple_choice`` is
    what the task config's ``output_type`` says (None: no config; the first line
    decides), ``target_delimiter`` what lm-eval put before each choice.
    """

    eval_no: int
    task: str
    path: Path
    metrics: tuple[str, ...]
    filters: tuple[str, ...] = ()
    multiple_choice: bool | None = None
    target_delimiter: str = DEFAULT_DELIMITER


@dataclass(frozen=True)
class _Typed:
    """A file the typed reader takes: its number in the batch, metric types, where it lies."""

    file_no: int
    file: SamplesFile
    types: dict[str, str]
    span: tuple[int, int] | None  # (offset, length) in the batch file; None: read in place
    delimiter: str | None = None  # None: not a multiple-choice file


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _bad(path: Path, field_name: str, reason: str) -> BadInputError:
    return BadInputError(
        f"{path.name}: field `{field_name}` {reason}",
        "Re-run lm-eval with --log_samples for this model, or move the results file and its "
        "samples out of the folder; the other files were ingested.",
        where=str(path),
    )


TAIL_BLOCK = 4096


def _last_line(path: Path) -> bytes:
    """The bytes after the file's last newline (empty when it ends with one)."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = position = handle.tell()
        tail = b""
        step = TAIL_BLOCK
        while position > 0 and b"\n" not in tail and end - position < MAX_OBJECT_BYTES:
            step = min(step * 2, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
    return tail.rsplit(b"\n", 1)[-1]


def _check_last_line(path: Path, last: bytes) -> None:
    if not last.strip():
        return
    try:
        json.loads(last)
    except ValueError as exc:
        raise _bad(path, "<line>", "is truncated: its last line is not complete JSON") from exc


def check_complete(path: Path) -> None:
    """Refuse a samples file whose last line was cut off (a copy or a write in progress).

    Checked up front because DuckDB's parallel JSON reader does not always report
    a malformed final line when it reads several files at once.
    """
    _check_last_line(path, _last_line(path))


def _as_record(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def first_record(path: Path) -> dict | None:
    """The first line of a samples file as a dict, or None when it does not parse."""
    try:
        with path.open("rb") as handle:
            return _as_record(handle.readline(MAX_OBJECT_BYTES))
    except OSError:
        return None


def first_line_types(record: dict | None, metrics: Sequence[str]) -> dict[str, str] | None:
    """DuckDB types for each metric, judged from a file's first line; None if unsure."""
    if record is None:
        return None
    types: dict[str, str] = {}
    for metric in metrics:
        value = record.get(metric)
        if isinstance(value, bool | int | float):
            types[metric] = "DOUBLE"
        elif isinstance(value, list) and all(isinstance(v, bool | int | float) for v in value):
            types[metric] = "DOUBLE[]"
        else:
            return None  # strings, nulls or nested values: let the tolerant reader decide
    return types


def _wrapped(file_no: int, data: bytes) -> bytes | memoryview:
    """Each line of ``data`` as ``{"TAG": file_no, "line": <line>}``, newline-ended.

    A blank line, or one that is not a JSON object, leaves the wrapped line invalid
    or untyped, so the typed read refuses its file and the tolerant one reads it.
    """
    head = b'{"' + TAG.encode() + b'": %d, "line": ' % file_no
    body = head + data.replace(b"\n", b"}\n" + head)  # a one-byte pattern: the fast replace
    return memoryview(body)[: -len(head)] if data.endswith(b"\n") else body + b"}\n"


def _inspect(file: SamplesFile) -> tuple[dict[str, str], bytes | None, str | None] | None:
    """(metric types, its bytes if it is to be copied, its choice delimiter) when the typed
    reader can take the file; None sends it to the tolerant reader.

    Raises BadInputError when the file cannot be read or its last line was cut off.
    """
    try:
        if file.path.stat().st_size > COPY_BYTES:
            check_complete(file.path)
            record, data = first_record(file.path), None
        else:
            data = file.path.read_bytes()
            _check_last_line(file.path, data[data.rfind(b"\n") + 1 :])
            first = data.find(b"\n")
            record = _as_record(data if first < 0 else data[:first])
    except OSError as exc:
        raise _bad(file.path, "<file>", f"could not be read ({exc})") from exc
    if record is None or "filter" not in record:
        return None  # no filter key: the tolerant reader infers it from line order
    if not SAMPLE_COLUMNS.keys().isdisjoint(file.metrics):
        return None  # a metric named like a fixed column: read it as JSON
    types = first_line_types(record, file.metrics)
    if types is None:
        return None
    return types, data, delimiter(file.multiple_choice, file.target_delimiter, record)


@contextmanager
def _scratch() -> Iterator[tuple[IO[bytes], str]]:
    """A temporary file and the name DuckDB reads it by.

    Where the system has ``/proc/self/fd`` (Linux) the file never has a name on
    disk, so even a kill -9 mid-ingest leaves nothing behind; elsewhere it is a
    named file deleted on close.
    """
    with tempfile.TemporaryFile(prefix="forgetwatch-samples-") as handle:
        unnamed = Path(f"/proc/self/fd/{handle.fileno()}")
        if unnamed.exists():
            yield handle, str(unnamed)
            return
    with tempfile.NamedTemporaryFile(prefix="forgetwatch-samples-", suffix=".jsonl") as handle:
        yield handle, handle.name


class _Copies:
    """The wrapped lines of a batch's small files, in one temporary file.

    Files are appended as they are inspected, so no file's bytes stay in memory
    for long; a subset (one type group, or half of a refused read) is cut out of
    it by offset.
    """

    def __init__(self, handle: IO[bytes], name: str) -> None:
        self.handle = handle
        self.name = name  # what DuckDB opens
        self.count = 0

    def append(self, file_no: int, data: bytes) -> tuple[int, int]:
        offset = self.handle.tell()
        length = self.handle.write(_wrapped(file_no, data))
        self.count += 1
        return offset, length

    @contextmanager
    def source(self, group: Sequence[_Typed]) -> Iterator[str | None]:
        """A file holding exactly the copied files of ``group``; None when it has none."""
        spans = [t.span for t in group if t.span is not None]
        self.handle.flush()
        if not spans or len(spans) == self.count:
            yield self.name if spans else None
            return
        with _scratch() as (part, name):
            for offset, length in spans:
                part.write(os.pread(self.handle.fileno(), length, offset))
            part.flush()
            yield name


def _spec(columns: Mapping[str, str]) -> str:
    return ", ".join(f"{_quote_literal(k)}: {_quote_literal(v)}" for k, v in columns.items())


def _typed_value(expr: str, kind: str) -> str:
    """A metric as one number: a list-valued one (IFEval's ``inst_level_*``) is its mean."""
    return f"list_avg({expr})" if kind == "DOUBLE[]" else expr


def _reader(sources: Sequence[str], columns: Mapping[str, str], filename: bool) -> str:
    return (
        f"read_json([{', '.join(_quote_literal(s) for s in sources)}], "
        f"format = 'newline_delimited', filename = {str(filename).lower()}, "
        f"columns = {{{_spec(columns)}}}, maximum_object_size = {MAX_OBJECT_BYTES})"
    )


def _line_values(row: str, types: Mapping[str, str]) -> str:
    """One line's columns from ``row`` (a struct or table alias), metrics as a list.

    The list holds a {metric, v} pair per metric column of the read; the file's
    own metrics are picked from it afterwards, so each line becomes exactly one
    row per metric its task reports.
    """
    pairs = ", ".join(
        f"{{'metric': {_quote_literal(m)}, 'v': {_typed_value(f'{row}.{_quote_ident(m)}', kind)}}}"
        for m, kind in types.items()
    )
    return (
        f"{row}.doc_id AS doc_id, coalesce({row}.filter, 'none') AS filter, "
        f"{row}.target AS target, json_extract_string({row}.filtered_resps, '$[0]') AS response, "
        f"{row}.doc_hash AS doc_hash, {row}.prompt_hash AS prompt_hash, "
        f"{row}.target_hash AS target_hash, {_prompt(f'{row}.arguments')} AS prompt, "
        f"{choice_struct(f'{row}.arguments', f'{row}.filtered_resps')} AS mc, [{pairs}] AS vals"
    )


def _prompt(arguments: str) -> str:
    """The first request's context, from ``arguments`` as JSON.

    lm-eval 0.4.3+ writes {"gen_args_0": {"arg_0": ctx, ...}}, earlier 0.4.x
    versions a list of [ctx, continuation] pairs.
    """
    return (
        f"coalesce(json_extract_string({arguments}, '$.gen_args_0.arg_0'), "
        f"json_extract_string({arguments}, '$[0][0]'))"
    )


def typed_sql(copied: str | None, in_place: Sequence[str], types: Mapping[str, str]) -> str:
    """One read over the batch file ``copied`` and the files ``in_place``, one row per
    (line, metric its file's task reports).

    A copied line names its file in ``TAG``; a file read in place is found by
    its name in ``STAGED_FILES``.
    """
    columns = {**TYPED_COLUMNS, **types}
    parts = []
    if copied is not None:
        line = "STRUCT(" + ", ".join(f"{_quote_ident(k)} {v}" for k, v in columns.items()) + ")"
        wrapped = _reader([copied], {TAG: "INTEGER", "line": line}, filename=False)
        parts.append(
            f"SELECT {_quote_ident(TAG)} AS file_no, {_line_values('line', types)} FROM {wrapped}"
        )
    if in_place:
        parts.append(
            f"SELECT d.file_no, {_line_values('r', types)} "
            f"FROM {_reader(in_place, columns, filename=True)} r "
            f"JOIN (SELECT file_no, path FROM {STAGED_FILES} WHERE path IS NOT NULL) d "
            "ON r.filename = d.path"
        )
    # A line's choices go on its first metric's row only, and only in multiple-choice files.
    return f"""
        SELECT eval_no, task, doc_id, filter, metric, value, target, response, doc_hash,
               prompt_hash, target_hash, prompt, {choice_columns("mc", "target", "delimiter")}
        FROM (
            SELECT eval_no, task, doc_id, filter, x.metric,
                   CASE WHEN isfinite(x.v) THEN x.v END AS value,
                   target, response, doc_hash, prompt_hash, target_hash, prompt, delimiter,
                   CASE WHEN x.metric = first_metric AND delimiter IS NOT NULL THEN mc END AS mc
            FROM (
                SELECT f.eval_no, f.task, f.metrics[1] AS first_metric, f.delimiter,
                       l.* EXCLUDE (file_no, vals),
                       unnest(list_filter(l.vals, lambda x: list_contains(f.metrics, x.metric)))
                           AS x
                FROM ({" UNION ALL ".join(parts)}) l JOIN {STAGED_FILES} f USING (file_no)
            )
        )
    """


def _filter_expr(filters: Sequence[str]) -> str:
    """A line's filter: its ``filter`` key, else its position among the doc's lines.

    lm-eval 0.4.5 and older write no ``filter`` key: a task with several filters
    writes one block of lines per filter, in the order of the task's filter_list.
    """
    if not filters:
        return "coalesce(filter, 'none')"
    names = "[" + ", ".join(_quote_literal(f) for f in filters) + "]"
    occurrence = "row_number() OVER (PARTITION BY doc_id ORDER BY line_no)"
    return f"coalesce(filter, list_extract({names}, CAST({occurrence} AS INTEGER)), 'none')"


def tolerant_sql(
    path: Path,
    task: str,
    metrics: Sequence[str],
    filters: Sequence[str],
    choice_delimiter: str | None = None,
) -> str:
    """Read one file with metrics as JSON: numbers, bools, numeric strings or lists.

    ``choice_delimiter`` None: not a multiple-choice file, so no choices are read.
    """
    columns = {**SAMPLE_COLUMNS, "target": "JSON", "filtered_resps": "JSON", "arguments": "JSON"}
    columns.update({m: "JSON" for m in metrics})
    metric_cols = ", ".join(_quote_ident(m) for m in dict.fromkeys(metrics))
    scalar = (
        "CASE json_type({v}) WHEN 'BOOLEAN' THEN CAST(CAST({v} AS BOOLEAN) AS DOUBLE) "
        "ELSE TRY_CAST(json_extract_string({v}, '$') AS DOUBLE) END"
    )
    value = (
        "CASE json_type(raw) WHEN 'ARRAY' THEN list_avg(list_transform("
        f"CAST(raw AS JSON[]), lambda x: {scalar.format(v='x')})) "
        f"ELSE {scalar.format(v='raw')} END"
    )
    # Line order is kept (DuckDB preserves insertion order), so row_number() is the line.
    reader = (
        f"read_json({_quote_literal(str(path))}, format = 'newline_delimited', "
        f"columns = {{{_spec(columns)}}}, maximum_object_size = {MAX_OBJECT_BYTES})"
    )
    if choice_delimiter is None or not metrics:
        mc, choices = "NULL", NO_CHOICES
    else:
        mc = choice_struct("arguments", "filtered_resps")
        first = f"(CASE WHEN metric = {_quote_literal(metrics[0])} THEN mc END)"
        choices = choice_columns(first, "target", _quote_literal(choice_delimiter))
    return f"""
        SELECT {_quote_literal(task)} AS task, doc_id, filter,
               metric, CASE WHEN isfinite(v) THEN v END AS value,
               target, response, doc_hash, prompt_hash, target_hash, prompt, {choices}
        FROM (
            SELECT *, {value} AS v FROM (
                SELECT * EXCLUDE (target, filtered_resps, filter, line_no, arguments),
                       {_prompt("arguments")} AS prompt, {mc} AS mc,
                       {_filter_expr(filters)} AS filter,
                       json_extract_string(target, '$') AS target,
                       json_extract_string(filtered_resps, '$[0]') AS response
                FROM (SELECT *, row_number() OVER () AS line_no FROM {reader})
            ) UNPIVOT INCLUDE NULLS (raw FOR metric IN ({metric_cols}))
        )
    """


_LINE_TYPES: dict[str, tuple[type, ...]] = {
    "doc_id": (int,),
    "filter": (str,),
    "filtered_resps": (list,),
    "doc_hash": (str,),
    "prompt_hash": (str,),
    "target_hash": (str,),
}


def diagnose(path: Path) -> tuple[str, str]:
    """(field, reason) for the first line DuckDB refused; only run once a read failed."""
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                problem = _line_problem(raw)
                if problem:
                    return problem[0], f"{problem[1]} on line {number}"
    except OSError as exc:
        return "<file>", f"could not be read ({exc})"
    return "<line>", ""


def _line_problem(raw: bytes) -> tuple[str, str] | None:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "<line>", "is not UTF-8"
    except ValueError:
        return "<line>", "is not valid JSON (truncated?)"
    if not isinstance(record, dict):
        return "<line>", "is not a JSON object"
    for name, kinds in _LINE_TYPES.items():
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            return name, f"has type {type(value).__name__}, expected {kinds[0].__name__}"
    if not isinstance(record.get("doc_id"), int):
        return "doc_id", "is missing"
    return None


def _type_groups(typed: Sequence[_Typed]) -> list[list[_Typed]]:
    """Files in groups whose metric types agree, so each group is one ``read_json`` call."""
    groups: list[tuple[dict[str, str], list[_Typed]]] = []
    for item in typed:
        for types, members in groups:
            if all(types.get(m, kind) == kind for m, kind in item.types.items()):
                types.update(item.types)
                members.append(item)
                break
        else:
            groups.append((dict(item.types), [item]))
    return [members for _, members in groups]


def _register(con: duckdb.DuckDBPyConnection, typed: Sequence[_Typed]) -> None:
    """The batch's file map: each file number's eval, task, metrics and (if read in place) path."""
    con.execute(
        f"CREATE OR REPLACE TABLE {STAGED_FILES} AS SELECT unnest($no::INTEGER[]) AS file_no, "
        "unnest($eval::INTEGER[]) AS eval_no, unnest($task::VARCHAR[]) AS task, "
        "unnest($metrics::VARCHAR[][]) AS metrics, unnest($path::VARCHAR[]) AS path, "
        "unnest($delimiter::VARCHAR[]) AS delimiter",
        {
            "no": [t.file_no for t in typed],
            "eval": [t.file.eval_no for t in typed],
            "task": [t.file.task for t in typed],
            "metrics": [list(t.types) for t in typed],
            "path": [None if t.span is not None else str(t.file.path) for t in typed],
            "delimiter": [t.delimiter for t in typed],
        },
    )


def _read_typed(con: duckdb.DuckDBPyConnection, group: Sequence[_Typed], copies: _Copies) -> None:
    """Stage one group in one ``read_json`` call; raises duckdb.Error, staging nothing."""
    types: dict[str, str] = {}
    for item in group:
        types.update(item.types)
    in_place = [str(t.file.path) for t in group if t.span is None]
    with copies.source(group) as copied:
        sql = typed_sql(copied, in_place, types)
        con.execute(f"INSERT INTO {STAGED_SAMPLES} {sql}")


def _stage_typed(
    con: duckdb.DuckDBPyConnection, group: Sequence[_Typed], copies: _Copies
) -> list[_Typed]:
    """Stage ``group`` with the typed reader; returns the files it refused, each alone."""
    try:
        _read_typed(con, group, copies)
    except duckdb.Error:  # a later line disagrees with the first, or is malformed
        if len(group) == 1:
            return list(group)
        half = len(group) // 2
        return _stage_typed(con, group[:half], copies) + _stage_typed(con, group[half:], copies)
    return []


def _stage_tolerant(con: duckdb.DuckDBPyConnection, file: SamplesFile) -> None:
    choices = delimiter(file.multiple_choice, file.target_delimiter, first_record(file.path))
    sql = tolerant_sql(file.path, file.task, file.metrics, file.filters, choices)
    try:
        con.execute(f"INSERT INTO {STAGED_SAMPLES} SELECT {file.eval_no:d}, * FROM ({sql})")
    except duckdb.Error as exc:
        field_name, reason = diagnose(file.path)
        raise _bad(file.path, field_name, reason or f"could not be read ({exc})") from exc


def _doc_id_errors(
    con: duckdb.DuckDBPyConnection, files: Sequence[SamplesFile]
) -> dict[int, BadInputError]:
    rows = con.execute(
        f"SELECT DISTINCT eval_no, task FROM {STAGED_SAMPLES} WHERE doc_id IS NULL"
    ).fetchall()
    path_of = {(f.eval_no, f.task): f.path for f in files}
    return {
        eval_no: _bad(
            path_of[(eval_no, task)], "doc_id", "is missing or not an integer on some lines"
        )
        for eval_no, task in rows
    }


@dataclass
class Staged:
    """What staging a batch found: unusable evals, and the files read the slow way."""

    errors: dict[int, BadInputError]  # eval_no -> the error naming its unusable file
    tolerant: list[Path]  # files the typed reader refused or could not take


def stage_batch(con: duckdb.DuckDBPyConnection, files: Sequence[SamplesFile]) -> Staged:
    """Read every samples row of ``files`` into ``STAGED_SAMPLES`` of ``con``.

    ``con`` is a private in-memory DuckDB; the table is created afresh and holds
    ``eval_no`` plus the columns of ``samples``. An eval with an unusable file
    gets the error naming that file and field; its rows may be partly staged,
    so the caller writes none of them.
    """
    con.execute(f"CREATE OR REPLACE TABLE {STAGED_SAMPLES} ({STAGED_COLUMNS})")
    errors: dict[int, BadInputError] = {}
    typed: list[_Typed] = []
    tolerant: list[SamplesFile] = []
    with _scratch() as (handle, name):
        copies = _Copies(handle, name)
        for file in files:
            if file.eval_no in errors or not file.metrics:
                continue
            try:
                seen = _inspect(file)
            except BadInputError as exc:
                errors[file.eval_no] = exc
                continue
            if seen is None:
                tolerant.append(file)
                continue
            types, data, choices = seen
            span = None if data is None else copies.append(len(typed), data)
            typed.append(_Typed(len(typed), file, types, span, choices))
        typed = [t for t in typed if t.file.eval_no not in errors]
        if typed:
            _register(con, typed)
        for group in _type_groups(typed):
            tolerant += [t.file for t in _stage_typed(con, group, copies)]
    for file in tolerant:
        if file.eval_no not in errors:
            try:
                _stage_tolerant(con, file)
            except BadInputError as exc:
                errors[file.eval_no] = exc
    return Staged({**_doc_id_errors(con, files), **errors}, [f.path for f in tolerant])
