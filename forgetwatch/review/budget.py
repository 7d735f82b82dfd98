"""Forgetting budgets: what a fine-tune must gain and may lose, and the verdict on a model.

A budget is a small YAML file (see ``forgetwatch/budgets/default.yaml``): rules per
capability in points, plus ``alpha`` and the multiple-comparison ``correction``.
Each rule is checked against the capability's paired delta and its test
(``queries.significance.paired_capability_deltas``):

* **pass** — every rule met;
* **fail** — a rule clearly violated: beyond its limit *and* significant (for a
  minimum gain: the whole 95% CI short of it);
* **review** — a limit exceeded but not significantly, or the evidence missing
  (capability not evaluated, or no per-sample results and no stderr);
* **inconclusive** — a limit met by the observed delta, but the eval is too small
  to tell whether it holds: its minimum detectable effect (``mde``, 80% power at
  the row's corrected alpha) is larger than the distance from the delta to the
  limit, so a violation could have gone unseen ("knowledge: -0.8 points, but
  this eval detects only drops of 2.5 or more"). Unlike review, no limit is
  exceeded; more items would settle it.

A model's status is its worst check: fail > review > inconclusive > pass.
Statistical noise alone therefore never fails a run, a real regression never
passes silently, and neither does an eval too small to see one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from forgetwatch import settings, stats
from forgetwatch.errors import BadInputError
from forgetwatch.queries.comparability import mismatch_by_task, settings_mismatches
from forgetwatch.queries.deltas import CAPABILITY_ORDER, Con
from forgetwatch.queries.significance import paired_capability_deltas
from forgetwatch.review.direction import change_label, change_sign, oriented
from forgetwatch.review.views import p_text

STATUSES = ("pass", "inconclusive", "review", "fail")  # mildest first
BADGES = {
    "pass": "✅ PASS", "inconclusive": "❔ INCONCLUSIVE", "review": "⚠️ REVIEW", "fail": "❌ FAIL",
}  # fmt: skip
# Check outcome -> the status it gives a model (a model's status is its worst check).
OUTCOME_STATUS = {"met": "pass", "inconclusive": "inconclusive", "review": "review", "fail": "fail"}
CHECK_COLUMNS = [
    "capability", "rule", "base_value", "value", "delta", "ci_low", "ci_high", "p_adjusted",
    "significant", "mde", "evidence", "test", "outcome", "reason",
]  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """One capability's limits; gains and drops are in points (0.01 of a score)."""

    capability: str
    min_gain: float | None = None
    max_drop: float | None = None
    or_not_significant: bool = False
    not_significantly_worse: bool = False


RULE_KEYS = tuple(f.name for f in fields(Rule) if f.name != "capability")
SETTING_KEYS = ("alpha", "correction")


@dataclass(frozen=True)
class Budget:
    rules: tuple[Rule, ...]
    alpha: float = 0.05
    correction: str = "holm"
    source: str = ""


@dataclass
class Verdict:
    """The outcome for one model: status, human reasons, and one row per checked rule.

    The rows are kept as plain records and become a frame only when read: a Compare page
    judges hundreds of models but shows the checks of few, and a frame costs ~2 ms each.
    """

    status: str
    reasons: list[str]
    check_records: list[dict[str, Any]]
    model_id: str = ""
    base_model_id: str | None = None
    mismatches: list[str] = field(default_factory=list)
    budget: Budget | None = None

    @cached_property
    def checks(self) -> pd.DataFrame:
        """One row per checked rule, signed as every page shows it (failure rates: + = worse)."""
        return oriented(pd.DataFrame(self.check_records, columns=CHECK_COLUMNS))


# ---------------------------------------------------------------- loading


def default_budget_path() -> Path:
    """``FORGETWATCH_BUDGET`` if set, else the bundled example budget."""
    chosen = settings.get("budget")
    if chosen:
        return Path(chosen)
    return bundled_budget_path()


def bundled_budget_path() -> Path:
    """The example budget that ships with forgetwatch (used when none is configured)."""
    return Path(str(resources.files("forgetwatch").joinpath("budgets", "default.yaml")))


def _bad(path: Path, key: str, problem: str, next_step: str) -> BadInputError:
    return BadInputError(f"{path.name}: `{key}` {problem}", next_step, where=str(path))


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    hint = f"Did you mean `{close[0]}`? " if close else ""
    return f"{hint}Allowed: {', '.join(choices)}."


def _number(path: Path, key: str, value: Any, *, low: float, high: float | None = None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (high is not None and value >= high):
        span = f">= {low}" if high is None else f"in [{low}, {high})"
        raise _bad(path, key, f"must be a number {span}, got {value!r}", f"Set `{key}: <number>`.")
    return float(value)


def _rule(path: Path, capability: str, spec: Any) -> Rule:
    if not isinstance(spec, dict) or not spec:
        raise _bad(
            path, capability, "must be a mapping of rules",
            f"Write e.g. `{capability}: {{max_drop: 1}}`; rules: {', '.join(RULE_KEYS)}.",
        )  # fmt: skip
    values: dict[str, Any] = {}
    for key, value in spec.items():
        where = f"{capability}.{key}"
        if key not in RULE_KEYS:
            raise _bad(path, where, "is not a budget rule", _did_you_mean(str(key), RULE_KEYS))
        if key in ("min_gain", "max_drop"):
            values[key] = _number(path, where, value, low=0.0 if key == "max_drop" else -100.0)
        elif not isinstance(value, bool):
            raise _bad(path, where, f"must be true or false, got {value!r}", f"Set `{key}: true`.")
        else:
            values[key] = value
    if values.get("or_not_significant") and "max_drop" not in values:
        raise _bad(
            path, f"{capability}.or_not_significant", "needs a max_drop to relax",
            f"Add `max_drop: N` to `{capability}`, or remove or_not_significant.",
        )  # fmt: skip
    rule = Rule(capability, **values)
    if rule.min_gain is None and rule.max_drop is None and not rule.not_significantly_worse:
        raise _bad(
            path, capability, "has no limit to check",
            "Give it min_gain, max_drop or not_significantly_worse: true.",
        )  # fmt: skip
    return rule


def load_budget(path: str | Path) -> Budget:
    """Read and validate a budget YAML; errors name the file, the key and the fix."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BadInputError(
            f"Cannot read the budget file {path}: {exc.strerror or exc}",
            "Pass an existing YAML file with --budget, or unset FORGETWATCH_BUDGET.",
            where=str(path),
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise _bad(
            path, "<file>", f"is not valid YAML{line}", "Fix the YAML syntax (see the example "
            "forgetwatch/budgets/default.yaml)."
        ) from exc  # fmt: skip
    if not isinstance(data, dict) or not data:
        raise _bad(
            path, "<file>", "must be a mapping of capabilities to rules",
            "Start from forgetwatch/budgets/default.yaml.",
        )  # fmt: skip
    allowed = (*CAPABILITY_ORDER, *SETTING_KEYS)
    rules = []
    for key, spec in data.items():
        if key not in allowed:
            raise _bad(path, str(key), "is not a capability or budget setting",
                       _did_you_mean(str(key), allowed))  # fmt: skip
        if key not in SETTING_KEYS:
            rules.append(_rule(path, key, spec))
    if not rules:
        raise _bad(path, "<file>", "has no rules", "Add at least one capability rule.")
    correction = data.get("correction", "holm")
    if correction not in stats.CORRECTIONS:
        raise _bad(
            path, "correction", f"must be one of {', '.join(stats.CORRECTIONS)}, got "
            f"{correction!r}", _did_you_mean(str(correction), tuple(stats.CORRECTIONS)),
        )  # fmt: skip
    alpha = _number(path, "alpha", data.get("alpha", 0.05), low=1e-12, high=1.0)
    return Budget(tuple(rules), alpha=alpha, correction=correction, source=str(path))


# ---------------------------------------------------------------- checking


def to_points(value: Any) -> float | None:
    """A fraction as points (× 100); None for a missing value."""
    return None if value is None or pd.isna(value) else float(value) * 100


def _fmt(points: float | None) -> str:
    if points is None:
        return "n/a"
    text = f"{points:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _evidence_text(row: Mapping[str, Any], capability: str) -> str:
    """The CI and p as the reader sees the change (a failure rate's CI turned round)."""
    low, high = to_points(row["ci_low"]), to_points(row["ci_high"])
    if change_sign(capability) < 0:
        low, high = (None if high is None else -high), (None if low is None else -low)
    ci = f"95% CI {_fmt(low)} to {_fmt(high)}"
    p = p_text(row["p_adjusted"], "p_adj") or "untested"
    weaker = "; stderr-based, unpaired" if row["evidence"] == "stderr" else ""
    return f"{ci}, {p}{weaker}"


def _rule_texts(rule: Rule) -> list[tuple[str, str]]:
    """(kind, label) per limit of ``rule``: one check each."""
    out = []
    if rule.min_gain is not None:
        out.append(("min_gain", f"gain ≥ {rule.min_gain:g} pts"))
    if rule.max_drop is not None:
        suffix = " or not significant" if rule.or_not_significant else ""
        out.append(("max_drop", f"drop ≤ {rule.max_drop:g} pts{suffix}"))
    if rule.not_significantly_worse:
        out.append(("not_worse", "not significantly worse"))
    return out


def _check(rule: Rule, kind: str, row: Mapping[str, Any] | None) -> tuple[str, str]:
    """(outcome, reason sentence) of one limit against one capability row.

    Outcomes read the score delta (higher is better); sentences show the change as
    every page does (``direction``): a hallucination rise reads "+12.0, + = worse".
    """
    cap = rule.capability
    if row is None or pd.isna(row["delta"]):
        return "review", (
            f"{cap}: no delta to check — the model or its base has no {cap} evals; "
            "evaluate both on the suite."
        )
    d = to_points(row["delta"])
    assert d is not None
    shown = f"{_fmt(change_sign(cap) * d)} points" + (
        f" ({change_label(cap)})" if change_sign(cap) < 0 else ""
    )
    if row["evidence"] == "none":
        return "review", (
            f"{cap}: changed {shown} but the change cannot be tested (no per-sample "
            "results and no stderr); re-run lm-eval with --log_samples."
        )
    sig = bool(row["significant"])
    evidence = _evidence_text(row, cap)
    if kind == "min_gain":
        need = rule.min_gain or 0.0
        high = to_points(row["ci_high"])
        moved = f"gained {d:.1f} points" if d >= 0 else f"lost {-d:.1f} points"
        if d >= need and sig:
            return "met", f"{cap}: {moved} ({evidence}), at least {need:g} needed."
        if d >= need:
            return "review", (
                f"{cap}: {moved} ({evidence}), but the gain is not "
                f"significant at alpha; it may be noise."
            )
        if high is not None and high < need:
            return "fail", (
                f"{cap}: {moved} ({evidence}), clearly short of the {need:g}-point gain required."
            )
        return "review", (
            f"{cap}: {moved} ({evidence}), below the {need:g} required, but "
            "the CI still reaches it."
        )
    worse = "dropped" if change_sign(cap) > 0 else "rose"
    if kind == "max_drop":
        limit = rule.max_drop or 0.0
        if d >= -limit:
            allowance = f"within the {limit:g}-point allowance"
            return "met", f"{cap}: changed {shown} ({evidence}), {allowance}."
        if sig:
            return "fail", (
                f"{cap}: {worse} {-d:.1f} points ({evidence}), more than the {limit:g} "
                "allowed, and significant."
            )
        if rule.or_not_significant:
            return "met", (
                f"{cap}: {worse} {-d:.1f} points ({evidence}), more than {limit:g}, but not "
                "significantly; allowed by or_not_significant."
            )
        return "review", (
            f"{cap}: {worse} {-d:.1f} points ({evidence}), more than the {limit:g} allowed, "
            "but not significantly; check with more samples."
        )
    if d < 0 and sig:
        return "fail", f"{cap}: significantly worse, {shown} ({evidence})."
    return "met", f"{cap}: not significantly worse ({shown}, {evidence})."


def _limit_at(rule: Rule, kind: str) -> float | None:
    """Where a limit sits on the score delta (points, + = better); None: it names no size.

    ``not_significantly_worse`` names no size, so no eval is too small for it.
    """
    if kind == "max_drop":
        return -(rule.max_drop or 0.0)
    if kind == "min_gain":
        return rule.min_gain or 0.0
    return None


def _too_thin(rule: Rule, kind: str, row: Mapping[str, Any]) -> str | None:
    """The inconclusive sentence when a met limit lies within the eval's MDE, else None.

    Inconclusive: the minimum detectable effect is larger than the distance from the
    observed delta to the limit, so a violation could have gone unseen. The CI is not
    asked: with few or no flips a paired bootstrap CI collapses towards the observed
    delta (no flips: exactly 0 to 0), which is the very case the MDE's floor is for.
    ``or_not_significant`` meets a drop beyond the limit only for lack of
    significance; its distance is negative, so such a drop is inconclusive (the eval
    cannot tell) rather than a pass, and never better than a smaller drop.
    """
    mde, d = to_points(row.get("mde")), to_points(row["delta"])
    limit_at = _limit_at(rule, kind)
    if mde is None or d is None or limit_at is None or mde <= d - limit_at:
        return None
    cap = rule.capability
    moves = ("drops" if change_sign(cap) > 0 else "rises") if kind == "max_drop" else "changes"
    limit = (
        f"the {rule.max_drop:g}-point limit holds"
        if kind == "max_drop"
        else f"the gain reaches the {rule.min_gain:g} points required"
    )
    shown = f"{_fmt(change_sign(cap) * d)} points" + (
        f" ({change_label(cap)})" if change_sign(cap) < 0 else ""
    )
    beyond = (
        f", more than the {rule.max_drop:g} allowed but not significantly," if d < limit_at else ""
    )
    return (
        f"{cap}: {shown}{beyond or ','} but this eval detects only {moves} of {mde:.1f} or more "
        f"({_evidence_text(row, cap)}); too few items to tell whether {limit}. "
        "Evaluate more items."
    )


def _judged(rule: Rule, kind: str, row: Mapping[str, Any] | None) -> tuple[str, str]:
    """``_check``, then a met limit the eval is too small to vouch for becomes inconclusive."""
    outcome, reason = _check(rule, kind, row)
    if outcome == "met" and row is not None:
        thin = _too_thin(rule, kind, row)
        if thin is not None:
            return "inconclusive", thin
    return outcome, reason


def _verdict(
    model_id: str, caps: list[dict[str, Any]], budget: Budget, mismatches: list[str]
) -> Verdict:
    # Plain dicts and Python sorts: pandas per-row work cost ~8 ms a model, seconds for the
    # hundreds of models a Compare page or a budget change judges at once.
    by_cap = {row["capability"]: row for row in caps}
    records = []
    ruled = {rule.capability for rule in budget.rules}
    for rule in budget.rules:
        row = by_cap.get(rule.capability)
        for kind, label in _rule_texts(rule):
            outcome, reason = _judged(rule, kind, row)
            records.append(_check_record(rule.capability, label, row, outcome, reason))
    for capability, row in by_cap.items():
        if capability not in ruled:
            records.append(_check_record(capability, "", row, "not checked", ""))
    rank = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    records.sort(key=lambda r: rank.get(r["capability"], len(rank)))  # stable
    severity = {status: i for i, status in enumerate(STATUSES)}
    found = [OUTCOME_STATUS[r["outcome"]] for r in records if r["outcome"] in OUTCOME_STATUS]
    status = max(found, key=severity.__getitem__, default="pass")
    order = {"fail": 0, "review": 1, "inconclusive": 2, "met": 3}
    ranked = sorted(
        (r for r in records if r["outcome"] in order), key=lambda r: order[r["outcome"]]
    )
    reasons = [r["reason"] for r in ranked]
    base = caps[0]["base_model_id"] if caps else None
    return Verdict(status, reasons, records, model_id, base, mismatches, budget)


def _check_record(
    capability: str, rule: str, row: Mapping[str, Any] | None, outcome: str, reason: str
) -> dict[str, Any]:
    get = (lambda c: None) if row is None else (lambda c: row[c])
    return {
        "capability": capability, "rule": rule, "base_value": get("base_value"),
        "value": get("value"), "delta": get("delta"), "ci_low": get("ci_low"),
        "ci_high": get("ci_high"), "p_adjusted": get("p_adjusted"),
        "significant": get("significant"), "mde": get("mde"),
        "evidence": get("evidence") or "none", "test": get("test"), "outcome": outcome,
        "reason": reason,
    }  # fmt: skip


def verdicts(con: Con, model_ids: list[str], budget: Budget) -> dict[str, Verdict]:
    """The verdict for each model, from one capability query for all of them."""
    caps = paired_capability_deltas(
        con, list(model_ids), correction=budget.correction, alpha=budget.alpha
    )
    mismatch = mismatch_by_task(settings_mismatches(con, list(model_ids)))
    texts: dict[str, list[str]] = {}
    for r in mismatch.itertuples():
        texts.setdefault(str(r.model_id), []).append(f"{r.task}: {r.settings_mismatch}")
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in caps.to_dict("records"):  # one conversion for all models, grouped in Python
        by_model.setdefault(str(row["model_id"]), []).append(row)
    return {
        model_id: _verdict(model_id, by_model.get(model_id, []), budget, texts.get(model_id, []))
        for model_id in model_ids
    }


def evaluate(con: Con, model_id: str, budget: Budget) -> Verdict:
    """The verdict for one model against ``budget``."""
    return verdicts(con, [model_id], budget)[model_id]
