"""The checkpoints view model: how gain and forgetting developed over training.

The Run page's checkpoint chart, its badges and the "best within budget" pick
all come from ``checkpoints_review``: deltas turned by ``direction.oriented``
(so the hallucination line rises when hallucination rises), verdicts from the
same ``trust.verdicts`` as every other page, and the k-shot comparison line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.queries import Con, comparability
from forgetwatch.review import trust
from forgetwatch.review.direction import oriented


@dataclass
class CheckpointsReview:
    """The curves, verdicts and best pick for one run's evaluated checkpoints."""

    run_id: str
    checkpoints: pd.DataFrame  # every checkpoint in the database, with ``evaluated``
    # oriented: step, model_id, kind, capability, delta, ci_low, ci_high, p_adjusted, significant
    deltas: pd.DataFrame
    summary: pd.DataFrame  # per evaluated model: headline changes by step
    verdicts: dict[str, Any] = field(default_factory=dict)  # model_id -> budget.Verdict
    labels: dict[str, str] = field(default_factory=dict)  # model_id -> "step N"
    best: pd.Series | None = None  # the summary row of the best model within budget
    kshot_gain: float | None = None  # base k-shot target score minus its zero-shot score
    kshot_label: str = ""
    loss: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Which points on the curve ran under other eval settings than the base (a --limit 20
    # checkpoint among full evals): '' when every point is comparable.
    mismatch_warning: str = ""

    @property
    def evaluated_steps(self) -> list[int]:
        return sorted(int(s) for s in self.deltas["step"].unique())

    @property
    def has_evaluated_checkpoints(self) -> bool:
        return bool((self.deltas["kind"] == "checkpoint").any())

    @property
    def to_evaluate(self) -> int:
        """Checkpoints in the database with no eval yet."""
        if self.checkpoints.empty:
            return 0
        return int((~self.checkpoints["evaluated"].astype(bool)).sum())


def counted(n: int, noun: str) -> str:
    """ "1 checkpoint", "3 checkpoints": a count with its noun, never "checkpoint(s)"."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def evaluate_label(todo: int) -> str:
    """The launch button: "Evaluate the 1 checkpoint", "Evaluate all 3 checkpoints"."""
    return (
        "Evaluate the 1 checkpoint" if todo == 1 else f"Evaluate all {counted(todo, 'checkpoint')}"
    )


def queued_text(n_jobs: int) -> str:
    """What the page says once the button queued its jobs."""
    return f"{counted(n_jobs, 'eval job')} queued; follow them on the Evals page."


def no_evaluated_note(checkpoints: int) -> str:
    """The empty state's line: how many checkpoints wait for an eval."""
    return (
        f"This run has {counted(checkpoints, 'checkpoint')} in the database. Evaluate "
        f"{'it' if checkpoints == 1 else 'them'} to see how gain and forgetting developed "
        "during training."
    )


def step_label(kind: str, step: Any) -> str:
    """How a point on the training curve is named: "step N", or "final (step N)"."""
    return f"final (step {int(step)})" if kind == "final" else f"step {int(step)}"


def kshot_name(n_shot: Any) -> str:
    return "k-shot" if n_shot is None or pd.isna(n_shot) else f"{int(n_shot)}-shot"


def with_tests(con: Con, deltas: pd.DataFrame) -> pd.DataFrame:
    """Each curve point with its capability's stored test: CI, corrected p, significant.

    The same ``trust.capability_tests`` the Run page's bars read, merged before
    ``oriented`` so a hallucination point's CI turns with it. A point with no stored
    test is untested: ``significant`` False, drawn within noise.
    """
    tests = trust.capability_tests(con, list(deltas["model_id"].unique()))
    columns = ["ci_low", "ci_high", "p_adjusted", "significant"]
    out = deltas.merge(
        tests[["model_id", "capability", *columns]], on=["model_id", "capability"], how="left"
    )
    out.index = deltas.index
    out["significant"] = out["significant"].astype("boolean").fillna(False).astype(bool)
    return out


def checkpoints_review(con: Con, run_id: str, *, with_verdicts: bool = True) -> CheckpointsReview:
    """The checkpoint section of the Run page for ``run_id``."""
    checkpoints = queries.run_checkpoints(con, run_id)
    deltas = oriented(with_tests(con, queries.checkpoint_deltas(con, run_id)))
    review = CheckpointsReview(run_id, checkpoints, deltas, pd.DataFrame())
    if not review.has_evaluated_checkpoints:
        return review
    review.summary = queries.checkpoint_summary(con, run_id)
    review.labels = {r.model_id: step_label(r.kind, r.step) for r in review.summary.itertuples()}
    mismatches = comparability.settings_mismatches(con, list(review.summary["model_id"]))
    review.mismatch_warning = comparability.mismatch_warning(mismatches, review.labels)
    if with_verdicts:
        review.verdicts = trust.verdicts(con, list(review.summary["model_id"]))
        statuses = {m: v.status for m, v in review.verdicts.items()}
        review.best = queries.best_within_budget(review.summary, statuses)
    baselines = queries.icl_baselines(con, run_id)
    if not baselines.empty and pd.notna(baselines.at[0, "base_target"]):
        review.kshot_gain = float(baselines.at[0, "value"] - baselines.at[0, "base_target"])
        review.kshot_label = f"base + {kshot_name(baselines.at[0, 'n_shot'])}"
    review.loss = queries.metric_history(con, run_id, ["loss"])
    return review
