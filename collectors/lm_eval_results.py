"""Ingest lm-eval output folders (results_*.json + samples_*.jsonl) into DuckDB.

Each results file and its samples files form one all-or-nothing batch: a file
that is malformed or truncated is reported by name and reason and skipped,
while the other files of the batch are ingested and nothing stored is touched.
Results files are small and parsed through the field table in
``lm_eval_fields``; samples files can hold millions of lines and are read by
DuckDB's own ``read_json`` and unpivoted in SQL, never looped over in Python.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from collectors.linking import relink_models, upsert_model
from collectors.lm_eval_fields import (
    NON_METRIC_KEYS,
    RESULTS_FIELDS,
    SAMPLE_COLUMNS,
    lookup,
    to_float,
)
from collectors.report import Progress, SyncReport, no_progress
from evals.suite import Suite
from forgetwatch import db
from forgetwatch.errors import BadInputError

RESULTS_GLOB = "results_*.json"


@dataclass
class ParsedResults:
    """One results file, validated and flattened into rows ready to insert."""

    path: Path
    eval_id: str
    fields: dict[str, Any]
    pretrained: str
    adapter: str | None
    scores: pd.DataFrame
    samples: dict[str, Path]  # task -> samples file
    metrics: dict[str, list[str]]  # task -> metric names


def find_results_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every results file under the given folders, plus results files given directly."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found.extend(sorted(entry.rglob(RESULTS_GLOB)))
        elif entry.is_file():
            found.append(entry)
        else:
            raise BadInputError(
                f"{entry} does not exist",
                "Pass an lm-eval --output_path folder or a results_*.json file.",
                where=str(entry),
            )
    return found


def parse_model_args(text: str) -> dict[str, str]:
    """``pretrained=/x,peft=/y,dtype=float32`` as a dict."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def _bad(path: Path, field_name: str, reason: str) -> BadInputError:
    return BadInputError(
        f"{path.name}: field `{field_name}` {reason}",
        "Re-run lm-eval for this model, or move the file out of the folder; "
        "the other files were ingested.",
        where=str(path),
    )


def _read_fields(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(path, "<file>", f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _bad(path, "<file>", "is not a JSON object")
    fields: dict[str, Any] = {}
    for spec in RESULTS_FIELDS:
        value = next((v for p in spec.paths if (v := lookup(data, p)) is not None), None)
        if value is None and spec.required:
            raise _bad(path, spec.paths[0], "is missing")
        fields[spec.name] = spec.convert(value) if spec.convert else value
    if not isinstance(fields["results"], dict) or not fields["results"]:
        raise _bad(path, "results", "must be a non-empty object of tasks")
    return fields


def _score_rows(path: Path, fields: dict[str, Any]) -> tuple[list[dict[str, Any]], dict]:
    groups = fields["groups"] if isinstance(fields["groups"], dict) else {}
    hib = fields["higher_is_better"] if isinstance(fields["higher_is_better"], dict) else {}
    n_samples = fields["n_samples"] if isinstance(fields["n_samples"], dict) else {}
    rows: list[dict[str, Any]] = []
    metrics: dict[str, list[str]] = {}
    for task, entry in fields["results"].items():
        if not isinstance(entry, dict):
            raise _bad(path, f"results.{task}", "must be an object of metrics")
        counts = n_samples.get(task) if isinstance(n_samples.get(task), dict) else {}
        for key, value in entry.items():
            if key in NON_METRIC_KEYS or "," not in key or "_stderr," in key:
                continue
            metric, filt = key.split(",", 1)
            task_hib = hib.get(task) if isinstance(hib.get(task), dict) else {}
            metrics.setdefault(task, []).append(metric)
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "filter": filt,
                    "value": to_float(value),
                    "stderr": to_float(entry.get(f"{metric}_stderr,{filt}")),
                    "n_samples": to_float((counts or {}).get("effective")),
                    "higher_is_better": task_hib.get(metric),
                    "is_group": task in groups,
                }
            )
    return rows, metrics


def parse_results(path: Path) -> ParsedResults:
    """Validate one results file and find its samples files; raises BadInputError."""
    raw = path.read_bytes()
    fields = _read_fields(path, raw)
    args = parse_model_args(fields["model_args"] or "")
    pretrained = args.get("pretrained") or args.get("model") or fields["model_name"]
    if not pretrained:
        raise _bad(path, "config.model_args", "names no model (no pretrained=)")
    rows, metrics = _score_rows(path, fields)
    stamp = path.stem.removeprefix("results_") if path.stem.startswith("results_") else ""
    samples = {
        task: sample
        for task in metrics
        if stamp and (sample := path.with_name(f"samples_{task}_{stamp}.jsonl")).exists()
    }
    scores = pd.DataFrame(
        rows,
        columns=[
            "task",
            "metric",
            "filter",
            "value",
            "stderr",
            "n_samples",
            "higher_is_better",
            "is_group",
        ],
    )
    return ParsedResults(
        path=path,
        eval_id=hashlib.sha256(raw).hexdigest(),
        fields=fields,
        pretrained=str(pretrained),
        adapter=args.get("peft"),
        scores=scores,
        samples=samples,
        metrics=metrics,
    )


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def samples_sql(metrics: Sequence[str]) -> str:
    """SQL that reads one samples file and unpivots its metric columns into rows.

    Metric values may be 0/1, continuous, booleans, numeric strings or lists of
    bools (IFEval's inst_level_*); lists become their mean, non-finite values NULL.
    """
    columns = {**SAMPLE_COLUMNS, **{m: "JSON" for m in metrics}}
    spec = ", ".join(f"{_quote_literal(k)}: {_quote_literal(v)}" for k, v in columns.items())
    metric_cols = ", ".join(_quote_ident(m) for m in dict.fromkeys(metrics))
    scalar = (
        "CASE json_type({v}) WHEN 'BOOLEAN' THEN CAST(CAST({v} AS BOOLEAN) AS DOUBLE) "
        "ELSE TRY_CAST(json_extract_string({v}, '$') AS DOUBLE) END"
    )
    as_number = scalar.format(v="x")
    value = (
        f"CASE json_type(raw_value) WHEN 'ARRAY' THEN list_avg(list_transform("
        f"CAST(raw_value AS JSON[]), lambda x: {as_number})) "
        f"ELSE {scalar.format(v='raw_value')} END"
    )
    return f"""
        SELECT $eval_id AS eval_id, $task AS task, doc_id, coalesce(filter, 'none') AS filter,
               metric, CASE WHEN isfinite(v) THEN v END AS value,
               json_extract_string(target, '$') AS target,
               json_extract_string(filtered_resps, '$[0]') AS response,
               doc_hash, prompt_hash, target_hash
        FROM (
            SELECT *, {value} AS v
            FROM (UNPIVOT (
                SELECT * FROM read_json($path, format = 'newline_delimited',
                                        columns = {{{spec}}}, maximum_object_size = 268435456)
            ) ON {metric_cols} INTO NAME metric VALUE raw_value)
        )
    """


def _write_eval(con: duckdb.DuckDBPyConnection, parsed: ParsedResults) -> None:
    fields = parsed.fields
    con.register("incoming_scores", parsed.scores)
    with db.transaction(con):
        model = upsert_model(con, parsed.pretrained, parsed.adapter, "external")
        con.execute(
            """
            INSERT INTO evals (eval_id, model_id, model_args, lm_eval_version, n_shot,
                               eval_limit, task_hashes, chat_template_sha, evaluated_at,
                               source_file, ingested_at)
            VALUES (?, ?, ?, ?, map(?::VARCHAR[], ?::VARCHAR[]), ?,
                    map(?::VARCHAR[], ?::VARCHAR[]), ?, ?, ?, now()::TIMESTAMP)
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
            ],
        )
        con.execute(
            "INSERT INTO scores SELECT ?, task, metric, filter, value, stderr, "
            "CAST(n_samples AS BIGINT), higher_is_better, is_group FROM incoming_scores",
            [parsed.eval_id],
        )
        con.unregister("incoming_scores")
        for task, sample_file in parsed.samples.items():
            try:
                con.execute(
                    f"INSERT INTO samples {samples_sql(parsed.metrics[task])}",
                    {"eval_id": parsed.eval_id, "task": task, "path": str(sample_file)},
                )
            except duckdb.Error as exc:
                raise _bad(sample_file, "<line>", f"could not be read: {exc}") from exc


def store_suite(con: duckdb.DuckDBPyConnection, suite: Suite) -> None:
    """Record which capability each task of ``suite`` measures, and its primary metric."""
    rows = [(t.task, suite.name, t.capability, t.metric, t.filter) for t in suite.tasks]
    with db.transaction(con):
        con.executemany("INSERT OR REPLACE INTO suite_tasks VALUES (?, ?, ?, ?, ?)", rows)


def _already_stored(con: duckdb.DuckDBPyConnection, eval_id: str) -> bool:
    return con.execute("SELECT 1 FROM evals WHERE eval_id = ?", [eval_id]).fetchone() is not None


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    db_path: str | os.PathLike[str] | None = None,
    *,
    suite: Suite | None = None,
    progress: Progress = no_progress,
) -> SyncReport:
    """Ingest every lm-eval results file under ``paths``; bad files are reported and skipped."""
    files = find_results_files(paths)
    report = SyncReport(source="lm-eval")
    if suite is not None:
        with db.connect(db_path) as con:
            store_suite(con, suite)
    for done, path in enumerate(files, start=1):
        try:
            parsed = parse_results(path)  # validate before taking the file lock
            # One short write per results file, so readers get the file in between.
            with db.connect(db_path) as con:
                if _already_stored(con, parsed.eval_id):
                    report.skipped += 1
                else:
                    _write_eval(con, parsed)
                    report.inserted += 1
        except BadInputError as exc:
            report.errors.append(exc.message)
        except OSError as exc:
            report.errors.append(f"{path}: could not be read ({exc})")
        progress(done, len(files), path.name)
    if report.inserted:
        with db.connect(db_path) as con, db.transaction(con):
            relink_models(con)
    return report
