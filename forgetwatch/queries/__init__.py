"""Every SQL query the dashboard (and the CLI) runs, as named functions.

Each function takes an open DuckDB connection and returns a DataFrame or a small
dict. Work stays in SQL so pages hold only what they show: aggregates are
computed in the database, lists are LIMITed, and long metric histories are
downsampled before they reach pandas. Pages never build SQL themselves.
``deltas`` holds the shared delta SQL; ``runs`` and ``compare`` the page queries.
``significance`` pairs per-sample results for the paired tests in ``forgetwatch.stats``;
``comparability`` finds eval settings that differ from the base's; ``flips`` and
``checkpoints`` feed the Flips page and the Run page's checkpoint curves.
"""

from forgetwatch.queries.checkpoints import (
    best_within_budget,
    checkpoint_deltas,
    checkpoint_summary,
    icl_baselines,
    run_checkpoints,
    run_metric_last,
)
from forgetwatch.queries.comparability import settings_mismatches
from forgetwatch.queries.compare import (
    compare_options,
    compare_points,
    comparison_scores,
    eval_provenance,
    run_names,
)
from forgetwatch.queries.deltas import CAPABILITY_ORDER, GENERAL_CAPABILITIES, KEY_PARAMS, Con
from forgetwatch.queries.flips import flip_counts, flip_examples, flip_models, forgotten
from forgetwatch.queries.models import base_choices, model_choices, model_info, run_link_notes
from forgetwatch.queries.resolve import Resolved, nearest, resolve, resolve_model, resolve_run
from forgetwatch.queries.runs import (
    capability_deltas,
    db_summary,
    evaluated_models,
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
from forgetwatch.queries.significance import paired_capability_deltas, paired_task_deltas
from forgetwatch.queries.sources import sources

__all__ = [
    "CAPABILITY_ORDER",
    "GENERAL_CAPABILITIES",
    "KEY_PARAMS",
    "Con",
    "Resolved",
    "best_within_budget",
    "capability_deltas",
    "checkpoint_deltas",
    "checkpoint_summary",
    "compare_options",
    "compare_points",
    "model_choices",
    "base_choices",
    "model_info",
    "run_link_notes",
    "comparison_scores",
    "db_summary",
    "eval_provenance",
    "evaluated_models",
    "filter_options",
    "final_model_id",
    "flip_counts",
    "flip_examples",
    "flip_models",
    "forgotten",
    "icl_baselines",
    "metric_history",
    "nearest",
    "metric_keys",
    "model_summary",
    "paired_capability_deltas",
    "paired_task_deltas",
    "resolve",
    "resolve_model",
    "resolve_run",
    "run_checkpoints",
    "run_info",
    "run_metric_last",
    "run_models",
    "run_names",
    "runs_overview",
    "settings_mismatches",
    "sources",
    "task_deltas",
]
