"""The flips view model: which samples a model got newly wrong (and right) against a base.

The Flips page and ``forgetwatch flips`` both build their tables here, so the
file a reviewer downloads has the page's columns: the net change per task in
points, and flips labelled "Right → wrong" / "Wrong → right".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forgetwatch.errors import BadInputError
from forgetwatch.queries import Con, flips
from forgetwatch.queries.resolve import resolve_model
from forgetwatch.review.views import SIGNED, Report, View

DIRECTION_LABELS = {
    "both": "Both ways",
    "right_to_wrong": "Right → wrong",
    "wrong_to_right": "Wrong → right",
}
NO_SAMPLES = (
    "Flips compare answers sample by sample, so both evals need lm-eval's per-sample "
    "output: run lm-eval with `--log_samples` on the fine-tune and on its base, then "
    "`forgetwatch ingest DIR`."
)


def counts_view(counts: pd.DataFrame) -> View:
    """Flip counts per task, with the net change in points so it reads like the deltas."""
    pairs = counts["n_pairs"].where(counts["n_pairs"] > 0)
    frame = counts.assign(net=(counts["wrong_to_right"] - counts["right_to_wrong"]) / pairs * 100)
    return View("Flips per task", frame, {"net": SIGNED})


def examples_view(examples: pd.DataFrame, title: str) -> View:
    """Flipped examples, each flip labelled in words rather than as a code."""
    shown = examples.drop(columns="total", errors="ignore")
    if "direction" in shown.columns:
        shown = shown.assign(direction=shown["direction"].map(DIRECTION_LABELS))
    return View(title, shown)


def summary_line(label: str, base_id: str, counts: pd.DataFrame) -> str:
    """One sentence: how many pairs, how many flipped each way."""
    return (
        f"{label} vs {base_id}: {int(counts['n_pairs'].sum()):,} paired samples, "
        f"{int(counts['right_to_wrong'].sum()):,} right → wrong, "
        f"{int(counts['wrong_to_right'].sum()):,} wrong → right."
    )


@dataclass
class FlipsReview:
    """Counts, one page of examples and the summary line for a (model, base) pair."""

    model_id: str
    label: str
    base_id: str
    counts: pd.DataFrame
    examples: pd.DataFrame  # with ``total``: how many match the filters, for paging

    @property
    def total(self) -> int:
        return int(self.examples["total"].iloc[0]) if not self.examples.empty else 0

    @property
    def summary(self) -> str:
        return summary_line(self.label, self.base_id, self.counts)

    def report(self) -> Report:
        """Counts per task, then the examples: CSV (one table) writes the examples."""
        views = [counts_view(self.counts), examples_view(self.examples, "Flipped examples")]
        return Report(f"forgetwatch flips: {self.label}", views, [self.summary], primary=1)


def flips_review(
    con: Con,
    model_id: str,
    base_id: str,
    *,
    label: str | None = None,
    tasks: list[str] | None = None,
    direction: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> FlipsReview:
    """The flips of ``model_id`` against ``base_id``; ``direction`` None or "both" = both."""
    counts = flips.flip_counts(con, model_id, base_id)
    examples = flips.flip_examples(
        con, model_id, base_id, tasks=tasks,
        direction=next((d for d in flips.DIRECTIONS if d == direction), None),
        search=search or None, limit=limit, offset=offset,
    )  # fmt: skip
    return FlipsReview(model_id, label or model_id, base_id, counts, examples)


def pair_for(con: Con, model: str, base: str | None) -> tuple[str, str, str]:
    """(model_id, label, base_id) for identifiers as a user types them.

    The model may be a run (its final model), a run name, a path or a display
    name; the base defaults to the recorded one. Errors say what to do next.
    """
    found = resolve_model(con, model, where="--model")
    model_id = found.model_id or model
    sampled = set(flips.sampled_models(con))
    if model_id not in sampled:
        raise BadInputError(
            f"No per-sample results for {found.label!r}",
            NO_SAMPLES,
            where="--model",
        )
    if base:
        base_id = resolve_model(con, base, where="--base").model_id or base
    else:
        recorded = flips.recorded_base(con, model_id)
        if recorded is None:
            raise BadInputError(
                f"No base model is recorded for {found.label!r}",
                "Pass --base MODEL (a run, model path or display name with per-sample results).",
                where="--base",
            )
        base_id = recorded
    if base_id not in sampled:
        raise BadInputError(
            f"The base {base_id!r} has no per-sample results", NO_SAMPLES, where="--base"
        )
    return model_id, found.label, base_id
