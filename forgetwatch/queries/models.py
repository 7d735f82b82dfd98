"""Queries about evaluated models as such: the rows and pickers for models with no run.

lm-eval outputs ingested without MLflow make models that no run produced. They
are first-class: listed on the Runs page, compared, checked and exported. These
queries name them and say what their base is and where the base came from.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from forgetwatch.queries.deltas import Con

# How models.base_source reads on a page: which rule recorded the base.
BASE_SOURCE_TEXT = {
    "user": "paired by hand",
    "peft": "the peft adapter's pretrained= model",
    "adapter_config.json": "the adapter's adapter_config.json",
    "mlflow run": "the MLflow run's base model",
    "config.json": "_name_or_path in the model's config.json",
    "metadata": "lm_eval --metadata base_model",
}


def model_choices(con: Con) -> pd.DataFrame:
    """Evaluated models no run produced, for pickers: model_id and label.

    The label is the model's short name, with its id added where two share one.
    """
    return con.execute(
        """SELECT m.model_id,
                  CASE WHEN count(*) OVER (PARTITION BY m.display_name) > 1
                       THEN m.display_name || ' (' || m.model_id || ')'
                       ELSE coalesce(m.display_name, m.model_id) END AS label
           FROM models m
           WHERE m.run_id IS NULL AND m.kind <> 'base'
             AND m.model_id IN (SELECT model_id FROM evals)
           ORDER BY label"""
    ).df()


def base_choices(con: Con) -> pd.DataFrame:
    """Every evaluated model that could serve as a base: model_id and label.

    Models already serving as a base come first, then the rest by name, so the
    usual pick is at the top of a long list.
    """
    return con.execute(
        """SELECT m.model_id,
                  coalesce(m.display_name, m.model_id) || ' (' || m.model_id || ')' AS label
           FROM models m
           WHERE m.model_id IN (SELECT model_id FROM evals)
           ORDER BY m.model_id IN (SELECT base_model_id FROM models) DESC,
                    m.kind = 'checkpoint', label"""
    ).df()


def model_info(con: Con, model_id: str) -> dict[str, Any] | None:
    """One model's header fields: names, kind, run, base and how the base was recorded.

    ``base_how`` is the base rule in words; ``paired_by``/``paired_at`` say who
    paired it by hand, when that is the rule; ``link_note`` says why a run link is
    uncertain (two runs sharing one output folder).
    """
    df = con.execute(
        """SELECT m.model_id, coalesce(m.display_name, m.model_id) AS name, m.kind, m.path,
                  m.adapter_path, m.run_id, m.step, m.base_model_id, m.base_source,
                  b.set_by AS paired_by, b.set_at AS paired_at, m.link_note,
                  (SELECT count(*) FROM evals e WHERE e.model_id = m.model_id) AS evals,
                  (SELECT max(e.evaluated_at) FROM evals e WHERE e.model_id = m.model_id)
                      AS last_evaluated
           FROM models m LEFT JOIN model_bases b USING (model_id)
           WHERE m.model_id = ?""",
        [model_id],
    ).df()
    if df.empty:
        return None
    info = {k: (None if _missing(v) else v) for k, v in df.iloc[0].to_dict().items()}
    info["base_how"] = BASE_SOURCE_TEXT.get(str(info["base_source"]), info["base_source"])
    return info


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def run_link_notes(con: Con, run_id: str) -> list[str]:
    """Why some of the run's models were linked to it by a guess, one line per folder."""
    rows = con.execute(
        "SELECT DISTINCT link_note FROM models WHERE run_id = ? AND link_note IS NOT NULL "
        "ORDER BY 1",
        [run_id],
    ).fetchall()
    return [str(note) for (note,) in rows]
