"""The runs overview view model: one page of runs (and run-less models) with gain,
erosion and verdict.

A model evaluated with lm-eval but produced by no MLflow run is a row too,
named by its short path and compared against its recorded base.

The Runs page shows ``runs_page``'s view; ``run_verdicts`` gives the badges for
selected runs (finals and checkpoints). Both read the same trust columns as
Compare and the exports. Filtering, ordering and paging happen in SQL
(``queries.runs``), and only the page's rows get verdicts and noise, so a page
of 50 costs the same at 100 runs as at 10,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.errors import BadInputError
from forgetwatch.queries import Con
from forgetwatch.queries import runs as run_queries
from forgetwatch.review import trust
from forgetwatch.review.comparison import model_label
from forgetwatch.review.views import View, as_points, ordered

# What a reviewer scans first: the run, what it gained and lost, then how it was trained.
COLUMN_ORDER = (
    "run_name", "target_gain", "general_change", "hallucination_change", "verdict",
    "verdict_reasons", "settings_mismatch", "method", "learning_rate", "num_train_epochs",
    "max_steps", "lora_r", "base_model", "status", "start_time", "experiment_name", "run_id",
)  # fmt: skip
PAGE_SIZE = 50
PAGE_SIZES = (25, 50, 100, 200)
# The sort choices the Runs page offers: label -> (column, descending). Hallucination
# change is "+ = worse", so worst first is descending; general change worst is ascending.
SORTS: dict[str, tuple[str, bool]] = {
    "Newest first": ("start_time", True),
    "Oldest first": ("start_time", False),
    "Target gain, highest first": ("target_gain", True),
    "Target gain, lowest first": ("target_gain", False),
    "General change, most forgotten first": ("general_change", False),
    "Hallucination change, worst first": ("hallucination_change", True),
    "Run name, A to Z": ("run_name", False),
    "Method": ("method", False),
    "Status": ("status", False),
}
DEFAULT_SORT = "Newest first"


@dataclass
class RunsOverview:
    """One page of the Runs table and what the page says around it."""

    view: View
    warning: str  # the settings-mismatch warning, '' when every setting matches
    final_models: dict[str, str] = field(default_factory=dict)  # run_id -> final model_id
    # Per table row: the model a row with no run stands for (lm-eval outputs ingested
    # without MLflow), None on a run's row.
    row_models: list[str | None] = field(default_factory=list)
    scored: bool = False  # whether any row on the page has a delta
    total: int = 0  # runs matching the filters, on every page
    page: int = 1  # 1-based, after clamping to the pages there are
    page_size: int | None = None  # None = every matching run on one page

    @property
    def empty(self) -> bool:
        return bool(self.view.frame.empty)

    @property
    def pages(self) -> int:
        """How many pages the matching runs fill (at least one)."""
        if not self.page_size:
            return 1
        return max(1, math.ceil(self.total / self.page_size))

    @property
    def first_row(self) -> int:
        """1-based number of the page's first run (0 when nothing matches)."""
        if self.empty:
            return 0
        return (self.page - 1) * (self.page_size or 0) + 1

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.view.frame) - 1 if not self.empty else 0

    @property
    def rows_line(self) -> str:
        """ "Runs 1–50 of 10,000", the pager's caption."""
        if self.empty:
            return "No runs or models match."
        return f"Rows {self.first_row:,}–{self.last_row:,} of {self.total:,}"


def runs_overview(
    con: Con,
    *,
    search: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    sort: str = DEFAULT_SORT,
    page: int = 1,
    page_size: int | None = None,
) -> RunsOverview:
    """Runs matching the filters in ``sort`` order (a SORTS label), one page of them.

    ``page`` is clamped to the pages there are, so a narrower filter never shows an
    empty page past the end. ``page_size`` None lists every match on one page.
    Verdicts, settings mismatches and headline noise are computed for the page only.
    """
    column, descending = _sort(sort)
    filters = {"search": search or None, "base_model": base_model, "method": method}
    shown = RunsOverview(View("Runs", pd.DataFrame()), "", page_size=page_size)
    shown.total = run_queries.runs_count(con, **filters)
    shown.page = min(max(int(page), 1), shown.pages)
    runs = run_queries.runs_page(
        con, **filters, sort=column, descending=descending, limit=page_size,
        offset=(shown.page - 1) * (page_size or 0),
    )  # fmt: skip
    if runs.empty:
        shown.view = View("Runs", runs.drop(columns="model_id"))
        return shown
    shown.row_models = [
        None if isinstance(r, str) else str(m)
        for r, m in zip(runs["run_id"], runs["model_id"], strict=True)
    ]
    # Only a final with a delta has a verdict (as on Compare); others keep no model.
    scored = runs[list(trust.HEADLINES)].notna().any(axis=1)
    shown.scored = bool(scored.any())
    runs["model_id"] = runs["model_id"].where(scored, None)
    labels = runs["run_name"].fillna(runs["run_id"])
    names = {m: n for m, n in zip(runs["model_id"], labels, strict=True) if isinstance(m, str)}
    annotated = trust.annotate(con, runs, names)
    frame = ordered(as_points(annotated.frame), COLUMN_ORDER).drop(columns="model_id")
    shown.view = View("Runs", frame, noise=annotated.noise)
    shown.warning = annotated.warning
    shown.final_models = {
        str(r): str(m)
        for r, m in zip(runs["run_id"], runs["model_id"], strict=True)
        if isinstance(m, str)
    }
    return shown


def _sort(label: str) -> tuple[str, bool]:
    """The (column, descending) a SORTS label stands for."""
    if label not in SORTS:
        raise BadInputError(
            f"Unknown sort order {label!r}", f"Sort by one of: {', '.join(SORTS)}.", where="sort"
        )
    return SORTS[label]


def run_verdicts(
    con: Con, run_ids: list[str], model_ids: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Verdicts for every evaluated model (final and checkpoints) of ``run_ids``, and of
    ``model_ids`` (rows with no run), with their labels."""
    if not run_ids and not model_ids:
        return {}, {}
    points = queries.compare_points(con, run_ids=run_ids or None, model_ids=model_ids or None)
    found = trust.verdicts(con, list(points["model_id"]))
    labels = {
        r.model_id: model_label(r.run_name, r.run_id, r.kind, r.step) for r in points.itertuples()
    }
    return found, labels


@dataclass(frozen=True)
class Selection:
    """The selected rows, as what each page and command takes."""

    run_ids: list[str]  # rows that are runs
    model_ids: list[str]  # rows that are models with no run

    @property
    def count(self) -> int:
        return len(self.run_ids) + len(self.model_ids)


def selection(overview: RunsOverview, rows: list[int]) -> Selection:
    """What the selected table rows stand for: runs, and models without a run."""
    frame: pd.DataFrame = overview.view.frame
    run_ids, model_ids = [], []
    for row in rows:
        model = overview.row_models[row] if row < len(overview.row_models) else None
        if model is not None:
            model_ids.append(model)
        else:
            run_ids.append(str(frame.iloc[row]["run_id"]))
    return Selection(run_ids, model_ids)


def selected_run_ids(view: View, rows: list[int]) -> list[str]:
    """The run ids of the selected table rows (rows with no run are skipped)."""
    frame: pd.DataFrame = view.frame
    ids = (frame.iloc[row]["run_id"] for row in rows)
    return [str(r) for r in ids if isinstance(r, str)]
