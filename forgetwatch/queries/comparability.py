"""Are a model's scores comparable with its base's? Eval settings that differ, per task.

A delta only means "the fine-tune changed this" when both evals ran the same way:
same n-shot, same ``--limit`` (and so the same sample count), same lm-eval
version, same task definition (hash), same chat template and the same model
dtype. Each model's eval behind a task score (the same "latest eval per task"
rule as the deltas) is compared with its base's, in one set-based query, when the
data arrives (``forgetwatch.analysis``); pages read the stored rows.
"""

from __future__ import annotations

import pandas as pd

from forgetwatch.queries.deltas import Con, has_analysis, scores_cte

# setting -> SQL expression over the ``latest`` CTE row (aliased l / b) and evals (le / be).
# dtype comes from lm-eval's model_args ("pretrained=...,dtype=float32"); torch_dtype is the
# older spelling. "auto" and an unset dtype are left as written: they may load differently.
_DTYPE = (
    "nullif(coalesce(nullif(regexp_extract({e}.model_args, '(?:^|,)\\s*dtype=([^,]+)', 1), ''),"
    " regexp_extract({e}.model_args, '(?:^|,)\\s*torch_dtype=([^,]+)', 1)), '')"
)
SETTINGS: dict[str, tuple[str, str]] = {  # setting -> (model expr, base expr), as VARCHAR
    "n-shot": ("l.n_shot", "b.n_shot"),
    "limit": ("l.eval_limit::VARCHAR", "b.eval_limit::VARCHAR"),
    "samples": ("l.n_samples::VARCHAR", "b.n_samples::VARCHAR"),
    "lm-eval": ("l.lm_eval_version", "b.lm_eval_version"),
    "task hash": ("l.task_hash", "b.task_hash"),
    "chat template": ("l.chat_template_sha", "b.chat_template_sha"),
    "dtype": (_DTYPE.format(e="le"), _DTYPE.format(e="be")),
}
MISMATCH_COLUMNS = ["model_id", "base_model_id", "task", "setting", "value", "base_value"]


def settings_mismatches(con: Con, model_ids: list[str]) -> pd.DataFrame:
    """One row per (model, task, setting) whose eval setting differs from the base's.

    Read from ``settings_mismatches``, which the analysis step fills when data
    arrives (``compute_settings_mismatches``); only rows found against each
    model's current base are returned. Columns and order as computed.
    """
    if not model_ids or not has_analysis(con):
        return pd.DataFrame(columns=MISMATCH_COLUMNS)
    select = ", ".join(f"s.{c}" for c in MISMATCH_COLUMNS)
    return con.execute(
        f"""SELECT {select} FROM settings_mismatches s
            JOIN models m ON m.model_id = s.model_id AND m.base_model_id = s.base_model_id
            WHERE s.model_id IN (SELECT unnest($ids))
            ORDER BY s.model_id, s.position""",
        {"ids": list(model_ids)},
    ).df()


def compute_settings_mismatches(con: Con, model_ids: list[str]) -> pd.DataFrame:
    """One row per (model, task, setting) whose eval setting differs from the base's.

    Columns: model_id, base_model_id, task, setting, value (the model's eval),
    base_value (the base's eval). Only tasks both were evaluated on appear; an
    empty frame means every shown delta compares like with like. Hashes are
    shortened to 12 characters, since only "differs" matters to a reader.
    """
    if not model_ids:
        return pd.DataFrame(columns=MISMATCH_COLUMNS)
    items = ",\n               ".join(
        f"{{'s': '{name}', 'v': {model}, 'bv': {base}}}" for name, (model, base) in SETTINGS.items()
    )
    sql = f"""WITH {scores_cte("SELECT unnest($model_ids) AS model_id")},
pairs AS (
    SELECT t.model_id, t.base_model_id, l.task,
           unnest([{items}]) AS p
    FROM targets t
    JOIN latest l ON l.model_id = t.model_id
    JOIN latest b ON b.model_id = t.base_model_id AND b.task = l.task
    JOIN evals le ON le.eval_id = l.eval_id
    JOIN evals be ON be.eval_id = b.eval_id
)
SELECT model_id, base_model_id, task, p.s AS setting,
       CASE WHEN p.s IN ('task hash', 'chat template') THEN left(p.v, 12) ELSE p.v END AS value,
       CASE WHEN p.s IN ('task hash', 'chat template') THEN left(p.bv, 12) ELSE p.bv END
           AS base_value
FROM pairs
WHERE p.v IS DISTINCT FROM p.bv
ORDER BY model_id, task, list_position($order, p.s)"""
    found = con.execute(sql, {"model_ids": list(model_ids), "order": list(SETTINGS)}).df()
    found["position"] = found.groupby("model_id", sort=False).cumcount()
    return found


def describe(rows: pd.DataFrame) -> str:
    """Mismatch rows as a short phrase: ``n-shot 5 vs 0, dtype bfloat16 vs float32``."""
    return ", ".join(
        f"{r.setting} {'?' if pd.isna(r.value) else r.value} vs "
        f"{'?' if pd.isna(r.base_value) else r.base_value}"
        for r in rows.itertuples()
    )


def mismatch_by_task(mismatches: pd.DataFrame) -> pd.DataFrame:
    """One row per (model_id, task) with what differs as text (``settings_mismatch``)."""
    if mismatches.empty:
        return pd.DataFrame(columns=["model_id", "task", "settings_mismatch"])
    grouped = mismatches.groupby(["model_id", "task"], sort=False)
    return grouped.apply(describe, include_groups=False).rename("settings_mismatch").reset_index()


def mismatch_by_model(mismatches: pd.DataFrame) -> pd.DataFrame:
    """One row per model: ``task: what differs; task: ...`` (``settings_mismatch``)."""
    per_task = mismatch_by_task(mismatches)
    if per_task.empty:
        return pd.DataFrame(columns=["model_id", "settings_mismatch"])
    text = per_task["task"] + ": " + per_task["settings_mismatch"]
    joined = text.groupby(per_task["model_id"], sort=False).agg("; ".join)
    return joined.rename("settings_mismatch").reset_index()


def mismatch_warning(mismatches: pd.DataFrame, names: dict[str, str], *, shown: int = 5) -> str:
    """The warning every table and export carries; '' when all settings match.

    ``names`` maps model ids to what the reader sees (run name, @step).
    """
    per_task = mismatch_by_task(mismatches)
    if per_task.empty:
        return ""
    examples = "; ".join(
        f"{names.get(r.model_id, r.model_id)} / {r.task}: {r.settings_mismatch}"
        for r in per_task.head(shown).itertuples()
    )
    more = f" (and {len(per_task) - shown} more)" if len(per_task) > shown else ""
    return (
        f"Settings mismatch: {len(per_task)} results were evaluated with settings that differ "
        f"from the base's, so their deltas may reflect the eval, not the fine-tune — "
        f"{examples}{more}."
    )
