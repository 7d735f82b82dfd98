"""Where each field of an lm-eval results file lives, declared as data.

A new lm-eval output version is an edit to this table, not a new code branch.
Paths are tried in order; the first present wins. ``required`` fields make a
file unusable when missing, and the error names the file and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class EvalField:
    name: str
    paths: tuple[str, ...]
    required: bool = False
    convert: Callable[[Any], Any] | None = None


def to_float(value: Any) -> float | None:
    """lm-eval writes numbers as numbers, numeric strings, or "N/A"."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def to_timestamp(value: Any) -> datetime | None:
    """``date`` is a unix timestamp (float or numeric string) in every 0.4.x version."""
    seconds = to_float(value)
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None) if seconds else None


def to_str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def to_opt_str(value: Any) -> str | None:
    """Labels (versions, hashes, names) as text; structures are not labels."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def model_args_text(value: Any) -> str:
    """``model_args`` is "k=v,k=v" in most versions and a dict in some."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value or "")


RESULTS_FIELDS: tuple[EvalField, ...] = (
    EvalField("results", ("results",), required=True),
    EvalField("model_args", ("config.model_args", "model_args"), convert=model_args_text),
    # Not ``config.model``: that is the model *type* ("hf", "hf-causal"), never a model.
    EvalField("model_name", ("model_name",), convert=to_opt_str),
    EvalField("lm_eval_version", ("lm_eval_version",), convert=to_opt_str),
    EvalField("n_shot", ("n-shot",), convert=to_str_map),
    EvalField("limit", ("config.limit",), convert=to_float),
    EvalField("task_hashes", ("task_hashes",), convert=to_str_map),
    EvalField("chat_template_sha", ("chat_template_sha",), convert=to_opt_str),
    EvalField("date", ("date",), convert=to_timestamp),
    EvalField("groups", ("groups",)),
    EvalField("group_subtasks", ("group_subtasks",)),
    EvalField("configs", ("configs",)),
    EvalField("higher_is_better", ("higher_is_better",)),
    EvalField("n_samples", ("n-samples",)),
    # lm-eval 0.3 writes one --num_fewshot for every task, and no `n-shot`.
    EvalField("num_fewshot", ("config.num_fewshot",), convert=to_opt_str),
)

# Keys inside results[task] that are labels, not metrics.
NON_METRIC_KEYS = frozenset({"alias", "name", "sample_len", "sample_count", " "})
# The per-task size lm-eval 0.4.10+ writes inside results[task]: the effective count of
# a task, the summed count of a group (groups have no `n-samples` entry).
SAMPLE_LEN_KEY = "sample_len"

# Columns read from each samples JSONL line, with the types the fast reader uses
# (VARCHAR renders a number or list as its JSON text); metric columns are added
# per task. lm-eval 0.4.5 and 0.4.13 write `target` as a string; a raw doc value
# (int, list) is read too and stored as its JSON text.
SAMPLE_COLUMNS: dict[str, str] = {
    "doc_id": "BIGINT",
    "filter": "VARCHAR",
    "target": "VARCHAR",
    # The whole list as its JSON text, the first response taken from it in SQL: cheaper
    # than building a list of every response (one per choice) to keep one.
    "filtered_resps": "VARCHAR",
    "doc_hash": "VARCHAR",
    "prompt_hash": "VARCHAR",
    "target_hash": "VARCHAR",
    # Only the first request's context is kept (the prompt shown in the flip explorer);
    # the struct ignores the other requests and continuations.
    "arguments": "STRUCT(gen_args_0 STRUCT(arg_0 VARCHAR))",
}


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
