"""The flips view model: which samples a model got newly wrong (and right) against a base.

The Flips page and ``forgetwatch flips`` both build their tables here, so the
file a reviewer downloads has the page's columns: the net change per task in
points, and flips labelled "Right → wrong" / "Wrong → right".

A multiple-choice example reads as a question: its choices as text, the correct
one, and the choice each model picked with its probability, "Bourur. (p = 0.62)".
The probability is the softmax of the stored per-choice loglikelihoods, over
the same scores the flipped metric ranks by: raw for ``acc``, per character for
``acc_norm``, per byte for ``acc_bytes``, so the pick is the one lm-eval scored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
REINGEST = (
    "{n} multiple-choice example(s) here were stored before forgetwatch kept choice texts, "
    "so they show no choices: re-ingest their folder (`forgetwatch ingest DIR`) to fill "
    "them in."
)
NOT_STORED = "choices not stored: re-ingest"
CHART_TASKS = 20  # the Flips chart's tasks before "show all"
# A loglikelihood request's response as lm-eval logs it: ["-14.93", "False"].
_LOGLIKELIHOOD = re.compile(r'^\[\s*"?-?[0-9.eE+-]+"?\s*,\s*"?(True|False|true|false)"?\s*\]$')
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


def probabilities(lls: Sequence[float], choices: Sequence[str], metric: str) -> list[float]:
    """Each choice's probability: the softmax of the scores ``metric`` ranks choices by."""
    if metric == "acc_norm":
        scores = [ll / max(len(c), 1) for ll, c in zip(lls, choices, strict=True)]
    elif metric == "acc_bytes":
        scores = [ll / max(len(c.encode()), 1) for ll, c in zip(lls, choices, strict=True)]
    else:
        scores = list(lls)
    top = max(scores)
    weights = [math.exp(x - top) for x in scores]
    total = sum(weights)
    return [w / total for w in weights]


def picked(lls: Sequence[float], choices: Sequence[str], metric: str) -> tuple[int, float]:
    """(index, probability) of the choice a model picked: the first highest-scoring one."""
    probs = probabilities(lls, choices, metric)
    best = max(range(len(probs)), key=probs.__getitem__)
    return best, probs[best]


def fmt_probability(p: float) -> str:
    """A choice's probability as "p = 0.62" (two decimals; "p < 0.01", "p > 0.99" at the ends)."""
    if p < 0.005:
        return "p < 0.01"
    if p > 0.995:
        return "p > 0.99"
    return f"p = {p:.2f}"


def answer_text(lls: Any, choices: Sequence[str], metric: str) -> str:
    """ "Bourur. (p = 0.62)": what a model picked and how sure it was; "" if not logged."""
    if not _is_list(lls) or len(lls) != len(choices):
        return ""
    index, p = picked([float(x) for x in lls], choices, metric)
    return f"{choices[index]} ({fmt_probability(p)})"


def choices_text(choices: Sequence[str], gold: Any) -> str:
    """The choices as one cell, numbered, the correct one marked: "1. Fuzair. · 2. Bourur. ✓"."""
    right = int(gold) if not _missing(gold) else -1
    return " · ".join(f"{i + 1}. {c}" + (" ✓" if i == right else "") for i, c in enumerate(choices))


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence | pd.Series) or hasattr(value, "tolist")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_unread_choice(response: Any) -> bool:
    """A multiple-choice response stored before choices were kept: a loglikelihood pair."""
    return isinstance(response, str) and bool(_LOGLIKELIHOOD.match(response))


def _readable(row: pd.Series) -> pd.Series:
    """One example as a person reads it; a multiple-choice one in choice texts."""
    choices = row.get("choices")
    if _is_list(choices) and len(choices) > 0:
        texts = [str(c) for c in list(choices)]
        gold = row.get("gold")
        metric = str(row.get("metric"))
        right = texts[int(gold)] if not _missing(gold) and 0 <= int(gold) < len(texts) else ""
        return pd.Series({
            "choices": choices_text(texts, gold),
            "target": right or row["target"],
            "base_response": answer_text(row.get("base_loglikelihoods"), texts, metric),
            "response": answer_text(row.get("loglikelihoods"), texts, metric),
        })  # fmt: skip
    unread = is_unread_choice(row.get("response")) or is_unread_choice(row.get("base_response"))
    return pd.Series({
        "choices": NOT_STORED if unread else "",
        "target": row["target"],
        "base_response": NOT_STORED if unread else row["base_response"],
        "response": NOT_STORED if unread else row["response"],
    })  # fmt: skip


def readable(examples: pd.DataFrame) -> pd.DataFrame:
    """Examples with choices, correct choice and picks in words, the raw lists dropped.

    Generation examples keep their target and responses as they are.
    """
    raw = ["loglikelihoods", "base_loglikelihoods", "gold"]
    if examples.empty or "choices" not in examples.columns:
        return examples.drop(columns=raw, errors="ignore")
    words = examples.apply(_readable, axis=1)
    out = examples.drop(columns=[*raw, "choices"]).assign(**{c: words[c] for c in words.columns})
    # The question, the right answer and both picks first, so they read without
    # scrolling sideways; the choices and where the doc sits come after.
    first = [c for c in ("task", "direction", "prompt") if c in out]
    last = [c for c in ("capability", "doc_id") if c in out]
    order = [*first, "target", "base_response", "response", "choices", *last]
    return out[[*order, *(c for c in out.columns if c not in order)]]


def unread_count(examples: pd.DataFrame) -> int:
    """How many examples are multiple-choice ones stored before choices were kept."""
    if examples.empty or "choices" not in examples.columns:
        return 0
    no_choices = examples["choices"].isna()
    unread = examples["response"].map(is_unread_choice) | examples["base_response"].map(
        is_unread_choice
    )
    return int((no_choices & unread).sum())


def examples_view(examples: pd.DataFrame, title: str) -> View:
    """Flipped examples, each flip labelled in words rather than as a code, and each
    multiple-choice one as its choices and the picks."""
    shown = readable(examples.drop(columns="total", errors="ignore"))
    if "direction" in shown.columns:
        shown = shown.assign(direction=shown["direction"].map(DIRECTION_LABELS))
    return View(title, shown)


def chart_counts(counts: pd.DataFrame, top: int | None = CHART_TASKS) -> pd.DataFrame:
    """The tasks the Flips chart draws: the ``top`` with most flips (all when None),
    kept grouped by capability in reading order."""
    flips = counts["right_to_wrong"] + counts["wrong_to_right"]
    shown = counts if top is None or len(counts) <= top else counts.loc[
        flips.sort_values(ascending=False, kind="stable").index[:top]
    ].sort_index()  # fmt: skip
    return shown.reset_index(drop=True)


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

    @property
    def reingest_note(self) -> str | None:
        """What to do when some multiple-choice examples have no stored choices."""
        n = unread_count(self.examples)
        return REINGEST.format(n=n) if n else None

    def report(self) -> Report:
        """Counts per task, then the examples: CSV (one table) writes the examples."""
        views = [counts_view(self.counts), examples_view(self.examples, "Flipped examples")]
        notes = [self.summary, *([self.reingest_note] if self.reingest_note else [])]
        return Report(f"forgetwatch flips: {self.label}", views, notes, primary=1)


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


def example_sentences(shown: pd.DataFrame, limit: int = 3) -> list[str]:
    """The first ``limit`` flipped examples of ``examples_view``'s frame as sentences.

    A table cell cuts a long question short; a sentence reads whole: "fw_target_facts,
    doc 7, wrong → right: Q: What is the capital of Zafiia? A: · correct: Basour. ·
    base picked Dozur. (p = 0.41) · fine-tune picked Basour. (p = 0.77)".
    """
    out = []
    for row in shown.head(limit).to_dict("records"):
        question = " ".join(str(row.get("prompt") or "").split())
        doc = "" if _missing(row.get("doc_id")) else f", doc {int(row['doc_id'])}"
        parts = [f"{row.get('task')}{doc}, {str(row.get('direction') or '').lower()}: {question}"]
        for key, name in (("target", "correct"), ("base_response", "base picked"),
                          ("response", "fine-tune picked")):  # fmt: skip
            text = " ".join(str(row.get(key) or "").split())
            if text:
                parts.append(f"{name}: {text}" if key == "target" else f"{name} {text}")
        out.append(" · ".join(parts))
    return out
