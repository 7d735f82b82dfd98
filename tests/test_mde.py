"""Known-answer tests of the minimum detectable effect against statsmodels' power functions.

The reference is statsmodels itself: the power of each test *at* the MDE that
forgetwatch.stats reports must be 80%. For McNemar that is Connor's normal
approximation (``normal_power_het`` with std_null = √ψ, std_alternative = √(ψ - δ²));
for continuous differences the paired t test (``TTestPower``).
"""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower, normal_power_het

from forgetwatch import stats


def _connor_power(delta: float, n: int, discordance: float, alpha: float) -> float:
    """statsmodels' power of the paired-proportions z test at a true change ``delta``."""
    return float(
        normal_power_het(
            delta,
            n,
            alpha,
            std_null=np.sqrt(discordance),
            std_alternative=np.sqrt(discordance - delta**2),
        )
    )


@pytest.mark.parametrize(
    ("n", "flips", "alpha"),
    [(100, 20, 0.05), (1000, 70, 0.05), (164, 25, 0.01), (50, 20, 0.05 / 5), (14042, 900, 0.01)],
)
def test_mcnemar_mde_has_80_percent_power_in_statsmodels(n: int, flips: int, alpha: float) -> None:
    psi = flips / n
    mde = float(stats.mcnemar_mde(n, psi, alpha))
    assert 0 < mde < 1
    assert _connor_power(mde, n, psi, alpha) == pytest.approx(0.80, abs=1e-3)
    # A change 20% smaller than the MDE is seen markedly less often.
    assert _connor_power(0.8 * mde, n, psi, alpha) < 0.7


def test_mde_shrinks_with_items_and_grows_with_discordance_and_stricter_alpha() -> None:
    small, large = stats.mcnemar_mde([100, 400], [0.2, 0.2], 0.05)
    assert large == pytest.approx(small / 2, rel=0.1)  # ~ 1 / sqrt(n)
    calm, noisy = stats.mcnemar_mde([400, 400], [0.05, 0.3], 0.05)
    assert calm < noisy
    assert stats.mcnemar_mde(400, 0.2, 0.01) > stats.mcnemar_mde(400, 0.2, 0.05)


@pytest.mark.parametrize(("n", "alpha"), [(20, 0.05), (100, 0.05), (100, 0.01), (1000, 0.002)])
def test_zero_discordance_gets_the_one_way_floor_never_zero(n: int, alpha: float) -> None:
    """No flips at all: the MDE is the change that n items show when every flip goes one
    way (discordance = the change itself), with 80% power in statsmodels."""
    mde = float(stats.mcnemar_mde(n, 0.0, alpha))
    assert mde == pytest.approx(float(stats.one_way_floor(n, alpha)))
    assert 0 < mde < 1
    assert _connor_power(mde, n, mde, alpha) == pytest.approx(0.80, abs=1e-3)
    # A discordance below the floor cannot shrink it: a change of δ moves δ·n items.
    assert float(stats.mcnemar_mde(n, mde / 3, alpha)) == pytest.approx(mde)


def test_too_few_items_detect_nothing() -> None:
    """Three items at alpha 0.05 cannot reach 80% power whatever happens: a full 100 points."""
    assert float(stats.mcnemar_mde(3, 0.0, 0.05)) == 1.0
    assert np.isnan(stats.one_way_floor(0, 0.05))


@pytest.mark.parametrize(
    ("n", "sd", "alpha"), [(100, 0.3, 0.05), (817, 0.15, 0.05), (400, 0.2, 0.01)]
)
def test_continuous_mde_has_80_percent_power_in_ttestpower(n: int, sd: float, alpha: float) -> None:
    mde = float(stats.mean_difference_mde(n, sd / np.sqrt(n), alpha))
    power = TTestPower().power(effect_size=mde / sd, nobs=n, alpha=alpha)
    assert power == pytest.approx(0.80, abs=2e-3)
    solved = TTestPower().solve_power(nobs=n, alpha=alpha, power=0.80) * sd
    assert mde == pytest.approx(solved, rel=2e-3)


def test_unpaired_mde_is_the_normal_formula_and_zero_stderr_says_nothing() -> None:
    se = 0.04
    mde = float(stats.unpaired_mde(se, 0.05))
    power = normal_power_het(mde, 1, 0.05, std_null=se)  # nobs 1: the se is the sd
    assert power == pytest.approx(0.80, abs=1e-3)
    assert np.isnan(stats.unpaired_mde(0.0, 0.05))


def test_minimum_detectable_effect_picks_the_formula_by_test() -> None:
    tests = [stats.TEST_MCNEMAR, stats.TEST_BOOTSTRAP, stats.TEST_STDERR, None]
    found = stats.minimum_detectable_effect(
        tests,
        n_pairs=[100, 400, 0, 0],
        right_to_wrong=[12, np.nan, np.nan, np.nan],
        wrong_to_right=[8, np.nan, np.nan, np.nan],
        se=[0.045, 0.01, 0.05, np.nan],
        alpha=[0.01, 0.01, 0.05, 0.05],
    )
    assert found[0] == pytest.approx(float(stats.mcnemar_mde(100, 0.2, 0.01)))
    assert found[1] == pytest.approx(float(stats.mean_difference_mde(400, 0.01, 0.01)))
    assert found[2] == pytest.approx(float(stats.unpaired_mde(0.05, 0.05)))
    assert np.isnan(found[3])


def test_family_alpha_is_the_first_step_of_the_correction() -> None:
    """One real change among m: Holm's first step and BH's rank-1 threshold, alpha / m."""
    assert stats.family_alpha(0.05, 5) == pytest.approx(0.01)
    assert stats.family_alpha(0.05, 0) == 0.05
    # The p-value just under alpha/m is rejected by both corrections when it is alone.
    p = np.array([0.0099, 0.5, 0.6, 0.7, 0.8])
    for method in ("holm", "bh"):
        assert stats.adjust_array(p, method)[0] < 0.05


def test_stored_tests_carry_the_se_the_mde_reads() -> None:
    binary = stats.paired_binary(100, 12, 8)
    assert binary.se == pytest.approx(np.sqrt(20) / 100)  # sqrt((b + c) / n) / sqrt(n)
    x = np.linspace(-0.5, 0.7, 50)
    continuous = stats.paired_continuous([x])
    assert continuous.se == pytest.approx(np.std(x, ddof=1) / np.sqrt(50))
    both = stats.paired_continuous([x, x[:20]])
    expected = np.sqrt(np.var(x, ddof=1) / 50 + np.var(x[:20], ddof=1) / 20) / 2
    assert both.se == pytest.approx(expected)
    assert stats.stderr_test(0.1, 0.03).se == 0.03
