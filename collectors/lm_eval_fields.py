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


def model_args_text(value: Any) -> str:
    """``model_args`` is "k=v,k=v" in most versions and a dict in some."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value or "")


RESULTS_FIELDS: tuple[EvalField, ...] = (
    EvalField("results", ("results",), required=True),
    EvalField("model_args", ("config.model_args", "model_args"), convert=model_args_text),
    EvalField("model_name", ("model_name", "config.model")),
    EvalField("lm_eval_version", ("lm_eval_version",)),
    EvalField("n_shot", ("n-shot",), convert=to_str_map),
    EvalField("limit", ("config.limit",), convert=to_float),
    EvalField("task_hashes", ("task_hashes",), convert=to_str_map),
    EvalField("chat_template_sha", ("chat_template_sha",)),
    EvalField("date", ("date",), convert=to_timestamp),
    EvalField("groups", ("groups",)),
    EvalField("higher_is_better", ("higher_is_better",)),
    EvalField("n_samples", ("n-samples",)),
)

# Keys inside results[task] that are labels, not metrics.
NON_METRIC_KEYS = frozenset({"alias", "name", "sample_len", "sample_count", " "})

# Columns read from each samples JSONL line; metric columns are added per task.
SAMPLE_COLUMNS: dict[str, str] = {
    "doc_id": "BIGINT",
    "filter": "VARCHAR",
    "target": "JSON",
    "filtered_resps": "JSON",
    "doc_hash": "VARCHAR",
    "prompt_hash": "VARCHAR",
    "target_hash": "VARCHAR",
}


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
