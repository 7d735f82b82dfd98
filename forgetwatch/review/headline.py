"""The answer in ten seconds: what the landing page says above its table.

How many evaluated models (finals and checkpoints) pass the forgetting budget,
need review or fail; the best model under the budget, or the least-bad one when
none passes; the worst forgetting per capability; and the budget itself in words,
with the file it came from. Every number is a verdict's own check record (the
stored capability tests that ``check``, Compare and the exports read), so the
headline can never disagree with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from forgetwatch.queries import CAPABILITY_ORDER, Con
from forgetwatch.queries import runs as run_queries
from forgetwatch.review import budget as budgets
from forgetwatch.review.comparison import model_label
from forgetwatch.review.direction import capability_title, change_sign

# Mildest first, as budget.STATUSES; the headline counts them in this order.
STATUSES = budgets.STATUSES
SEVERITY = {status: i for i, status in enumerate(STATUSES)}
TARGET = "target"


@dataclass(frozen=True)
class Pick:
    """One model the headline names: who it is and what it gained and lost."""

    model_id: str
    label: str  # run name, "@step" for a checkpoint
    run_id: str | None
    kind: str  # final or checkpoint
    status: str
    target_gain: float | None  # points
    reasons: list[str] = field(default_factory=list)  # the verdict's sentences, worst first

    @property
    def is_checkpoint(self) -> bool:
        return self.kind == "checkpoint"


@dataclass(frozen=True)
class Worst:
    """The largest loss on one capability among the judged models."""

    capability: str
    label: str
    model_id: str
    change: float  # points as pages show it (hallucination: + = worse)
    significant: bool

    @property
    def title(self) -> str:
        """The capability as a metric's label: "Knowledge", "Hallucination (+ = worse)"."""
        name = self.capability.capitalize()
        return f"{name} (+ = worse)" if change_sign(self.capability) < 0 else name

    @property
    def text(self) -> str:
        """ "Knowledge −52.3 (ft-full-lr3e-3-e50)"; a non-significant one says so."""
        noise = "" if self.significant else " (within noise)"
        return f"{capability_title(self.capability)} {self.change:+.1f}: {self.label}{noise}"


@dataclass
class Headline:
    """What the Runs page (and ``forgetwatch summary``) says first."""

    counts: dict[str, int]  # status -> judged models with it
    finals: int
    checkpoints: int
    best: Pick | None  # the passing model with the largest target gain
    least_bad: Pick | None  # when nothing passes: the mildest verdict, then the most gain
    worst: list[Worst]  # per general capability, the largest loss
    budget_rules: list[str]  # one phrase per limit, in the budget's order
    budget_file: str
    budget_is_default: bool

    @property
    def judged(self) -> int:
        return self.finals + self.checkpoints

    @property
    def empty(self) -> bool:
        return self.judged == 0

    @property
    def verdict_line(self) -> str:
        """ "1 of 7 evaluated models passes your budget · 2 review · 4 fail"."""
        passing = self.counts.get("pass", 0)
        verb = "passes" if passing == 1 else "pass"
        parts = [f"{passing} of {self.judged} evaluated models {verb} the budget"]
        parts += [f"{self.counts[s]} {s}" for s in STATUSES[1:] if self.counts.get(s)]
        return " · ".join(parts)

    @property
    def scope_line(self) -> str:
        """ "4 final models and 3 checkpoints, each against its own base"."""
        finals = f"{self.finals} final model{'s' if self.finals != 1 else ''}"
        if not self.checkpoints:
            return f"{finals}, each against its own base"
        ckpts = f"{self.checkpoints} checkpoint{'s' if self.checkpoints != 1 else ''}"
        return f"{finals} and {ckpts}, each against its own base"

    @property
    def budget_line(self) -> str:
        """The budget in words, and where it came from."""
        file = Path(self.budget_file)
        if self.budget_is_default:
            where = f"the bundled example budget ({file}; set FORGETWATCH_BUDGET to use yours)"
        elif file.parent == budgets.bundled_budget_path().parent and file.stem == "demo":
            where = f"the demo's budget ({file}: its evals are too small for point limits)"
        else:
            where = str(file)
        return f"Budget: {'; '.join(self.budget_rules)}. From {where}."


def _points_words(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")


def rule_phrases(plan: budgets.Budget) -> list[str]:
    """Each limit of ``plan`` in plain words: "target must gain at least 2 points"."""
    phrases = []
    for rule in plan.rules:
        cap = rule.capability
        if rule.min_gain is not None:
            phrases.append(
                f"{cap} must gain at least {_points_words(rule.min_gain)}, significantly"
            )
        if rule.max_drop is not None:
            loses = "may rise by" if change_sign(cap) < 0 else "may lose"
            unless = " (more only if not significant)" if rule.or_not_significant else ""
            phrases.append(f"{cap} {loses} at most {_points_words(rule.max_drop)}{unless}")
        if rule.not_significantly_worse:
            phrases.append(f"{cap} must not get significantly worse")
    return phrases


def _record(verdict: Any, capability: str) -> dict[str, Any] | None:
    return next((r for r in verdict.check_records if r["capability"] == capability), None)


def _points(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value) * 100, 1)


def _pick(row: Any, verdict: Any) -> Pick:
    target = _record(verdict, TARGET)
    return Pick(
        model_id=str(row.model_id),
        label=model_label(row.run_name, row.run_id, row.kind, row.step),
        run_id=row.run_id if isinstance(row.run_id, str) else None,
        kind=str(row.kind),
        status=verdict.status,
        target_gain=_points(target["delta"]) if target else None,
        reasons=list(verdict.reasons),
    )


def _failed_checks(verdict: Any) -> int:
    return sum(1 for r in verdict.check_records if r["outcome"] in ("fail", "review"))


def _worst(picks: list[tuple[Any, Any]]) -> list[Worst]:
    """Per general capability, the judged model whose score fell most (shown as pages show
    it: + = worse for failure rates). Capabilities where nothing fell are left out."""
    found: dict[str, Worst] = {}
    for row, verdict in picks:
        for record in verdict.check_records:
            cap, delta = record["capability"], _points(record["delta"])
            if cap == TARGET or delta is None or delta >= 0:
                continue
            if cap in found and -delta <= abs(found[cap].change):
                continue
            # As the verdict judged it: after the correction and the harness's noise floor.
            significant = bool(record.get("significant") or False)
            label = model_label(row.run_name, row.run_id, row.kind, row.step)
            found[cap] = Worst(cap, label, str(row.model_id), change_sign(cap) * delta, significant)
    order = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    return sorted(found.values(), key=lambda w: order.get(w.capability, len(order)))


def headline(con: Con, *, base_model: str | None = None, method: str | None = None) -> Headline:
    """The headline over every judged model, narrowed like the Runs page's filters."""
    path = budgets.default_budget_path()
    plan = budgets.load_budget(path)
    models = run_queries.judged_models(con, base_model=base_model, method=method)
    found = budgets.verdicts(con, list(models["model_id"]), plan) if not models.empty else {}
    picks = [(row, found[row.model_id]) for row in models.itertuples(index=False)]
    counts = {s: 0 for s in STATUSES}
    for _, verdict in picks:
        counts[verdict.status] += 1
    passing = [_pick(r, v) for r, v in picks if v.status == "pass"]
    best = max(passing, key=lambda p: p.target_gain or float("-inf"), default=None)
    least_bad = None
    if best is None and picks:
        row, verdict = min(
            picks,
            key=lambda rv: (
                SEVERITY[rv[1].status],
                _failed_checks(rv[1]),
                -(_points((_record(rv[1], TARGET) or {}).get("delta")) or float("-inf")),
            ),
        )
        least_bad = _pick(row, verdict)
    checkpoints = int((models["kind"] == "checkpoint").sum()) if not models.empty else 0
    return Headline(
        counts=counts,
        finals=len(models) - checkpoints,
        checkpoints=checkpoints,
        best=best,
        least_bad=least_bad,
        worst=_worst(picks),
        budget_rules=rule_phrases(plan),
        budget_file=str(Path(plan.source or path)),
        budget_is_default=path == budgets.bundled_budget_path(),
    )
