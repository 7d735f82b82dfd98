"""Every SQL query the dashboard (and the CLI) runs, as named functions.

Each function takes an open DuckDB connection and returns a DataFrame or a small
dict. Work stays in SQL so pages hold only what they show: aggregates are
computed in the database, lists are LIMITed, and long metric histories are
downsampled before they reach pandas. Pages never build SQL themselves.
``deltas`` holds the shared delta SQL; ``runs`` and ``compare`` the page queries.
"""

from forgetwatch.queries.compare import (
    compare_options,
    compare_points,
    comparison_scores,
    eval_provenance,
    run_names,
)
from forgetwatch.queries.deltas import CAPABILITY_ORDER, GENERAL_CAPABILITIES, KEY_PARAMS, Con
from forgetwatch.queries.runs import (
    capability_deltas,
    db_summary,
    filter_options,
    final_model_id,
    metric_history,
    metric_keys,
    model_summary,
    run_info,
    run_models,
    runs_overview,
    task_deltas,
)

__all__ = [
    "CAPABILITY_ORDER",
    "GENERAL_CAPABILITIES",
    "KEY_PARAMS",
    "Con",
    "capability_deltas",
    "compare_options",
    "compare_points",
    "comparison_scores",
    "db_summary",
    "eval_provenance",
    "filter_options",
    "final_model_id",
    "metric_history",
    "metric_keys",
    "model_summary",
    "run_info",
    "run_models",
    "run_names",
    "runs_overview",
    "task_deltas",
]
