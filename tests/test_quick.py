"""The quick check's statistics: nested item choice, unbiased weights, error rate under looks.

The simulations are base-vs-base: the "model" is the base evaluated again with
harness noise (items whose top two choices were close flip, in both directions),
so every flip is noise and any "fail" or any CI that misses the full-suite delta
is a type-I error. Pure numpy, no model: a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from forgetwatch import quick

N_ITEMS = 240


def _base_vs_base(rng: np.random.Generator, flip_scale: float = 0.15):
    """A base's outcomes and margins, and a noisy repeat of it (flips where margins are small)."""
    margins = rng.exponential(1.0, N_ITEMS)
    base = (rng.random(N_ITEMS) < 0.6).astype(float)
    # Noise has no direction: right->wrong and wrong->right are equally likely in all
    # (a right item flips with odds scaled by 0.4 / 0.6), so the repeat's expected score is
    # the base's.
    odds = np.where(base == 1, 0.4 / 0.6, 1.0)
    flip = rng.random(N_ITEMS) < flip_scale * odds * np.exp(-margins / 0.3)
    repeat = np.where(flip, 1 - base, base)
    return base, margins, repeat


def _capability(seed: int, base, margins, tasks: int = 2):
    return {
        "knowledge": [
            quick.plan_task(f"t{j}", range(N_ITEMS), base, margins, seed=seed) for j in range(tasks)
        ]
    }


def _two_tasks(seed: int, rng: np.random.Generator, flip_scale: float):
    """A capability of two tasks, each with its own base-vs-base data (independent items)."""
    plans, values = [], {}
    for j in range(2):
        base, margins, repeat = _base_vs_base(rng, flip_scale)
        plans.append(quick.plan_task(f"t{j}", range(N_ITEMS), base, margins, seed=seed))
        values[f"t{j}"] = repeat
    truth = float(np.mean([(values[p.task] - p.base).mean() for p in plans]))
    return {"knowledge": plans}, values, truth


def _evaluate(values: dict[str, np.ndarray]):
    def run(wanted):
        return {t: {i: float(values[t][i]) for i in ids} for t, ids in wanted.items()}

    return run


def test_looks_are_nested_and_end_with_every_item() -> None:
    rng = np.random.default_rng(0)
    base, margins, _ = _base_vs_base(rng)
    plan = quick.plan_task("t", range(N_ITEMS), base, margins, seed=3)
    masks = [plan.chosen(k) for k in range(len(quick.LOOKS) + 1)]
    for earlier, later in zip(masks, masks[1:], strict=False):
        assert not (earlier & ~later).any()  # each look keeps the last one's items
    assert masks[-1].all()
    # Small margins are favoured, but every item keeps a chance.
    pi = plan.inclusion(0)
    assert pi.min() >= quick.UNIFORM_SHARE * quick.LOOKS[0] - 1e-12
    assert pi[np.argsort(margins)[:20]].mean() > pi[np.argsort(margins)[-20:]].mean()
    # The same seed chooses the same items: the live job and the bench agree.
    again = quick.plan_task("t", range(N_ITEMS), base, margins, seed=3)
    assert (again.chosen(2) == plan.chosen(2)).all()


def test_horvitz_thompson_is_unbiased_for_the_full_suite_delta() -> None:
    rng = np.random.default_rng(1)
    base, margins, _ = _base_vs_base(rng)
    model = base.copy()
    model[rng.choice(np.flatnonzero(base == 1), 30, replace=False)] = 0  # a real 12.5-point drop
    truth = float((model - base).mean())
    estimates = []
    for seed in range(2000):
        p = quick.plan_task("t", range(N_ITEMS), base, margins, seed=seed)
        mask, pi = p.chosen(1), p.inclusion(1)
        estimates.append(quick.estimate_task((model - base)[mask], pi[mask], N_ITEMS, 0.5).delta)
    se = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - truth) < 4 * se


@pytest.mark.parametrize("flip_scale", [0.1, 0.4])
def test_type_one_error_under_repeated_looks_stays_below_alpha(flip_scale: float) -> None:
    """Base vs base: the sequential CIs miss the full-suite delta, or fail, at most alpha."""
    alpha, trials = 0.05, 400
    rules = [
        quick.RuleCheck("knowledge", "not_worse"),
        quick.RuleCheck("knowledge", "max_drop", 0.01),
    ]
    missed = failed = 0
    rng = np.random.default_rng(7)
    for seed in range(trials):
        plans, values, truth = _two_tasks(seed, rng, flip_scale)
        res = quick.run_quick(plans, rules, _evaluate(values), alpha=alpha)
        cap = res.capabilities["knowledge"]
        failed += cap.outcome == "fail"
        # Every early look's CI (not only the deciding one) must cover the truth.
        for look in range(cap.look if cap.outcome != "full" else len(quick.LOOKS)):
            parts = [quick._task_estimate(p, res.values[p.task], look, quick.LOOKS)
                     for p in plans["knowledge"]]  # fmt: skip
            lo, hi = quick.interval(quick.combine(parts), quick.spent_alpha(look, alpha))
            if not lo <= truth <= hi:
                missed += 1
                break
    assert failed / trials <= alpha
    assert missed / trials <= alpha


def test_a_large_drop_stops_early_with_few_items() -> None:
    rng = np.random.default_rng(2)
    base, margins, _ = _base_vs_base(rng)
    collapsed = np.zeros(N_ITEMS)  # the capability is gone: a 60-point drop
    res = quick.run_quick(
        _capability(0, base, margins),
        [quick.RuleCheck("knowledge", "max_drop", 0.03)],
        _evaluate({"t0": collapsed, "t1": collapsed}),
    )
    cap = res.capabilities["knowledge"]
    assert cap.outcome == "fail" and cap.look < len(quick.LOOKS)
    assert res.fraction_used <= 0.15
    assert cap.ci_high < -0.03
