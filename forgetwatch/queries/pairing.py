"""Pair each model's per-sample results with its base's and test every delta.

This is the expensive half of the statistics: it reads ``samples``. It runs when
data arrives (``forgetwatch.analysis`` stores what it returns in ``task_tests``
and ``capability_tests``), never while a page renders; pages read the stored
results through ``queries.significance``.

One query per batch of models pairs each model's samples with its base's on
(task, doc_id, filter, metric) — and on ``doc_hash`` where both sides have one,
so a changed dataset is never silently paired (such docs are counted in
``hash_mismatches`` instead). The database counts the discordant pairs of 0/1
metrics; only continuous differences are shipped to Python, for the bootstrap.

Group tasks (``scores.is_group``, e.g. MMLU): which tasks a group holds is lm-eval's
own ``group_subtasks``, stored per eval in ``task_groups`` with nested groups
flattened (``mmlu`` -> ``mmlu_stem`` -> ``mmlu_anatomy``). A group row is tested on
the pooled samples of every leaf task under it, a nested group's row on its own
leaves, and each non-suite task under a suite group gets its own row (``parent``
names the nearest suite group). Only an eval stored before ``task_groups`` existed
falls back to lm-eval's naming convention: a task counts as a group's subtask when
the eval holds one suite group only, or when its name starts with ``<group>_``.

Deltas read "+ = better" (``deltas.delta_sql``): for a lower-is-better task the
per-doc differences are base - model too, so a rise in perplexity is a loss and
its "right→wrong" count is the docs whose 0/1 outcome rose.

``input_keys`` says what a model's results depend on (the evals chosen for it
and its base, the suite, the statistics settings), so a stored result is redone
exactly when one of those changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forgetwatch import db, stats
from forgetwatch.queries.deltas import (
    CAPABILITY_ORDER,
    Con,
    delta_sql,
    scores_cte,
    uninformative_sql,
)

# What is stored per (model, base, task, metric, filter): p-values before correction,
# since the correction and alpha belong to the reader's budget, not to the data.
STORED_TASK_COLUMNS = [
    "model_id", "base_model_id", "task", "parent", "capability", "metric", "filter", "is_group",
    "position", "base_value", "value", "delta", "n_pairs", "right_to_wrong", "wrong_to_right",
    "hash_mismatches", "test", "evidence", "p_value", "ci_low", "ci_high", "se_difference",
    "uninformative",
]  # fmt: skip
STORED_CAPABILITY_COLUMNS = [
    *(c for c in STORED_TASK_COLUMNS
      if c not in ("task", "parent", "hash_mismatches", "uninformative")),
    "n_uninformative",
]  # fmt: skip
ANALYSIS_VERSION = db.ANALYSIS_VERSION  # the stored tests' meaning (history in db.py)


# How far the mean paired difference may sit from the reported delta (float noise).
PAIRS_MATCH_TOLERANCE = 1e-6


def _rows_sql() -> str:
    """Per target model: its suite tasks and group subtasks, both sides' scores, pair counts."""
    return f"""WITH {scores_cte("SELECT unnest($model_ids) AS model_id")},
latest_g AS (
    SELECT l.*, coalesce(s.is_group, false) AS is_group
    FROM latest l
    JOIN scores s ON s.eval_id = l.eval_id AND s.task = l.task
                 AND s.metric = l.metric AND s.filter = l.filter
),
group_count AS (
    SELECT eval_id, count(*) FILTER (WHERE is_group) AS n FROM latest_g GROUP BY eval_id
),
edge AS (  -- (eval, group, task under it) for the groups of the evals read
    SELECT tg.eval_id, tg.group_task, tg.subtask, tg.depth, tg.position
    FROM task_groups tg
    WHERE tg.eval_id IN (SELECT eval_id FROM latest_g WHERE is_group)
    UNION ALL  -- an eval stored before task_groups existed: lm-eval's naming convention
    SELECT g.eval_id, g.task, s.task, 1, NULL
    FROM latest_g g
    JOIN group_count c USING (eval_id)
    JOIN scores s ON s.eval_id = g.eval_id AND s.metric = g.metric AND s.filter = g.filter
    WHERE g.is_group AND s.task <> g.task AND s.task NOT IN (SELECT task FROM suite_tasks)
      AND g.eval_id NOT IN (SELECT eval_id FROM task_groups)
      AND (c.n = 1 OR starts_with(s.task, g.task || '_'))
),
member AS (  -- non-suite tasks under each side's suite groups, under the nearest one
    SELECT g.model_id, s.task, g.task AS parent, g.capability, g.metric, g.filter,
           g.higher_is_better, coalesce(s.is_group, false) AS is_group, g.eval_id, s.value,
           s.stderr, e.position
    FROM latest_g g
    JOIN edge e ON e.eval_id = g.eval_id AND e.group_task = g.task
    JOIN scores s ON s.eval_id = g.eval_id AND s.task = e.subtask
                 AND s.metric = g.metric AND s.filter = g.filter
    WHERE g.is_group AND s.task NOT IN (SELECT task FROM suite_tasks)
    QUALIFY row_number() OVER (PARTITION BY g.model_id, s.task ORDER BY e.depth, g.task) = 1
),
side AS (  -- every row shown, per model (targets and bases alike)
    SELECT model_id, task, task AS parent, capability, metric, filter, higher_is_better,
           is_group, eval_id, value, stderr, NULL AS position
    FROM latest_g
    UNION ALL
    SELECT model_id, task, parent, capability, metric, filter, higher_is_better, is_group,
           eval_id, value, stderr, position  -- lm-eval's order under the group
    FROM member
),
leaf AS (  -- which tasks' samples feed a row: itself, or every task under a group row
    SELECT model_id, task, eval_id, task AS leaf FROM side WHERE NOT is_group
    UNION ALL  -- groups under a group have no samples of their own: they add no pairs
    SELECT sd.model_id, sd.task, sd.eval_id, e.subtask AS leaf
    FROM side sd JOIN edge e ON e.eval_id = sd.eval_id AND e.group_task = sd.task
    WHERE sd.is_group
),
pair AS (
    SELECT t.model_id, ml.task, ml.leaf, sm.doc_id, sm.value AS v1, sb.value AS v0,
           CASE WHEN r.higher_is_better THEN sm.value - sb.value ELSE sb.value - sm.value END
               AS d,  -- + = better, as the delta
           sm.doc_hash IS NULL OR sb.doc_hash IS NULL OR sm.doc_hash = sb.doc_hash AS same_doc
    FROM targets t
    JOIN side r ON r.model_id = t.model_id
    JOIN leaf ml ON ml.model_id = t.model_id AND ml.task = r.task
    JOIN leaf bl ON bl.model_id = t.base_model_id AND bl.task = ml.task AND bl.leaf = ml.leaf
    JOIN samples sm ON sm.eval_id = ml.eval_id AND sm.task = ml.leaf
                   AND sm.metric = r.metric AND sm.filter = r.filter
    JOIN samples sb ON sb.eval_id = bl.eval_id AND sb.task = ml.leaf AND sb.doc_id = sm.doc_id
                   AND sb.metric = sm.metric AND sb.filter = sm.filter
    WHERE sm.value IS NOT NULL AND sb.value IS NOT NULL
),
pair_stats AS (
    SELECT model_id, task,
           count(*) FILTER (WHERE same_doc) AS n_pairs,
           -- on 0/1 rows d = -1 is right -> wrong whichever way the metric points
           count(*) FILTER (WHERE same_doc AND d = -1) AS right_to_wrong,
           count(*) FILTER (WHERE same_doc AND d = 1) AS wrong_to_right,
           count(*) FILTER (WHERE NOT same_doc) AS hash_mismatches,
           avg(d) FILTER (WHERE same_doc) AS mean_difference,
           coalesce(bool_and(v0 IN (0, 1) AND v1 IN (0, 1)) FILTER (WHERE same_doc), true)
               AS is_binary
    FROM pair GROUP BY model_id, task
),
diffs AS (  -- only continuous rows leave the database as per-doc differences
    SELECT p.model_id, p.task, list(p.d ORDER BY p.leaf, p.doc_id) AS diffs
    FROM pair p JOIN pair_stats ps USING (model_id, task)
    WHERE p.same_doc AND NOT ps.is_binary
    GROUP BY p.model_id, p.task
)
SELECT t.model_id, t.base_model_id, m.task, m.parent, m.capability, m.metric, m.filter,
       m.is_group, b.value AS base_value, m.value, {delta_sql("m", "b")} AS delta,
       m.stderr, b.stderr AS base_stderr, {uninformative_sql("m", "b")} AS uninformative,
       coalesce(ps.n_pairs, 0) AS n_pairs,
       CASE WHEN ps.is_binary THEN ps.right_to_wrong END AS right_to_wrong,  -- 0/1 rows only
       CASE WHEN ps.is_binary THEN ps.wrong_to_right END AS wrong_to_right,
       coalesce(ps.hash_mismatches, 0) AS hash_mismatches, coalesce(ps.is_binary, true)
           AS is_binary, d.diffs,
       -- The pairs stand for the delta only when they reproduce it: samples from a
       -- different --limit, a partial log, or a metric lm-eval does not aggregate
       -- as a mean (corpus BLEU, F1) fall back to the stderr test.
       coalesce(abs(ps.mean_difference - ({delta_sql("m", "b")})) <= {PAIRS_MATCH_TOLERANCE},
                false) AS pairs_match
FROM targets t
JOIN side m ON m.model_id = t.model_id
LEFT JOIN side b ON b.model_id = t.base_model_id AND b.task = m.task
LEFT JOIN pair_stats ps ON ps.model_id = t.model_id AND ps.task = m.task
LEFT JOIN diffs d ON d.model_id = t.model_id AND d.task = m.task
ORDER BY t.model_id, list_position($capabilities, m.capability) NULLS LAST, m.capability,
         m.parent, m.task <> m.parent, m.position NULLS LAST, m.task"""


def paired_rows(con: Con, model_ids: Sequence[str]) -> pd.DataFrame:
    """Per target model: every row it shows, both sides' scores and the pair counts."""
    params = {"model_ids": list(model_ids), "capabilities": list(CAPABILITY_ORDER)}
    return con.execute(_rows_sql(), params).df()


def _differences(row: pd.Series) -> np.ndarray:
    """A paired row's per-doc differences: rebuilt from counts (0/1) or as shipped."""
    if row["is_binary"]:
        return stats.binary_differences(
            row["n_pairs"], row["right_to_wrong"], row["wrong_to_right"]
        )
    return np.asarray(row["diffs"], dtype=float)


def _task_test(row: pd.Series) -> stats.TestResult:
    """The strongest test the row's evidence allows (see forgetwatch.stats)."""
    if pd.isna(row["delta"]):
        return stats.NO_EVIDENCE
    if row["n_pairs"] > 0 and row["pairs_match"]:
        if row["is_binary"]:
            return stats.paired_binary(row["n_pairs"], row["right_to_wrong"], row["wrong_to_right"])
        return stats.paired_continuous([_differences(row)])
    se = stats.difference_stderr(row["stderr"], row["base_stderr"])
    return stats.NO_EVIDENCE if se is None else stats.stderr_test(row["delta"], se)


def _capability_test(tasks: pd.DataFrame) -> stats.TestResult:
    """Test a capability delta (the unweighted mean of its informative suite tasks' deltas).

    Chosen: a paired bootstrap of per-doc differences *stratified by task* (docs
    resampled within each task, then the task means averaged). Unlike a pooled
    McNemar over all docs, it tests exactly the number shown — each task weighs
    the same, whatever its size — and it handles 0/1 and continuous tasks alike.
    A single-task capability reuses its task's test. Where every task's differences
    are constant the bootstrap has one value, so the tasks' own intervals are
    combined instead (``_constant_capability_test``). Without per-sample results
    for every task, it falls back to the tasks' stderrs: se = sqrt(Σ seᵢ²)/k.
    ``tasks`` holds the informative tasks only (``capability_results``).
    """
    tasks = tasks[tasks["delta"].notna()]
    if tasks.empty:
        return stats.NO_EVIDENCE
    if len(tasks) == 1:
        return _task_test(tasks.iloc[0])
    if ((tasks["n_pairs"] > 0) & tasks["pairs_match"]).all():
        strata = [_differences(r) for _, r in tasks.iterrows()]
        if all(np.ptp(x) == 0 for x in strata):
            return _constant_capability_test(tasks, strata)
        return stats.paired_continuous(strata)
    maybe_ses = [
        stats.difference_stderr(r["stderr"], r["base_stderr"]) for _, r in tasks.iterrows()
    ]
    ses = [se for se in maybe_ses if se is not None]
    if len(ses) < len(maybe_ses):
        return stats.NO_EVIDENCE
    se = float(np.sqrt(np.sum(np.square(ses))) / len(ses))
    return stats.stderr_test(float(tasks["delta"].mean()), se)


def _constant_capability_test(tasks: pd.DataFrame, strata: list[np.ndarray]) -> stats.TestResult:
    """Every task's pairs share one difference: the stratified bootstrap would read [d, d].

    The CI combines the tasks' own intervals (Tango's score interval for 0/1 tasks) by
    MOVER (``stats.mover_mean_interval``), and p is the exact sign test of every doc's
    difference: "-50.0 to -50.0, p = 0" from three flipped docs becomes an interval
    with a width and p = 0.25.
    """
    points = [float(np.mean(x)) for x in strata]
    own = [_task_test(r) for _, r in tasks.iterrows()]
    lows = [d if r.ci_low is None else r.ci_low for r, d in zip(own, points, strict=True)]
    highs = [d if r.ci_high is None else r.ci_high for r, d in zip(own, points, strict=True)]
    low, high = stats.mover_mean_interval(points, lows, highs)
    se = stats.mean_difference_se(strata)
    return stats.TestResult(stats.TEST_BOOTSTRAP, "paired", stats.sign_test(strata), low, high, se)


def _with_tests(frame: pd.DataFrame, results: list[stats.TestResult]) -> pd.DataFrame:
    out = frame.copy()
    for column in ("test", "evidence"):  # object dtype keeps None as None (not NaN)
        out[column] = pd.Series(
            [getattr(r, column) for r in results], index=out.index, dtype=object
        )
    for column, field in (("p_value",) * 2, ("ci_low",) * 2, ("ci_high",) * 2,
                          ("se_difference", "se")):  # fmt: skip
        out[column] = [np.nan if (v := getattr(r, field)) is None else v for r in results]
    return out


def task_results(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, task) of ``paired_rows``: its test, p-value uncorrected.

    Suite tasks plus, for group tasks, one row per subtask (``parent`` = the suite
    task). ``position`` keeps the reading order (capability order, then task).
    """
    if rows.empty:
        return pd.DataFrame(columns=STORED_TASK_COLUMNS)
    out = _with_tests(rows, [_task_test(row) for _, row in rows.iterrows()])
    out["position"] = out.groupby("model_id", sort=False).cumcount()
    return out[STORED_TASK_COLUMNS]


def capability_results(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, capability) of ``paired_rows``: mean task delta, stratified test.

    Uninformative tasks (both sides at 0, or both at 100: ``deltas.uninformative_sql``)
    are left out of the delta, its test and the pair counts, and counted in
    ``n_uninformative``; with every task uninformative they all count (the delta is
    then 0.0: no item changed, and none could have). ``n_pairs``/
    ``right_to_wrong``/``wrong_to_right`` sum over the informative suite tasks;
    p-values are uncorrected.
    """
    suite_rows = rows[rows["task"] == rows["parent"]]
    if suite_rows.empty:
        return pd.DataFrame(columns=STORED_CAPABILITY_COLUMNS)
    records, results = [], []
    for (model_id, capability), tasks in suite_rows.groupby(["model_id", "capability"], sort=False):
        flagged = tasks["uninformative"].astype(bool)
        # The tasks the capability's delta and test stand on. With every task at one
        # bound on both sides nothing changed: all of them (a 0.0 delta, tested on their
        # pairs), so a model that kept a perfect score is judged, not left without a delta.
        used = tasks[~flagged] if (~flagged).any() else tasks
        scored = used
        records.append(
            {
                "model_id": model_id,
                "base_model_id": tasks["base_model_id"].iloc[0],
                "capability": capability,
                "metric": ", ".join(dict.fromkeys(tasks["metric"])),
                "filter": ", ".join(dict.fromkeys(tasks["filter"])),
                "is_group": bool(tasks["is_group"].any()),
                "base_value": scored["base_value"].mean(),
                "value": scored["value"].mean(),
                "delta": used["delta"].mean(),
                "n_pairs": int(used["n_pairs"].sum()),
                "right_to_wrong": used["right_to_wrong"].sum(min_count=1),
                "wrong_to_right": used["wrong_to_right"].sum(min_count=1),
                "n_uninformative": int(flagged.sum()),
            }
        )
        results.append(_capability_test(used))
    out = _with_tests(pd.DataFrame(records), results)
    out["position"] = out.groupby("model_id", sort=False).cumcount()
    return out[STORED_CAPABILITY_COLUMNS]


def analyse(con: Con, model_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(task results, capability results) of ``model_ids``: one pairing query for all."""
    rows = paired_rows(con, model_ids)
    return task_results(rows), capability_results(rows)


def stats_key() -> str:
    """The statistics settings a stored result was computed with."""
    return (
        f"v{ANALYSIS_VERSION};seed={stats.seed()};resamples={stats.resamples()};"
        f"tolerance={PAIRS_MATCH_TOLERANCE}"
    )


def input_keys(con: Con, model_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Per evaluated model: its base and a key of everything its analysis reads.

    The key digests the stats settings, the suite, the model's base, and the eval
    chosen per suite task for the model and for its base (``scores_cte``'s latest
    rule). Samples belong to their eval (an eval id is the digest of its results
    file), so an unchanged key means the stored analysis is still exact. Reads
    ``models``, ``evals``, ``scores`` and ``suite_tasks`` only: cheap at any scale.
    ``model_ids`` limits it to those models (default: every evaluated model).
    """
    wanted = "SELECT DISTINCT model_id FROM evals"
    if model_ids is not None:
        wanted += " WHERE model_id IN (SELECT unnest($ids))"
    sql = f"""WITH {scores_cte(wanted)},
suite_digest AS (
    SELECT coalesce(md5(string_agg(concat_ws(':', st.task, capability, metric, filter,
                                             sd.higher_is_better::VARCHAR), '|'
                                   ORDER BY st.task)), '') AS digest
    FROM suite_tasks st LEFT JOIN suite_directions sd USING (task)
),
chosen AS (
    SELECT model_id, string_agg(task || '=' || eval_id, ',' ORDER BY task) AS evals
    FROM latest GROUP BY model_id
)
SELECT t.model_id, t.base_model_id,
       md5(concat_ws('|', $stats, d.digest, coalesce(t.base_model_id, ''),
                     coalesce(m.evals, ''), coalesce(b.evals, ''))) AS inputs_key
FROM targets t
CROSS JOIN suite_digest d
LEFT JOIN chosen m ON m.model_id = t.model_id
LEFT JOIN chosen b ON b.model_id = t.base_model_id
ORDER BY t.model_id"""
    params: dict[str, object] = {"stats": stats_key()}
    if model_ids is not None:
        params["ids"] = list(model_ids)
    return con.execute(sql, params).df()
