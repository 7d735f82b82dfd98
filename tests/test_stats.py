"""Known-answer tests of forgetwatch.stats against scipy, statsmodels, lm-eval and hand sums.

Each reference is computed independently in the test (scipy/statsmodels called
directly, or worked by hand), never through forgetwatch.stats itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from forgetwatch import stats

GROUP_OUTPUT = Path(__file__).parent / "fixtures" / "lm_eval_group" / "output"


def _discordant(base: list[int], model: list[int]) -> tuple[int, int]:
    """(right->wrong, wrong->right) counted the obvious way, as the reference."""
    b = sum(1 for x, y in zip(base, model, strict=True) if x == 1 and y == 0)
    c = sum(1 for x, y in zip(base, model, strict=True) if x == 0 and y == 1)
    return b, c


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 5, 0.0625),  # 2 * (1/2)^5
        (5, 0, 0.0625),
        (0, 0, 1.0),  # no discordant pair: no evidence of change
        (1, 1, 1.0),
        (0, 1, 1.0),
        (2, 8, 0.109375),  # 2 * (1 + 10 + 45) / 1024
    ],
)
def test_mcnemar_exact_hand_checked(b: int, c: int, expected: float) -> None:
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, abs=1e-12)


def test_mcnemar_matches_scipy_and_statsmodels_on_constructed_samples() -> None:
    rng = np.random.default_rng(7)
    for _ in range(25):
        n = int(rng.integers(5, 400))
        base = rng.integers(0, 2, n).tolist()
        model = [x if rng.random() < 0.8 else 1 - x for x in base]
        b, c = _discordant(base, model)
        reference = sps.binomtest(c, b + c, 0.5).pvalue if b + c else 1.0
        table = [[0, b], [c, 0]]
        assert stats.mcnemar_exact(b, c) == pytest.approx(reference, abs=1e-9)
        assert stats.mcnemar_exact(b, c) == pytest.approx(
            mcnemar(table, exact=True).pvalue, abs=1e-9
        )


def test_binary_differences_rebuild_the_paired_sample() -> None:
    base = [1, 1, 1, 0, 0, 1, 0, 1]
    model = [0, 1, 1, 1, 0, 0, 0, 1]
    b, c = _discordant(base, model)
    rebuilt = stats.binary_differences(len(base), b, c)
    assert sorted(rebuilt) == sorted(np.subtract(model, base))
    assert rebuilt.mean() == pytest.approx(np.mean(model) - np.mean(base))


def test_bootstrap_is_deterministic_with_the_fixed_seed() -> None:
    diffs = np.random.default_rng(3).normal(0.02, 0.3, 300)
    first = stats.paired_bootstrap([diffs], seed_value=11, n_resamples=2000)
    again = stats.paired_bootstrap([diffs], seed_value=11, n_resamples=2000)
    other = stats.paired_bootstrap([diffs], seed_value=12, n_resamples=2000)
    assert first == again
    assert first != other


def test_bootstrap_ci_matches_scipy_called_directly() -> None:
    diffs = np.random.default_rng(5).normal(-0.05, 0.2, 250)
    low, high, _ = stats.paired_bootstrap([diffs], seed_value=42, n_resamples=3000)
    reference = sps.bootstrap(
        (diffs,), np.mean, n_resamples=3000, method="percentile",
        rng=np.random.default_rng(42),
    ).confidence_interval  # fmt: skip
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=1e-12)
    assert low < diffs.mean() < high


def test_few_valued_strata_bootstrap_like_scipy() -> None:
    """0/1 pairs are resampled as one multinomial draw: same distribution as resampling docs."""
    diffs = stats.binary_differences(300, 40, 15)
    low, high, _ = stats.paired_bootstrap([diffs], seed_value=8, n_resamples=4999)
    reference = sps.bootstrap(
        (diffs,), np.mean, n_resamples=4999, method="percentile",
        rng=np.random.default_rng(8),
    ).confidence_interval  # fmt: skip
    # Different random draws of the same distribution: Monte Carlo error only.
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=0.006)


def test_bootstrap_p_value_reads_the_same_distribution() -> None:
    shifted = np.random.default_rng(1).normal(0.3, 0.2, 200)  # clearly above zero
    centred = shifted - shifted.mean()  # exactly zero mean
    _, _, p_shifted = stats.paired_bootstrap([shifted], seed_value=1, n_resamples=1999)
    _, _, p_centred = stats.paired_bootstrap([centred], seed_value=1, n_resamples=1999)
    assert p_shifted == pytest.approx(2 / 2000)  # the smallest p 1999 resamples can give
    assert p_centred > 0.5


def test_constant_differences_need_no_resampling() -> None:
    assert stats.paired_bootstrap([np.zeros(50)]) == (0.0, 0.0, 1.0)
    # Ten docs that all moved the same way: the exact sign test's 2 * 0.5**10, never 0.
    assert stats.paired_bootstrap([np.full(10, 0.25)]) == (0.25, 0.25, 2 * 0.5**10)


def test_stratified_bootstrap_targets_the_mean_of_task_means() -> None:
    big = stats.binary_differences(1000, 100, 0)  # delta -0.10 over 1000 docs
    small = stats.binary_differences(10, 0, 5)  # delta +0.50 over 10 docs
    low, high, _ = stats.paired_bootstrap([big, small], seed_value=0, n_resamples=2000)
    # Unweighted mean of task deltas = (-0.10 + 0.50) / 2 = 0.20; a pooled mean would be
    # (-100 + 5) / 1010 = -0.094, outside this interval.
    assert low < 0.20 < high
    assert low > -0.094


def test_stderr_test_is_a_z_test() -> None:
    se = stats.difference_stderr(0.03, 0.04)
    assert se == pytest.approx(0.05)
    result = stats.stderr_test(-0.1, se)
    assert result.evidence == "stderr" and result.test == "stderr-z"
    assert result.p_value == pytest.approx(2 * sps.norm.sf(2.0), abs=1e-12)
    half = 1.959964 * 0.05
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.1 - half, -0.1 + half), abs=1e-6)
    assert stats.difference_stderr(None, 0.04) is None
    assert stats.stderr_test(-0.1, None) == stats.NO_EVIDENCE


def test_holm_and_bh_match_statsmodels_and_hand_sums() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm by hand: sorted .005 .01 .03 .04 times 4, 3, 2, 1 -> .02 .03 .06 .06 (monotone).
    assert stats.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH by hand: p * 4 / rank -> .02 .04 .04 .04 (monotone from the top).
    assert stats.adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    rng = np.random.default_rng(9)
    many = rng.uniform(0, 0.2, 40)
    for method, name in (("holm", "holm"), ("bh", "fdr_bh")):
        assert stats.adjust(list(many), method) == pytest.approx(
            list(multipletests(many, method=name)[1]), abs=1e-12
        )


def test_adjust_skips_untested_rows() -> None:
    assert stats.adjust([0.01, None, float("nan"), 0.02], "holm") == pytest.approx(
        [0.02, None, None, 0.02]
    )
    with pytest.raises(ValueError, match="unknown correction"):
        stats.adjust([0.1], "bonferroni")


def test_group_score_matches_lm_eval_functions() -> None:
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr

    values, sizes, stderrs = [0.61, 0.32, 0.9], [100, 37, 12], [0.049, 0.077, 0.087]
    score, stderr = stats.group_score(values, sizes, stderrs)
    assert score == pytest.approx(aggregate_subtask_metrics(values, sizes), abs=1e-12)
    assert stderr == pytest.approx(pooled_sample_stderr(stderrs, sizes), abs=1e-12)
    assert stats.group_score(values, sizes, [0.049, None, 0.087])[1] is None  # lm-eval: "N/A"


@pytest.mark.parametrize("model", ["base", "finetune"])
def test_group_score_reproduces_lm_evals_own_group_numbers(model: str) -> None:
    """lm-eval's results for a 2-subtask group (tests/fixtures/lm_eval_group)."""
    (path,) = (GROUP_OUTPUT / model).glob("results_*.json")
    results = json.loads(path.read_text())
    subtasks = results["group_subtasks"]["fwg_group"]
    rows = [results["results"][t] for t in subtasks]
    score, stderr = stats.group_score(
        [r["acc,none"] for r in rows],
        [r["sample_len"] for r in rows],
        [r["acc_stderr,none"] for r in rows],
    )
    group = results["groups"]["fwg_group"]
    assert len({r["sample_len"] for r in rows}) == 2  # unequal sizes: weighting matters
    assert score == pytest.approx(group["acc,none"], abs=1e-12)
    assert stderr == pytest.approx(group["acc_stderr,none"], abs=1e-12)


def test_within_noise_row_and_frame() -> None:
    frame = pd.DataFrame({"significant": [True, False, None]})
    assert list(stats.within_noise(frame)) == [False, True, True]
    assert stats.within_noise({"significant": True}) is False
    assert stats.within_noise({"significant": False}) is True
    assert stats.within_noise({"evidence": "none"}) is True


# ---------------------------------------------------------------- collapsed bootstraps

Z_90 = float(sps.norm.ppf(0.95))


def test_tango_interval_matches_r_propcis_scoreci_mp() -> None:
    # R's PropCIs::scoreci.mp(x, y, n) is Tango (1998) for (y - x) / n, so x = right -> wrong
    # and y = wrong -> right: scoreci.mp(25, 28, 618, conf.level = 0.90) = [-0.0148, 0.0247]
    # and scoreci.mp(7, 1, 21) = [-0.517, -0.026].
    low, high = stats.tango_interval(618, 25, 28, z=Z_90)
    assert (round(low, 4), round(high, 4)) == (-0.0148, 0.0247)
    low, high = stats.tango_interval(21, 7, 1)
    assert (round(low, 3), round(high, 3)) == (-0.517, -0.026)


def test_tango_statistic_at_zero_is_mcnemars() -> None:
    for n, b, c in ((50, 7, 2), (120, 3, 11), (9, 4, 4)):
        table = [[n - b - c, b], [c, 0]]  # only the discordant cells matter
        chi2 = mcnemar(table, exact=False, correction=False).statistic
        assert stats._tango_z(0.0, n, c, b) ** 2 == pytest.approx(chi2)


def test_tango_limits_where_every_pair_agrees_or_flipped() -> None:
    z2 = stats.Z_95**2
    for n in (1, 5, 50, 1000):
        # No flip at all: ±z²/(n + z²) (7.1 points at n = 50), never a zero width.
        half = z2 / (n + z2)
        assert stats.tango_interval(n, 0, 0) == pytest.approx((-half, half), abs=1e-9)
        # Every pair right -> wrong: [-1, -(n - z²)/(n + z²)], above 0 while n < z².
        assert stats.tango_interval(n, n, 0) == pytest.approx((-1, -(n - z2) / (n + z2)))
        assert stats.tango_interval(n, 0, n) == pytest.approx(((n - z2) / (n + z2), 1))


def test_tango_interval_covers_about_95_percent() -> None:
    rng = np.random.default_rng(3)
    n, down, up = 40, 0.15, 0.05  # true difference -0.10
    hits = 0
    for cells in rng.multinomial(n, [down, up, 1 - down - up], size=400):
        low, high = stats.tango_interval(n, int(cells[0]), int(cells[1]))
        hits += low <= up - down <= high
    assert 0.92 <= hits / 400 <= 0.99


def test_collapsed_binary_samples_get_a_score_interval_and_an_exact_p() -> None:
    for n, b, c in ((3, 3, 0), (5, 0, 5), (50, 0, 0), (1, 0, 0)):
        result = stats.paired_binary(n, b, c)
        point = (c - b) / n
        assert result.ci_low < result.ci_high, "a collapsed bootstrap must not show [d, d]"
        assert result.ci_low <= point <= result.ci_high
        assert (result.ci_low, result.ci_high) == stats.tango_interval(n, b, c)
        expected = 1.0 if b + c == 0 else sps.binomtest(c, b + c, 0.5).pvalue
        assert result.p_value == pytest.approx(expected)
    # Three docs all right -> wrong: p = 2 * 0.5**3 and a CI that reaches past 0.
    three = stats.paired_binary(3, 3, 0)
    assert three.p_value == pytest.approx(0.25) and three.ci_high > 0
    # A sample that does not collapse keeps the bootstrap.
    varied = stats.paired_binary(100, 12, 8)
    diffs = stats.binary_differences(100, 12, 8)
    assert (varied.ci_low, varied.ci_high) == stats.paired_bootstrap([diffs])[:2]


def test_mover_mean_interval() -> None:
    assert stats.mover_mean_interval([0.2], [0.1], [0.5]) == pytest.approx((0.1, 0.5))
    # Symmetric normal intervals: exactly mean ± z·√(Σ seᵢ²)/k.
    d, se = np.array([-0.1, 0.3, 0.05]), np.array([0.02, 0.05, 0.04])
    z = stats.Z_95
    low, high = stats.mover_mean_interval(d, d - z * se, d + z * se)
    half = z * np.sqrt(np.sum(se**2)) / 3
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_sign_test_is_the_exact_binomial_test() -> None:
    strata = [np.array([-1.0, -1.0, 0.0]), np.array([0.3, -0.2, -0.4, -0.1])]
    assert stats.sign_test(strata) == pytest.approx(sps.binomtest(1, 6, 0.5).pvalue)
    assert stats.sign_test([np.zeros(4)]) == 1.0


def test_zero_stderrs_give_no_test() -> None:
    # Both evals constant (a score of 0 and one of 1): no size, so no "p = 0, CI [d, d]".
    assert stats.stderr_test(-1.0, 0.0) == stats.NO_EVIDENCE
    assert stats.stderr_test(0.0, 0.0) == stats.NO_EVIDENCE
