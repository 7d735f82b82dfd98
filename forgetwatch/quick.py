"""The quick check's statistics: which items to run, how to weight them, when to stop.

Pure functions over arrays (no database, no lm-eval), so the live job
(``forgetwatch.evals.quick_job``) and the replay benchmark (``bench/bench_quick.py``)
choose the same items with the same code.

**Item choice.** Each of a task's items gets a size score from what the base's
stored per-sample results say: items whose top two choices were close (a small
loglikelihood margin; for a continuous metric, a value near its 0.5 threshold)
flip most often and get larger scores; items without a margin (generation tasks)
get the average. A uniform share (``UNIFORM_SHARE``) is mixed in, so every item
keeps an inclusion probability of at least ``UNIFORM_SHARE * fraction``.
Selection is *sequential Poisson sampling*: item i draws one uniform ``u_i`` (a
fixed seed) and is in the sample at look k when ``u_i < pi_ik = min(1, f_k * s_i)``.
The fractions ``f_k`` grow, so each look's sample contains the last one and only
new items are run; the last look is the whole task (``pi = 1``).

**Estimation.** A task's delta is the Horvitz-Thompson mean of the paired
differences ``d_i = model_i - base_i`` (``sum(d_i / pi_i) / N``), unbiased for the
full-suite delta whatever the scores. Its design variance is the Poisson-sampling
estimator ``sum((1 - pi_i) d_i^2 / pi_i^2) / N^2`` plus a floor of two unseen
discordant items at the mean unsampled inclusion probability: without it, a
sample that happens to hold no flip would claim certainty. A capability's delta
is the mean of its tasks' deltas (independent draws per task, so variances add).
"Significant" needs the item-population variance too (the full suite's paired
test treats items as a sample): ``total`` adds ``(sum(d_i^2/pi_i)/N - delta^2)/N``.

**Stopping.** An *alpha-spending* design over a fixed schedule of looks with a
Bonferroni split: look k spends ``alpha * f_k / sum(f)`` and its CI has level
``1 - alpha_k``. The union bound makes the error rate under all looks together
at most ``alpha`` whatever the dependence between looks, which matters here:
the looks share items and the HT increments are neither independent nor
identically distributed, which an always-valid e-process (or the Brownian
approximation behind O'Brien-Fleming boundaries) would assume. With a handful of
looks the price of Bonferroni over exact spending boundaries is small.
A look stops a capability when its CI settles the budget rule either way
(``decide``); a capability still open at the last look is decided on every item,
that is, by the full suite's own verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

UNIFORM_SHARE = 0.3
LOOKS: tuple[float, ...] = (0.04, 0.07, 0.1, 0.15, 0.25, 0.4, 0.6)  # the last look: every item
DEFAULT_ALPHA = 0.05
RULE_KINDS = ("min_gain", "max_drop", "not_worse")


@dataclass(frozen=True)
class RuleCheck:
    """One budget limit in fractions (points / 100): what a capability's delta must meet."""

    capability: str
    kind: str  # min_gain / max_drop / not_worse
    limit: float = 0.0  # min_gain: the gain needed; max_drop: the drop allowed (>= 0)
    or_not_significant: bool = False


@dataclass
class TaskPlan:
    """One task's items, their size scores and draws; ``base`` = the base's value per item."""

    task: str
    doc_ids: np.ndarray
    base: np.ndarray
    scores: np.ndarray
    draws: np.ndarray
    higher_is_better: bool = True

    def inclusion(self, look: int, looks: Sequence[float] = LOOKS) -> np.ndarray:
        """Inclusion probabilities at ``look`` (0-based; ``len(looks)`` is the full look)."""
        if look >= len(looks):
            return np.ones(len(self.doc_ids))
        return np.minimum(1.0, looks[look] * self.scores)

    def chosen(self, look: int, looks: Sequence[float] = LOOKS) -> np.ndarray:
        """Boolean mask of the items in the sample at ``look`` (nested across looks)."""
        return self.draws < self.inclusion(look, looks)


def size_scores(margins: np.ndarray, uniform_share: float = UNIFORM_SHARE) -> np.ndarray:
    """Scores with mean 1: a uniform share plus a share that favours small margins.

    ``margins`` holds NaN where an item has none; those get the average weight.
    """
    m = np.asarray(margins, dtype=float)
    weight = np.ones(len(m))
    known = ~np.isnan(m)
    if known.any():
        scale = float(np.median(m[known])) or 1.0
        weight[known] = np.exp(-m[known] / scale)
        weight[~known] = float(weight[known].mean())
    weight = weight / weight.mean() if len(weight) else weight
    return uniform_share + (1 - uniform_share) * weight


def margin(resps: Sequence[Sequence[float]] | None, value: float | None) -> float:
    """How close an item was: the gap between its top two choice loglikelihoods.

    For an item without choices, a continuous value's distance from 0.5; else NaN.
    """
    lls = [float(r[0]) for r in resps or () if r]
    if len(lls) >= 2:
        top = sorted(lls, reverse=True)
        return top[0] - top[1]
    if value is not None and 0.0 < value < 1.0:
        return abs(value - 0.5)
    return math.nan


def plan_task(
    task: str,
    doc_ids: Sequence[int],
    base: Sequence[float],
    margins: Sequence[float],
    *,
    seed: int,
    higher_is_better: bool = True,
) -> TaskPlan:
    """A task's plan: scores from the margins, one seeded uniform draw per item."""
    rng = np.random.default_rng([seed, *task.encode()])
    return TaskPlan(
        task,
        np.asarray(doc_ids, dtype=int),
        np.asarray(base, dtype=float),
        size_scores(np.asarray(margins, dtype=float)),
        rng.random(len(doc_ids)),
        higher_is_better,
    )


@dataclass(frozen=True)
class Estimate:
    """A delta (fraction) with its design variance and its item-population variance."""

    delta: float
    var_design: float
    var_total: float
    n_used: int
    n_items: int


def estimate_task(d: np.ndarray, pi: np.ndarray, n_items: int, pi_unseen: float) -> Estimate:
    """Horvitz-Thompson delta of one task from the sampled differences ``d`` and their ``pi``."""
    if n_items == 0:
        return Estimate(math.nan, math.inf, math.inf, 0, 0)
    delta = float(np.sum(d / pi)) / n_items
    var = float(np.sum((1 - pi) * d**2 / pi**2)) / n_items**2
    if pi_unseen < 1.0:
        var += 2 * (1 - pi_unseen) / pi_unseen**2 / n_items**2
    spread = max(float(np.sum(d**2 / pi)) / n_items - delta**2, 0.0) / n_items
    return Estimate(delta, var, var + spread, len(d), n_items)


def combine(parts: Sequence[Estimate]) -> Estimate:
    """A capability's estimate: the mean of its tasks' (independently sampled) estimates."""
    t = len(parts)
    return Estimate(
        sum(p.delta for p in parts) / t,
        sum(p.var_design for p in parts) / t**2,
        sum(p.var_total for p in parts) / t**2,
        sum(p.n_used for p in parts),
        sum(p.n_items for p in parts),
    )


def spent_alpha(look: int, alpha: float = DEFAULT_ALPHA, looks: Sequence[float] = LOOKS) -> float:
    """The alpha look ``look`` spends: ``alpha * f_k / sum(f)`` (Bonferroni over the looks)."""
    return alpha * looks[look] / sum(looks)


def interval(est: Estimate, alpha_k: float, total: bool = False) -> tuple[float, float]:
    """Two-sided ``1 - alpha_k`` normal interval; ``total`` adds the item-population variance."""
    z = float(norm.ppf(1 - alpha_k / 2))
    half = z * math.sqrt(est.var_total if total else est.var_design)
    return est.delta - half, est.delta + half


def decide(rule: RuleCheck, est: Estimate, alpha_k: float) -> str | None:
    """'met' or 'fail' once the CI settles ``rule``; None while it could still go either way.

    'met' rests on the design CI (where the full-suite delta lies); 'fail' also needs
    the total CI beyond the limit, as the full suite's verdict needs significance.
    """
    lo_d, hi_d = interval(est, alpha_k)
    lo_t, hi_t = interval(est, alpha_k, total=True)
    if rule.kind == "min_gain":
        if lo_t >= rule.limit:
            return "met"
        return "fail" if hi_d < rule.limit else None
    if rule.kind == "max_drop":
        if lo_d >= -rule.limit:
            return "met"
        # Beyond the limit and significant fails with or without or_not_significant; a
        # drop that is merely not significant is left to the full suite.
        return "fail" if hi_t < -rule.limit and hi_t < 0 else None
    if lo_d >= 0:
        return "met"
    return "fail" if hi_t < 0 else None


def decide_all(rules: Sequence[RuleCheck], est: Estimate, alpha_k: float) -> str | None:
    """All of a capability's limits at once: 'fail' if one fails, 'met' if all are met."""
    if not rules:
        return "unruled"
    outcomes = [decide(r, est, alpha_k) for r in rules]
    if "fail" in outcomes:
        return "fail"
    return "met" if all(o == "met" for o in outcomes) else None


# ------------------------------------------------------------------ the procedure

# Evaluates the given items of each task; returns task -> {doc_id: value}.
Evaluate = Callable[[dict[str, list[int]]], Mapping[str, Mapping[int, float]]]


@dataclass
class CapabilityResult:
    capability: str
    outcome: str  # met / fail / full (decided on every item: the full suite's verdict)
    look: int  # the look that decided it (len(looks) = every item)
    delta: float
    ci_low: float
    ci_high: float
    n_used: int
    n_items: int


@dataclass
class QuickResult:
    capabilities: dict[str, CapabilityResult] = field(default_factory=dict)
    items: dict[str, list[int]] = field(default_factory=dict)  # task -> doc ids run
    values: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def fraction_used(self) -> float:
        used = sum(c.n_used for c in self.capabilities.values())
        total = sum(c.n_items for c in self.capabilities.values())
        return used / total if total else 0.0


def run_quick(
    plans: Mapping[str, Sequence[TaskPlan]],
    rules: Sequence[RuleCheck],
    evaluate: Evaluate,
    *,
    alpha: float = DEFAULT_ALPHA,
    looks: Sequence[float] = LOOKS,
) -> QuickResult:
    """Run looks until every capability (``plans``: capability -> its tasks) is settled.

    Each look evaluates only items not yet run. A capability without a rule is
    reported at the first look and never keeps the check running.
    """
    result = QuickResult()
    open_caps = dict(plans)
    rules_of: dict[str, list[RuleCheck]] = {}
    for r in rules:
        rules_of.setdefault(r.capability, []).append(r)
    for look in range(len(looks) + 1):
        if not open_caps:
            break
        wanted = {}
        for tasks in open_caps.values():
            for p in tasks:
                ids = p.doc_ids[p.chosen(look, looks)].tolist()
                new = [i for i in ids if i not in result.values.get(p.task, {})]
                if new:
                    wanted[p.task] = new
        if wanted:
            for task, vals in evaluate(wanted).items():
                result.values.setdefault(task, {}).update({int(k): v for k, v in vals.items()})
        for cap, tasks in list(open_caps.items()):
            est = combine([_task_estimate(p, result.values.get(p.task, {}), look, looks)
                           for p in tasks])  # fmt: skip
            last = look >= len(looks)
            alpha_k = 1.0 if last else spent_alpha(look, alpha, looks)
            outcome = "full" if last else decide_all(rules_of.get(cap, []), est, alpha_k)
            if outcome is None:
                continue
            lo, hi = (est.delta, est.delta) if last else interval(est, alpha_k)
            result.capabilities[cap] = CapabilityResult(
                cap, outcome, look, est.delta, lo, hi, est.n_used, est.n_items
            )
            del open_caps[cap]
    result.items = {t: sorted(v) for t, v in result.values.items()}
    return result


def _task_estimate(
    p: TaskPlan, values: Mapping[int, float], look: int, looks: Sequence[float]
) -> Estimate:
    mask = p.chosen(look, looks)
    pi = p.inclusion(look, looks)
    model = np.array([values[int(i)] for i in p.doc_ids[mask]], dtype=float)
    d = model - p.base[mask]
    if not p.higher_is_better:
        d = -d
    unseen = pi[~mask]
    pi_unseen = float(unseen.mean()) if len(unseen) else 1.0
    return estimate_task(d, pi[mask], len(p.doc_ids), pi_unseen)
