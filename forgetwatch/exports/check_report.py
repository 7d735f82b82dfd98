"""The Markdown verdict ``forgetwatch check`` prints: fit for a pull-request comment.

Kept apart from ``budget`` so the rules and their rendering change independently;
the dashboard badge and this report read the same ``Verdict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from forgetwatch import stats
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.review.budget import BADGES, Verdict, to_points
from forgetwatch.review.direction import capability_title
from forgetwatch.review.views import fmt_change, fmt_p

OUTCOME_MARKS = {
    "met": "✅ met", "inconclusive": "❔ inconclusive", "review": "⚠️ review", "fail": "❌ fail",
    "not checked": "—",
}  # fmt: skip
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def _cell_pts(value: Any) -> str:
    points = to_points(value)
    return "" if points is None else f"{points:.1f}"


def _table_row(check: pd.Series) -> str:
    change = fmt_change(
        to_points(check["delta"]), to_points(check["ci_low"]), to_points(check["ci_high"]),
        check.get("significant"),
    )  # fmt: skip
    p = fmt_p(check["p_adjusted"])
    test = check["test"]
    evidence = stats.EVIDENCE_LABELS.get(check["evidence"], check["evidence"])
    evidence += "" if test is None or pd.isna(test) else f", {test}"
    cells = [
        escape_markdown(capability_title(str(check["capability"]))), _cell_pts(check["base_value"]),
        _cell_pts(check["value"]), escape_markdown(change), p,
        _cell_pts(check["mde"]), escape_markdown(evidence), escape_markdown(check["rule"]) or "—",
        OUTCOME_MARKS.get(check["outcome"], check["outcome"]),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def verdict_markdown(run_label: str, verdict: Verdict) -> str:
    """A pull-request comment: verdict badge, capability table, reasons, settings note."""
    budget = verdict.budget
    lines = [f"### forgetwatch check: {BADGES[verdict.status]} — {escape_markdown(run_label)}", ""]
    about = [f"model `{verdict.model_id}` vs base `{verdict.base_model_id or '?'}`"]
    if budget is not None:
        about.append(f"budget `{Path(budget.source).name or 'inline'}`")
        about.append(
            f"alpha {budget.alpha:g} after {CORRECTION_NAMES[budget.correction]} correction"
        )
    lines += [
        " · ".join(about),
        "",
        "Deltas in points (× 100) vs the base, with their 95% CI; \\* = significant after "
        "correction. *Detects ≥*: the smallest change the eval would call significant with 80% "
        "power (its minimum detectable effect).",
        "",
    ]
    lines += [
        "| capability | base | model | Δ [95% CI] | p (adj.) | detects ≥ | evidence | rule "
        "| result |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
        *(_table_row(check) for _, check in verdict.checks.iterrows()),
        "",
    ]
    if verdict.reasons:
        lines += ["**Why**", "", *(f"- {escape_markdown(r)}" for r in verdict.reasons), ""]
    if verdict.mismatches:
        shown = "; ".join(escape_markdown(m) for m in verdict.mismatches[:8])
        more = f" (and {len(verdict.mismatches) - 8} more)" if len(verdict.mismatches) > 8 else ""
        lines += [
            f"> ⚠️ **Settings mismatch** between the model's evals and its base's: {shown}{more}. "
            "These deltas may reflect the settings, not the fine-tune.",
            "",
        ]
    return "\n".join(lines)
