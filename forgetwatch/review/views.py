"""How tables are shown: column labels, number formats, and the View/Report containers.

A page builds a ``View`` (its DataFrame plus how each column is labelled and
formatted), shows it, and hands the same object to an export; the CLI builds
the same views with the same functions, so an export always holds exactly the
numbers on the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forgetwatch.suite import change_label

SIGNED = "+.1f"  # deltas in points: "+12.3"
POINTS = ".1f"  # scores in points: "45.0"
# p-values: one format everywhere, "p < 0.001" below a thousandth, else two significant
# digits ("0.031", "0.36"); ``fmt_p`` writes it (a format name, not a format spec).
PVALUE = "pvalue"
P_FLOOR = 0.001
# Appended to a delta's text in Markdown/LaTeX/HTML when it is within noise (not significant
# after correction, or untested); HTML, XLSX and the dashboard also grey the cell.
NOISE_MARK = " (ns)"
NOISE_COLOR = "#9e9e9e"


@dataclass(frozen=True)
class Column:
    """How a known column is headed, explained and (for numbers) formatted everywhere."""

    label: str
    help: str = ""
    number_format: str | None = None  # a Python format spec; None = as stored


COLUMNS: dict[str, Column] = {
    "run_name": Column("Run"),
    "kind": Column("Kind"),
    "step": Column("Step", number_format="d"),
    "target_gain": Column("Target gain", "Change on target tasks vs base, in points.", SIGNED),
    "general_change": Column(
        "General change",
        "Mean change on knowledge, code and instructions vs base, in points.",
        SIGNED,
    ),
    "hallucination_change": Column(
        change_label("hallucination").capitalize(),
        "Change in hallucination rate vs base, in points (+ = worse: hallucinates more).",
        SIGNED,
    ),
    "capability": Column("Capability"),
    "task": Column("Task"),
    "tasks": Column("Tasks"),
    "base_value": Column("Base", "Base model score, in points.", POINTS),
    "value": Column("Score", "This model's score, in points.", POINTS),
    "delta": Column(
        "Delta",
        "Score minus base score, in points; on hallucination rows the change of the "
        "hallucination rate (+ = worse).",
        SIGNED,
    ),
    "ci_low": Column("CI low", "95% CI of the delta, low end (points).", SIGNED),
    "ci_high": Column("CI high", "95% CI of the delta, high end (points).", SIGNED),
    "significant": Column(
        "Significant",
        "yes = the change is significant after the multiple-comparison correction; "
        "no = within noise (greyed).",
    ),
    "evidence": Column(
        "Evidence",
        "paired = per-sample paired test (strong); stderr = lm-eval's stderrs only, "
        "treating the evals as independent (weaker); none = no test possible.",
    ),
    "test": Column("Test", "The statistical test behind the p-value and CI."),
    "p_value": Column("p", "Unadjusted p-value of the change.", PVALUE),
    "p_adjusted": Column("p (adj.)", "p-value after the multiple-comparison correction.", PVALUE),
    "correction": Column("Correction", "Multiple-comparison correction (holm or bh)."),
    "mde": Column(
        "Detects ≥",
        "Minimum detectable effect, in points: the smallest true change this eval would "
        "call significant with 80% power, at the row's alpha after the correction (alpha "
        "over the model's tested deltas), from the pairs and how often they disagree. "
        "A change smaller than this can hide in the noise.",
        POINTS,
    ),
    "uninformative": Column(
        "Uninformative",
        "yes = model and base both score 0 (or both 100) on every item: no item can flip, "
        "so the task is left out of its capability's mean and of the correction.",
    ),
    "n_pairs": Column("Pairs", "Samples paired between model and base.", "d"),
    "right_to_wrong": Column("Right→wrong", "Samples the base got right and the model wrong.", "d"),
    "wrong_to_right": Column("Wrong→right", "Samples the base got wrong and the model right.", "d"),
    # Already in points (review.flips computes it), so it carries no number format here:
    # a SIGNED format would put it in POINT_COLUMNS and as_points would scale it twice.
    "net": Column("Net", "Wrong→right minus right→wrong, as points of the paired samples."),
    "both_right": Column("Both right", number_format="d"),
    "both_wrong": Column("Both wrong", number_format="d"),
    "verdict": Column(
        "Verdict",
        "Forgetting budget verdict: pass / inconclusive (the eval is too small to tell "
        "whether a limit holds) / review / fail.",
    ),
    "verdict_reasons": Column("Why", "Why the budget gave this verdict."),
    "settings_mismatch": Column(
        "Settings vs base", "Eval settings that differ from the base's eval of the task."
    ),
    "missing": Column(
        "Missing", "Why a cell has no delta: the base, or that model, has no eval of the task."
    ),
    "metric": Column("Metric"),
    "filter": Column("Filter"),
    "samples": Column(
        "Samples", "Documents scored; 'N of M' when lm-eval's --limit cut the task to N of its M."
    ),
    "better": Column(
        "Better", "Which way the metric improves; a delta reads + = better either way."
    ),
    "method": Column("Method"),
    "status": Column("Status"),
    "learning_rate": Column("LR"),
    "num_train_epochs": Column("Epochs"),
    "max_steps": Column("Max steps"),
    "lora_r": Column("LoRA r"),
    "start_time": Column("Started"),
    "experiment_name": Column("Experiment"),
    "base_model": Column("Base model"),
    "base_model_id": Column("Base model"),
    "lm_eval_version": Column("lm-eval"),
    "n_shot": Column("n-shot"),
    "eval_limit": Column("Limit"),
    "task_hashes": Column("Task hashes"),
    "chat_template_sha": Column("Chat template"),
    "evaluated_at": Column("Evaluated"),
    "eval_id": Column("Eval id"),
    "source_file": Column("Results file"),
    "run_id": Column("Run id"),
    "model_id": Column("Model"),
    "doc_id": Column("Doc", number_format="d"),
    "direction": Column("Flip"),
    "prompt": Column("Question", "The prompt lm-eval gave the model."),
    "choices": Column("Choices", "A multiple-choice question's choices; ✓ marks the correct one."),
    "target": Column("Target"),
    "base_response": Column("Base response"),
    "response": Column("Model response"),
    "doc_hash": Column("Doc hash"),
    "prompt_hash": Column("Prompt hash"),
}

# Columns stored as 0..1 fractions and shown (and exported) as points.
POINT_COLUMNS = frozenset(c for c, col in COLUMNS.items() if col.number_format in (SIGNED, POINTS))


@dataclass
class View:
    """One table as a page shows it: title, frame in display units, per-column formats."""

    title: str
    frame: pd.DataFrame
    number_formats: dict[str, str] = field(default_factory=dict)
    # Booleans aligned with ``frame`` (same index, some of its columns): True = the cell
    # is within noise, so it is greyed on the page and in HTML/XLSX and marked in text.
    noise: pd.DataFrame | None = None

    def number_format(self, column: str) -> str | None:
        known = COLUMNS.get(column)
        return self.number_formats.get(column) or (known.number_format if known else None)

    def noise_at(self, row: int, column: str) -> bool:
        """Whether the cell at position ``row`` of ``column`` is within noise."""
        if self.noise is None or column not in self.noise.columns:
            return False
        return bool(self.noise[column].iloc[row])


@dataclass
class Report:
    """What one export holds: views (first = the primary table), notes, and chart figures."""

    title: str
    views: list[View]
    notes: list[str] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)  # plotly Figures, drawn only in HTML
    primary: int = 0  # the view a single-table format (CSV) writes


def label(column: str) -> str:
    """The header shown for ``column`` on pages and in files."""
    known = COLUMNS.get(column)
    return known.label if known else column


def fmt_points(value: float | None) -> str:
    """A 0..1 delta as signed points, e.g. 0.123 -> "+12.3"; unknown -> "n/a"."""
    if value is None or pd.isna(value):
        return "n/a"
    points = round(float(value) * 100, 1)
    return f"{points + 0.0:+.1f}"  # + 0.0 turns -0.0 into 0.0


def fmt_p(value: Any) -> str:
    """A p-value as every page, export and comment shows it: "< 0.001", "0.031", "1"; "" if none.

    Past three decimals a p-value says nothing a reviewer acts on, and "2.3e-17"
    reads as false precision, so small ones are floored.
    """
    if is_missing(value):
        return ""
    p = float(value)
    if p < P_FLOOR:
        return f"< {P_FLOOR:g}"
    return f"{float(f'{p:.2g}'):g}"


SIGNIFICANT_MARK = "*"  # after a change with its CI when significant after correction


def fmt_change(delta: Any, ci_low: Any = None, ci_high: Any = None, significant: Any = None) -> str:
    """A change in points with its 95% CI and significance, as one compact cell.

    "+12.3 [+8.0, +16.5] *" (significant after correction), "-2.0 [-5.1, +1.1]"
    (within noise), "+3.0" (no CI). Takes points, as views hold them; "" if no delta.
    The comparison tables of every page and report use this, so a change reads the same.
    """
    if is_missing(delta):
        return ""

    def signed(value: Any) -> str:
        text = f"{float(value):+.1f}"
        return "+0.0" if text == "-0.0" else text

    text = signed(delta)
    if not is_missing(ci_low) and not is_missing(ci_high):
        text += f" [{signed(ci_low)}, {signed(ci_high)}]"
    if not is_missing(significant) and bool(significant):
        text += f" {SIGNIFICANT_MARK}"
    return text


def p_text(value: Any, name: str = "p") -> str:
    """``name`` and a p-value as a phrase: "p_adj = 0.36", "p_adj < 0.001"; "" if none."""
    text = fmt_p(value)
    if not text:
        return ""
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def display_frame(view: View) -> pd.DataFrame:
    """``view.frame`` with p-value columns as their text ("< 0.001"), for a page table.

    A table widget formats numbers with a printf spec, which cannot floor a p-value;
    the other numbers stay numbers, so they still sort.
    """
    columns = [c for c in view.frame.columns if view.number_format(c) == PVALUE]
    if not columns:
        return view.frame
    out = view.frame.copy()
    for column in columns:
        out[column] = [fmt_p(v) for v in out[column]]
    return out


def as_points(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with its known score/delta columns scaled from fractions to points."""
    out = df.copy()
    for column in POINT_COLUMNS & set(out.columns):
        # Rounded past display precision so float noise (-9.999999999999998) never shows.
        out[column] = (out[column].astype("Float64") * 100).round(9)
    return out


def ordered(df: pd.DataFrame, first: Sequence[str], last: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` with ``first`` columns leading and ``last`` trailing (missing names skipped)."""
    lead = [c for c in first if c in df.columns]
    tail = [c for c in last if c in df.columns and c not in lead]
    middle = [c for c in df.columns if c not in lead and c not in tail]
    return df[lead + middle + tail]


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas.NA (all shown as an empty cell)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def cell_text(value: Any, number_format: str | None) -> str:
    """A cell as the page displays it: formatted numbers, minute timestamps, '' for missing."""
    if is_missing(value):
        return ""
    if isinstance(value, pd.Timestamp):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if number_format == PVALUE:
        return fmt_p(value)
    if number_format and isinstance(value, int | float) and not isinstance(value, bool):
        text = format(int(value) if number_format == "d" else float(value), number_format)
        return "+0.0" if text == "-0.0" else text
    return str(value)


def text_rows(view: View) -> tuple[list[str], list[list[str]]]:
    """Headers and display strings of every cell (the human-readable formats use these).

    Cells within noise carry ``NOISE_MARK``, so a plain-text table still says
    which changes are not significant.
    """
    columns = list(view.frame.columns)
    formats = [view.number_format(c) for c in columns]
    rows = []
    for i, row in enumerate(view.frame.itertuples(index=False, name=None)):
        cells = [cell_text(v, f) for v, f in zip(row, formats, strict=True)]
        rows.append(
            [
                text + NOISE_MARK if text and view.noise_at(i, column) else text
                for text, column in zip(cells, columns, strict=True)
            ]
        )
    return [label(c) for c in columns], rows
