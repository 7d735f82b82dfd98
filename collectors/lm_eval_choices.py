"""Multiple-choice samples: each choice's text and loglikelihood, read at ingest.

lm-eval logs a multiple-choice doc as one loglikelihood request per choice:
``arguments`` holds ``[context, target_delimiter + choice]`` per choice
(``{"gen_args_K": {"arg_0": ..., "arg_1": ...}}`` since 0.4.3, a list of pairs
before), ``filtered_resps`` one ``[loglikelihood, is_greedy]`` pair per choice in
the same order, and ``target`` the correct choice's index (or its text). So the
choice texts and what each model preferred come from the samples file alone;
the task config (``configs[task]`` in the results file) only says whether the
task is multiple choice and which ``target_delimiter`` to take off each choice.

The expressions here run inside the samples reader's one ``read_json`` pass
(``lm_eval_samples``), set-based like the rest of it: a line's choices ride on
the row of its file's first metric, so they are staged once per (doc, filter),
never once per metric, and copied to ``sample_choices`` in the same write as the
samples. The question is not repeated per choice: it stays in ``samples.prompt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

DEFAULT_DELIMITER = " "  # lm-eval's target_delimiter default
# Staged after the samples columns: filled on one metric row per multiple-choice line.
STAGED_CHOICE_COLUMNS = "choices VARCHAR[], loglikelihoods DOUBLE[], gold INTEGER"
NO_CHOICES = "NULL::VARCHAR[] AS choices, NULL::DOUBLE[] AS loglikelihoods, NULL::INTEGER AS gold"


def choice_fields(configs: Any, task: str) -> dict[str, Any]:
    """``SamplesFile`` fields from the results file's ``configs[task]``, where it has one.

    A config that names an ``output_type`` decides whether the task is multiple
    choice; without one, the file's first line decides (``delimiter``).
    """
    config = configs.get(task) if isinstance(configs, Mapping) else None
    if not isinstance(config, Mapping):
        return {}
    fields: dict[str, Any] = {}
    if isinstance(config.get("output_type"), str):
        fields["multiple_choice"] = config["output_type"] == "multiple_choice"
    if isinstance(config.get("target_delimiter"), str):
        fields["target_delimiter"] = config["target_delimiter"]
    return fields


def looks_multiple_choice(record: Mapping[str, Any] | None) -> bool:
    """Whether a samples line holds one ``[loglikelihood, is_greedy]`` pair per choice."""
    resps = record.get("filtered_resps") if record else None
    return (
        isinstance(resps, list)
        and len(resps) >= 2
        and all(isinstance(r, list) and len(r) == 2 for r in resps)
    )


def delimiter(
    multiple_choice: bool | None, target_delimiter: str, record: Mapping[str, Any] | None
) -> str | None:
    """The delimiter to take off each choice, or None when the file is not multiple choice."""
    if multiple_choice is False:
        return None
    if multiple_choice is None and not looks_multiple_choice(record):
        return None
    return target_delimiter


def choice_struct(arguments: str, resps: str) -> str:
    """SQL for a line's ``{'c': continuations, 'l': loglikelihoods}``, NULL for other lines.

    ``arguments`` is a JSON expression, ``resps`` the ``filtered_resps`` JSON text: a
    multiple-choice line's starts with ``[[`` (a list of pairs), which spares the
    parse on generation lines. lm-eval 0.4.13 writes the loglikelihoods as strings
    ("-9.24"), older versions as numbers; both cast.
    """
    continuations = (
        f"CASE json_type({arguments}) WHEN 'ARRAY' "
        f"THEN json_extract_string({arguments}, '$[*][1]') "
        f"ELSE json_extract_string({arguments}, '$.*.arg_1') END"
    )
    lls = (
        f"list_transform(json_extract_string({resps}, '$[*][0]'), lambda x: TRY_CAST(x AS DOUBLE))"
    )
    return f"CASE WHEN starts_with({resps}, '[[') THEN {{'c': {continuations}, 'l': {lls}}} END"


def choice_columns(mc: str, target: str, delim: str) -> str:
    """The staged choices, loglikelihoods and gold index from ``mc`` (a ``choice_struct``).

    ``delim`` (an SQL expression) is taken off the front of each continuation, as
    lm-eval put it there. A line counts as multiple choice only when every choice
    has a loglikelihood and there are at least two; the gold index is ``target`` as
    a number in range, else the position of the choice whose text ``target`` is.
    """
    texts = (
        f"list_transform({mc}.c, lambda c: CASE WHEN starts_with(c, {delim}) "
        f"THEN substr(c, length({delim}) + 1) ELSE c END)"
    )
    valid = f"(len({mc}.c) = len({mc}.l) AND len({mc}.l) >= 2 AND list_count({mc}.l) = len({mc}.l))"
    index = f"TRY_CAST({target} AS INTEGER)"
    gold = (
        f"CASE WHEN {index} >= 0 AND {index} < len({mc}.c) THEN {index} "
        f"ELSE list_position({texts}, {target}) - 1 END"
    )
    return (
        f"CASE WHEN {valid} THEN {texts} END AS choices, "
        f"CASE WHEN {valid} THEN {mc}.l END AS loglikelihoods, "
        f"CASE WHEN {valid} THEN {gold} END AS gold"
    )


def insert_choices(
    con: duckdb.DuckDBPyConnection, staged: str, evals: Sequence[tuple[int, str]]
) -> None:
    """Copy the staged choices of ``evals`` ((eval_no, eval_id)) and mark the evals read."""
    params = {"no": [no for no, _ in evals], "id": [eval_id for _, eval_id in evals]}
    con.execute(
        "INSERT INTO sample_choices SELECT b.eval_id, s.task, s.doc_id, s.filter, s.choices, "
        f"s.loglikelihoods, s.gold FROM {staged} s JOIN (SELECT unnest($no::INTEGER[]) AS "
        "eval_no, unnest($id::VARCHAR[]) AS eval_id) b ON s.eval_no = b.eval_no "
        "WHERE s.choices IS NOT NULL",
        params,
    )
    con.execute(
        "INSERT INTO sample_choice_evals SELECT unnest($id::VARCHAR[]), now()::TIMESTAMP "
        "ON CONFLICT DO NOTHING",
        {"id": params["id"]},
    )


def unread_evals(con: duckdb.DuckDBPyConnection, eval_ids: Sequence[str] | None = None) -> set[str]:
    """Stored evals whose samples were never read for choices (stored before they were).

    ``eval_ids`` narrows the question to those evals; None asks about every eval.
    """
    rows = con.execute(
        "SELECT eval_id FROM evals WHERE ($ids IS NULL OR list_contains($ids, eval_id)) "
        "AND eval_id NOT IN (SELECT eval_id FROM sample_choice_evals)",
        {"ids": None if eval_ids is None else list(eval_ids)},
    ).fetchall()
    return {eval_id for (eval_id,) in rows}
