"""Paired significance of every delta, read from the tests stored when data arrived.

``forgetwatch.analysis`` pairs each model's samples with its base's and stores
the tests (``queries.pairing``) in ``task_tests`` and ``capability_tests``. These
readers never touch ``samples``: they select the stored rows of the models asked
for — only those computed against each model's *current* base — and apply the
reader's multiple-comparison correction and alpha, which belong to the budget
and so are never stored. A new budget therefore costs one small query.

Deltas, CIs and values are fractions, like the scores. Each row also gets its
``mde``, the minimum detectable effect at 80% power (``with_mde``): it depends on
the reader's alpha and the size of the correction family, so it is computed here
from what is stored (pairs, flips, ``se_difference``), never stored itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgetwatch import stats
from forgetwatch.queries.deltas import Con, has_analysis
from forgetwatch.queries.pairing import STORED_CAPABILITY_COLUMNS, STORED_TASK_COLUMNS

TASK_COLUMNS = [
    "model_id", "base_model_id", "task", "parent", "capability", "metric", "filter", "is_group",
    "base_value", "value", "delta", "n_pairs", "right_to_wrong", "wrong_to_right",
    "hash_mismatches", "test", "evidence", "p_value", "p_adjusted", "ci_low", "ci_high",
    "significant", "correction", "se_difference", "mde", "uninformative",
]  # fmt: skip
CAPABILITY_COLUMNS = [
    *(c for c in TASK_COLUMNS if c not in ("task", "parent", "hash_mismatches", "uninformative")),
    "n_uninformative",
]


def _check_correction(correction: str) -> None:
    if correction not in stats.CORRECTIONS:
        raise ValueError(
            f"unknown correction {correction!r}; use one of {', '.join(stats.CORRECTIONS)}"
        )


def _stored(con: Con, table: str, columns: list[str], model_ids: list[str]) -> pd.DataFrame:
    """Stored rows of ``model_ids`` computed against each model's current base.

    A column the file does not hold yet (a file from before it, opened read-only
    before any write upgraded it) reads as NULL; the next refresh fills it in.
    """
    if not has_analysis(con):
        return pd.DataFrame(columns=columns)
    held = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND table_name = $table",
            {"table": table},
        ).fetchall()
    }
    select = ", ".join(f"t.{c}" if c in held else f"NULL AS {c}" for c in columns)
    return con.execute(
        f"""SELECT {select} FROM {table} t
            JOIN models m ON m.model_id = t.model_id
                         AND m.base_model_id IS NOT DISTINCT FROM t.base_model_id
            WHERE t.model_id IN (SELECT unnest($ids))
            ORDER BY t.model_id, t.position""",
        {"ids": list(model_ids)},
    ).df()


def in_family(frame: pd.DataFrame) -> pd.Series:
    """Rows that count as tests in their model's correction family: a p-value, and not an
    uninformative task (both sides at 0 or 100, so nothing could have flipped)."""
    flagged = frame["uninformative"] if "uninformative" in frame.columns else None
    if flagged is None:
        return frame["p_value"].notna()
    return frame["p_value"].notna() & ~flagged.astype("boolean").fillna(False).astype(bool)


def corrected(frame: pd.DataFrame, correction: str, alpha: float) -> pd.DataFrame:
    """Correct p-values across each model's rows, and mark significance at ``alpha``.

    An uninformative task is no test (``in_family``): it keeps its p-value but gets no
    adjusted one, is never significant and does not widen the family.
    """
    out = frame.copy()
    family = in_family(out)
    if "uninformative" in out.columns:
        out["uninformative"] = out["uninformative"].astype("boolean").fillna(False).astype(bool)
    p = out["p_value"].where(family).to_numpy(dtype=float)
    adjusted = np.full(len(out), np.nan)
    for index in out.groupby("model_id", sort=False).indices.values():
        adjusted[index] = stats.adjust_array(p[index], correction)
    out["p_adjusted"] = adjusted
    out["significant"] = (out["p_adjusted"] < alpha).astype(bool)
    out["correction"] = pd.Series(
        [correction if tested else None for tested in family],
        index=out.index,
        dtype=object,
    )
    for column in ("test", "evidence"):  # object dtype keeps None as None (not NaN)
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def with_mde(frame: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Add ``mde``: each delta's minimum detectable effect at 80% power (a fraction).

    Computed at the row's alpha after the correction: ``stats.family_alpha``, i.e.
    ``alpha`` over the number of tested rows (``in_family``) of the model's family,
    the level one real change among them must reach under Holm and BH alike.
    Kept apart from ``corrected`` so the two rules change independently.
    """
    out = frame.copy()
    tested = in_family(out).groupby(out["model_id"], sort=False).transform("sum")
    levels = stats.family_alpha(alpha, tested.to_numpy())  # vectorised: one level per row
    out["mde"] = stats.minimum_detectable_effect(
        out["test"].tolist(),
        out["n_pairs"].to_numpy(dtype=float),
        out["right_to_wrong"].to_numpy(dtype=float),
        out["wrong_to_right"].to_numpy(dtype=float),
        out["se_difference"].to_numpy(dtype=float),
        levels,
    )
    return out


def inside_noise_floor(con: Con, frame: pd.DataFrame, level: str) -> pd.DataFrame:
    """Never significant inside the harness's own noise: ``|delta| <= the base's flip rate``.

    The noise floor (``noise_floor``, from ``forgetwatch eval --repeat-base``) is the share
    of items whose outcome changed when the base was simply evaluated again with another
    batch size and seed; a delta no larger than that may be the harness, not the fine-tune.
    ``level`` is 'task' (the task's own floor) or 'capability' (the mean over its suite
    tasks). A floor of 0 flips is a measurement too: only a delta of exactly 0 lies inside
    it. Kept apart from ``corrected`` and ``with_mde``, so each rule changes on its own.
    """
    if frame.empty or not _has_noise_floor(con):
        return frame
    key = "task" if level == "task" else "capability"
    floors = con.execute(
        f"""SELECT n.model_id AS base_model_id, {"n.task" if key == "task" else "st.capability"}
                   AS {key}, avg(n.flip_rate) AS floor
            FROM noise_floor n
            JOIN suite_tasks st ON st.task = n.task AND st.metric = n.metric
                               AND st.filter = n.filter
            WHERE n.model_id IN (SELECT unnest($bases))
            GROUP BY ALL""",
        {"bases": [b for b in frame["base_model_id"].dropna().unique().tolist()]},
    ).df()
    if floors.empty:
        return frame
    out = frame.merge(floors, on=["base_model_id", key], how="left")
    inside = out["floor"].notna() & (out["delta"].abs() <= out["floor"] + 1e-12)
    out["significant"] = out["significant"].astype(bool) & ~inside
    out.index = frame.index
    return out.drop(columns="floor")


def _has_noise_floor(con: Con) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'noise_floor' "
        "AND schema_name = 'main' AND database_name = current_database()"
    ).fetchone()
    return bool(row and row[0])


def paired_task_deltas(
    con: Con, model_ids: list[str], *, correction: str = "holm", alpha: float = 0.05
) -> pd.DataFrame:
    """One row per (model, task): delta vs the base with its paired test (TASK_COLUMNS).

    Suite tasks plus, for group tasks, one row per subtask (``parent`` = the suite
    task). p-values are corrected across all of a model's task rows with
    ``correction`` ('holm' or 'bh'); ``significant`` = p_adjusted < ``alpha``.
    """
    _check_correction(correction)
    rows = _stored(con, "task_tests", STORED_TASK_COLUMNS, model_ids)
    if rows.empty:
        return pd.DataFrame(columns=TASK_COLUMNS)
    found = with_mde(corrected(rows, correction, alpha), alpha)
    return inside_noise_floor(con, found, "task")[TASK_COLUMNS]


def paired_capability_deltas(
    con: Con, model_ids: list[str], *, correction: str = "holm", alpha: float = 0.05
) -> pd.DataFrame:
    """One row per (model, capability): mean task delta with a stratified paired test.

    ``n_pairs``/``right_to_wrong``/``wrong_to_right`` sum over the capability's
    suite tasks; p-values are corrected across a model's capabilities.
    """
    _check_correction(correction)
    rows = _stored(con, "capability_tests", STORED_CAPABILITY_COLUMNS, model_ids)
    if rows.empty:
        return pd.DataFrame(columns=CAPABILITY_COLUMNS)
    found = with_mde(corrected(rows, correction, alpha), alpha)
    return inside_noise_floor(con, found, "capability")[CAPABILITY_COLUMNS]


def unanalysed(con: Con, model_ids: list[str]) -> list[str]:
    """Models among ``model_ids`` whose stored analysis is missing or for another base.

    Pages say so instead of showing untested deltas as settled; ``forgetwatch
    analyse`` (run by every sync and ingest) fills them in.
    """
    if not has_analysis(con):
        rows = con.execute(
            """SELECT DISTINCT model_id FROM evals WHERE model_id IN (SELECT unnest($ids))
               ORDER BY model_id""",
            {"ids": list(model_ids)},
        ).fetchall()
        return [r[0] for r in rows]
    rows = con.execute(
        """SELECT m.model_id FROM models m
           LEFT JOIN analysis_state a ON a.model_id = m.model_id
           WHERE m.model_id IN (SELECT unnest($ids))
             AND m.model_id IN (SELECT model_id FROM evals)
             AND (a.model_id IS NULL
                  OR a.base_model_id IS DISTINCT FROM m.base_model_id)
           ORDER BY m.model_id""",
        {"ids": list(model_ids)},
    ).fetchall()
    return [r[0] for r in rows]
