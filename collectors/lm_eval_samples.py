"""Read lm-eval samples JSONL files into per-(doc, filter, metric) rows, off the database.

Parsing stages the rows in a table of a private in-memory DuckDB, so the heavy
work (reading and unpivoting millions of lines) happens before the database file
is opened; the write is then one short ``INSERT ... SELECT`` from that table once
the file is attached (``forgetwatch.db.attached``). Rows never leave DuckDB: an
Arrow hand-over cost more than the JSON parse itself.

Two readers, tried in order:

* **typed**: all samples files of one eval in one ``read_json`` call
  (``filename=true`` tells the task), each metric column read with the type its
  first line shows (``DOUBLE`` for numbers and bools, ``DOUBLE[]`` for lists such
  as IFEval's ``inst_level_*``). This is close to DuckDB's raw JSON speed.
* **tolerant**: one file at a time with every metric read as ``JSON`` and
  converted in SQL (numeric strings, "N/A", mixed types per line). Used when the
  typed read rejects a file, and it names the file that is truly unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import duckdb

from forgetwatch.collectors.lm_eval_fields import SAMPLE_COLUMNS
from forgetwatch.errors import BadInputError

# Where a parse leaves one eval's rows: a table of the staging (in-memory) database,
# named with its catalog so it still resolves once the database file is attached.
STAGED_SAMPLES = "memory.main.staged_samples"
MAX_OBJECT_BYTES = 268_435_456  # one huge generation must not abort the file
# The first request's context: lm-eval 0.4.3+ writes {"gen_args_0": {"arg_0": ctx, ...}},
# earlier 0.4.x versions a list of [ctx, continuation] pairs.
PROMPT_FROM_JSON = (
    "coalesce(json_extract_string(arguments, '$.gen_args_0.arg_0'), "
    "json_extract_string(arguments, '$[0][0]'))"
)


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


TAIL_BLOCK = 65_536


def _last_line(path: Path) -> bytes:
    """The bytes after the file's last newline (empty when it ends with one)."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = position = handle.tell()
        tail = b""
        while position > 0 and b"\n" not in tail and end - position < MAX_OBJECT_BYTES:
            step = min(TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
    return tail.rsplit(b"\n", 1)[-1]


def check_complete(path: Path) -> None:
    """Refuse a samples file whose last line was cut off (a copy or a write in progress).

    Checked up front because DuckDB's parallel JSON reader does not always report
    a malformed final line when it reads several files at once.
    """
    last = _last_line(path)
    if not last.strip():
        return
    try:
        json.loads(last)
    except ValueError as exc:
        raise _bad(path, "<line>", "is truncated: its last line is not complete JSON") from exc


def first_record(path: Path) -> dict | None:
    """The first line of a samples file as a dict, or None when it does not parse."""
    try:
        with path.open("rb") as handle:
            record = json.loads(handle.readline(MAX_OBJECT_BYTES))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def first_line_types(record: dict | None, metrics: list[str]) -> dict[str, str] | None:
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


def _spec(columns: Mapping[str, str]) -> str:
    return ", ".join(f"{_quote_literal(k)}: {_quote_literal(v)}" for k, v in columns.items())


def _typed_value(column: str, kind: str) -> str:
    col = _quote_ident(column)
    return f"list_avg({col})" if kind == "DOUBLE[]" else col


def typed_sql(files: Mapping[str, Path], types: Mapping[str, Mapping[str, str]]) -> str:
    """One read over every samples file of an eval; metric columns unpivoted per task."""
    columns: dict[str, str] = dict(SAMPLE_COLUMNS)
    for task_types in types.values():
        columns.update(task_types)
    task_of = ", ".join(
        f"({_quote_literal(str(path))}, {_quote_literal(task)})" for task, path in files.items()
    )
    pairs = ", ".join(
        f"({_quote_literal(task)}, {_quote_literal(m)})"
        for task, task_types in types.items()
        for m in task_types
    )
    values = ", ".join(
        f"{_typed_value(m, kind)} AS {_quote_ident(m)}"
        for m, kind in columns.items()
        if m not in SAMPLE_COLUMNS
    )
    metric_cols = ", ".join(_quote_ident(m) for m in columns if m not in SAMPLE_COLUMNS)
    return f"""
        WITH lines AS (
            SELECT f.task, doc_id, coalesce(filter, 'none') AS filter, target,
                   filtered_resps[1] AS response, doc_hash, prompt_hash, target_hash,
                   arguments.gen_args_0.arg_0 AS prompt, {values}
            FROM read_json([{", ".join(_quote_literal(str(p)) for p in files.values())}],
                           format = 'newline_delimited', filename = true,
                           columns = {{{_spec(columns)}}},
                           maximum_object_size = {MAX_OBJECT_BYTES}) r
            JOIN (VALUES {task_of}) f(fname, task) ON r.filename = f.fname
        )
        SELECT u.task, doc_id, filter, u.metric,
               CASE WHEN isfinite(v) THEN v END AS value,
               target, response, doc_hash, prompt_hash, target_hash, prompt
        FROM lines UNPIVOT INCLUDE NULLS (v FOR metric IN ({metric_cols})) u
        JOIN (VALUES {pairs}) p(task, metric) ON u.task = p.task AND u.metric = p.metric
    """


def _filter_expr(filters: list[str]) -> str:
    """A line's filter: its ``filter`` key, else its position among the doc's lines.

    lm-eval 0.4.5 and older write no ``filter`` key: a task with several filters
    writes one block of lines per filter, in the order of the task's filter_list.
    """
    if not filters:
        return "coalesce(filter, 'none')"
    names = "[" + ", ".join(_quote_literal(f) for f in filters) + "]"
    occurrence = "row_number() OVER (PARTITION BY doc_id ORDER BY line_no)"
    return f"coalesce(filter, list_extract({names}, CAST({occurrence} AS INTEGER)), 'none')"


def tolerant_sql(path: Path, task: str, metrics: list[str], filters: list[str]) -> str:
    """Read one file with metrics as JSON: numbers, bools, numeric strings or lists."""
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
    return f"""
        SELECT {_quote_literal(task)} AS task, doc_id, filter,
               metric, CASE WHEN isfinite(v) THEN v END AS value,
               target, response, doc_hash, prompt_hash, target_hash, prompt
        FROM (
            SELECT *, {value} AS v FROM (
                SELECT * EXCLUDE (target, filtered_resps, filter, line_no, arguments),
                       {PROMPT_FROM_JSON} AS prompt,
                       {_filter_expr(filters)} AS filter,
                       json_extract_string(target, '$') AS target,
                       json_extract_string(filtered_resps, '$[0]') AS response
                FROM (SELECT *, row_number() OVER () AS line_no FROM {reader})
            ) UNPIVOT INCLUDE NULLS (raw FOR metric IN ({metric_cols}))
        )
    """


def _check_doc_ids(con: duckdb.DuckDBPyConnection, files: Mapping[str, Path]) -> None:
    row = con.execute(f"SELECT task FROM {STAGED_SAMPLES} WHERE doc_id IS NULL LIMIT 1").fetchone()
    if row:
        raise _bad(files[row[0]], "doc_id", "is missing or not an integer on some lines")


def _stage_tolerant(
    con: duckdb.DuckDBPyConnection,
    files: Mapping[str, Path],
    metrics: Mapping[str, list[str]],
    filters: Mapping[str, list[str]],
) -> None:
    for number, (task, path) in enumerate(files.items()):
        sql = tolerant_sql(path, task, metrics[task], filters.get(task, []))
        into = f"INSERT INTO {STAGED_SAMPLES}" if number else f"CREATE TABLE {STAGED_SAMPLES} AS"
        try:
            con.execute(f"{into} {sql}")
        except duckdb.Error as exc:
            field_name, reason = diagnose(path)
            raise _bad(path, field_name, reason or f"could not be read ({exc})") from exc


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


def _column_types(files: Mapping[str, Path], metrics: Mapping[str, list[str]]) -> dict | None:
    """Per task, metric -> type; None when the typed reader cannot be used.

    That is when a first line does not parse, a metric is not plainly numeric, two
    tasks type one metric name differently, or lines carry no ``filter`` key.
    """
    types = {}
    for task, path in files.items():
        record = first_record(path)
        if record is None or "filter" not in record:
            return None
        types[task] = first_line_types(record, metrics[task])
    seen: dict[str, str] = {}
    for task_types in types.values():
        if task_types is None:
            return None
        for metric, kind in task_types.items():
            if seen.setdefault(metric, kind) != kind:
                return None
    return types


def stage_samples(
    con: duckdb.DuckDBPyConnection,
    files: Mapping[str, Path],
    metrics: Mapping[str, list[str]],
    filters: Mapping[str, list[str]] | None = None,
) -> bool:
    """Read every samples row of one eval into ``STAGED_SAMPLES`` of ``con``.

    ``con`` is a private in-memory DuckDB; False (and no table) when the eval has
    no samples files. ``filters`` (task -> filter names in filter_list order)
    names the filter of lines that carry no ``filter`` key, as lm-eval 0.4.5 and
    older write them.

    Raises BadInputError naming the file and field when a file cannot be used.
    """
    files = {task: path for task, path in files.items() if metrics.get(task)}
    con.execute(f"DROP TABLE IF EXISTS {STAGED_SAMPLES}")
    if not files:
        return False
    for path in files.values():
        check_complete(path)
    types = _column_types(files, metrics)
    staged = False
    if types is not None:
        try:
            con.execute(f"CREATE TABLE {STAGED_SAMPLES} AS {typed_sql(files, types)}")
            staged = True
        except duckdb.Error:
            con.execute(f"DROP TABLE IF EXISTS {STAGED_SAMPLES}")  # a later line disagrees
    if not staged:
        _stage_tolerant(con, files, metrics, filters or {})
    _check_doc_ids(con, files)
    return True
