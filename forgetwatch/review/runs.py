"""The runs overview view model: every run with its gain, erosion and verdict.

The Runs page shows ``runs_overview``'s view; ``run_verdicts`` gives the badges
for selected runs (finals and checkpoints). Both read the same trust columns as
Compare and the exports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.queries import Con
from forgetwatch.review import trust
from forgetwatch.review.comparison import model_label
from forgetwatch.review.views import View, as_points, ordered

# What a reviewer scans first: the run, what it gained and lost, then how it was trained.
COLUMN_ORDER = (
    "run_name", "target_gain", "general_change", "hallucination_change", "verdict",
    "verdict_reasons", "settings_mismatch", "method", "learning_rate", "num_train_epochs",
    "max_steps", "lora_r", "base_model", "status", "start_time", "experiment_name", "run_id",
)  # fmt: skip


@dataclass
class RunsOverview:
    """The Runs table and what the page says around it."""

    view: View
    warning: str  # the settings-mismatch warning, '' when every setting matches
    final_models: dict[str, str] = field(default_factory=dict)  # run_id -> final model_id

    @property
    def empty(self) -> bool:
        return bool(self.view.frame.empty)


def runs_overview(
    con: Con,
    *,
    search: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
) -> RunsOverview:
    """Runs matching the filters, newest first, with verdicts and headline noise."""
    runs = queries.runs_overview(con, search=search, base_model=base_model, method=method)
    if runs.empty:
        return RunsOverview(View("Runs", runs), "")
    finals = queries.compare_points(
        con, include_checkpoints=False, run_ids=list(runs["run_id"]), limit=max(len(runs), 1)
    )
    names = dict(zip(finals["model_id"], finals["run_name"].fillna(finals["run_id"]), strict=True))
    models = finals.drop_duplicates("run_id")[["run_id", "model_id"]]
    annotated = trust.annotate(con, runs.merge(models, on="run_id", how="left"), names)
    frame = ordered(as_points(annotated.frame), COLUMN_ORDER).drop(columns="model_id")
    final_models = dict(zip(models["run_id"], models["model_id"], strict=True))
    return RunsOverview(View("Runs", frame, noise=annotated.noise), annotated.warning, final_models)


def run_verdicts(con: Con, run_ids: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Verdicts for every evaluated model (final and checkpoints) of ``run_ids``, and labels."""
    points = queries.compare_points(con, run_ids=run_ids)
    found = trust.verdicts(con, list(points["model_id"]))
    labels = {
        r.model_id: model_label(r.run_name, r.run_id, r.kind, r.step) for r in points.itertuples()
    }
    return found, labels


def selected_run_ids(view: View, rows: list[int]) -> list[str]:
    """The run ids of the selected table rows."""
    frame: pd.DataFrame = view.frame
    return [str(frame.iloc[row]["run_id"]) for row in rows]
