"""The compact table a review report leads with: capability × model, then each verdict.

A reviewer reads one table: per capability, each model's change with its 95% CI and a
significance mark, written by ``views.fmt_change`` exactly as on the Compare page, and
a last row with each model's budget verdict. The cells are the capability tests the
verdict judged (``budget.Verdict`` check rows, read from the stored capability tests
by ``queries.significance.paired_capability_deltas``), so a mark never disagrees with
the verdict under it. The verdicts' reasons travel with the table, so each format lists
them under it (Markdown bullets, HTML ``<ul>``, LaTeX ``itemize``) instead of packing
them into one long cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forgetwatch.queries import CAPABILITY_ORDER
from forgetwatch.review.direction import capability_title, oriented
from forgetwatch.review.views import View, as_points, fmt_change

TITLE = "Capabilities vs base"
LEGEND = "* significant after correction; [low, high] 95% CI; + = better, hallucination + = worse"
CAPABILITY_HEADER = "Capability"
VERDICT_ROW = "Verdict"
MISSING_CELL = "n/a"
# Verdict status -> colour: the dashboard's badge text colours (Okabe-Ito, readable on light
# and dark), declared here because exports sit below the dashboard and cannot import it.
VERDICT_COLORS = {
    "pass": "#009E73", "inconclusive": "#0072B2", "review": "#E69F00", "fail": "#D55E00",
}  # fmt: skip
# The numbers behind the cells, for the machine formats (XLSX): one row per model × capability.
NUMBER_COLUMNS = [
    "run_name", "capability", "base_value", "value", "delta", "ci_low", "ci_high",
    "significant", "p_adjusted", "mde", "evidence", "test", "verdict", "model_id",
]  # fmt: skip


@dataclass
class ReviewTable(View):
    """``frame`` holds the numbers (XLSX writes them); ``cells`` the text a human format shows.

    ``cells`` has a ``Capability`` column, then one text column per model; its last row is
    the verdict. ``cell_noise`` marks the cells within noise (greyed in HTML).
    """

    cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    cell_noise: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdicts: dict[str, str] = field(default_factory=dict)  # model header -> status
    reasons: dict[str, list[str]] = field(default_factory=dict)  # model header -> reasons
    legend: str = LEGEND

    @property
    def models(self) -> list[str]:
        """The model column headers, in table order."""
        return [c for c in self.cells.columns if c != CAPABILITY_HEADER]


def _numbers(verdicts: Mapping[str, Any], headers: Mapping[str, str]) -> pd.DataFrame:
    """The long numeric frame: every model's capability rows, in points, with its verdict.

    Built from the verdicts' plain check records in one frame (a frame per model costs
    milliseconds each, seconds at thousands of models); a capability with two rules
    has two records with the same numbers, kept once.
    """
    records = [
        {**r, "model_id": m, "run_name": headers[m], "verdict": v.status}
        for m, v in verdicts.items()
        for r in v.check_records
    ]
    if not records:
        return pd.DataFrame(columns=NUMBER_COLUMNS)
    frame = oriented(pd.DataFrame(records)).drop_duplicates(["model_id", "capability"])
    rank = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    frame = frame.assign(_rank=frame["capability"].map(rank).fillna(len(rank)))
    frame = frame.sort_values("_rank", kind="stable").drop(columns="_rank")
    frame = as_points(frame)
    frame["significant"] = frame["significant"].astype("boolean").fillna(False).astype(bool)
    frame["capability"] = frame["capability"].map(capability_title)
    return frame[NUMBER_COLUMNS].reset_index(drop=True)


def _unique_headers(labels: Mapping[str, str]) -> dict[str, str]:
    """Model id -> column header; two models with one name get their id added."""
    counts = pd.Series(list(labels.values()), dtype=object).value_counts()
    return {m: (f"{name} ({m})" if counts[name] > 1 else name) for m, name in labels.items()}


def review_table(
    verdicts: Mapping[str, Any], labels: Mapping[str, str], title: str = TITLE
) -> ReviewTable:
    """The compact table for ``verdicts`` (model id -> ``budget.Verdict``).

    Models come in ``labels`` order (model id -> the name tables use); a capability a
    model has no test for reads ``n/a``. Pure: no database.
    """
    headers = _unique_headers({m: labels[m] for m in labels if m in verdicts})
    numbers = _numbers({m: verdicts[m] for m in headers}, headers)
    capabilities = list(dict.fromkeys(numbers["capability"]))
    models = list(headers.values())
    text = [
        fmt_change(d, lo, hi, s) or MISSING_CELL
        for d, lo, hi, s in zip(
            numbers["delta"], numbers["ci_low"], numbers["ci_high"], numbers["significant"],
            strict=True,
        )
    ]  # fmt: skip
    keyed = numbers.assign(text=text, quiet=~numbers["significant"])
    grid = keyed.pivot(index="capability", columns="run_name", values="text")
    grid = grid.reindex(index=capabilities, columns=models).fillna(MISSING_CELL)
    quiet = keyed.pivot(index="capability", columns="run_name", values="quiet")
    quiet = quiet.reindex(index=capabilities, columns=models).fillna(True).astype(bool)
    status = {h: verdicts[m].status for m, h in headers.items()}
    cells = pd.concat([grid, pd.DataFrame([status], index=[VERDICT_ROW])])
    cells = cells.rename_axis(CAPABILITY_HEADER).reset_index().rename_axis(columns=None)
    cell_noise = pd.concat([quiet, pd.DataFrame([dict.fromkeys(models, False)])])
    return ReviewTable(
        title,
        numbers,
        noise=pd.DataFrame({"delta": ~numbers["significant"]}, index=numbers.index),
        cells=cells,
        cell_noise=cell_noise.reset_index(drop=True),
        verdicts=status,
        reasons={h: list(verdicts[m].reasons) for m, h in headers.items()},
    )


def comparison_review_table(comparison: Any) -> ReviewTable:
    """The compact table of a ``review.Comparison``: its compared models and their verdicts."""
    return review_table(comparison.verdicts, comparison.labels())
