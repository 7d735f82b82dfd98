"""Statistics behind "did this fine-tune really change the score?" — no SQL here.

Every delta is tested with the strongest evidence available for it:

* **0/1 metrics, per-sample results on both sides:** exact McNemar test on the
  discordant pairs (b = right→wrong, c = wrong→right): under "no change" each
  discordant pair is a fair coin, so p is scipy's two-sided exact binomial test
  of c out of b + c. The CI is a paired bootstrap of the per-doc differences,
  except where every pair has the same difference (no flips, or every pair
  flipped one way): the bootstrap then has one value and would read "-50 to -50",
  so Tango's score interval for paired proportions (``tango_interval``) is used.
* **continuous metrics (TruthfulQA mc2, list metrics stored as means):** paired
  bootstrap CI of the mean per-doc difference (scipy.stats.bootstrap, fixed
  seed), and the p-value read off the same bootstrap distribution.
* **no per-sample results on a side:** lm-eval's stderrs, treating the two evals
  as independent (z test, CI = delta ± 1.96·sqrt(se1² + se2²)); weaker, because
  pairing removes the per-question difficulty that dominates the variance.
* **nothing:** no test; such deltas are never called significant. A stderr of 0
  on both sides (two constant evals) says nothing about the eval's size: no test.

p-values are corrected for the number of deltas looked at per model (Holm by
default, or Benjamini-Hochberg), with statsmodels' formulas (``adjust_array``).

Every tested delta also gets its **minimum detectable effect** (``mde``): the
smallest true change the eval would call significant with 80% power, so a budget
can tell "within the limit" from "too few items to tell".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.optimize import brentq

from forgetwatch import settings

Z_95 = float(sps.norm.ppf(0.975))
CONFIDENCE = 0.95
# Column value -> statsmodels' method name.
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh"}

TEST_MCNEMAR = "mcnemar-exact"
TEST_BOOTSTRAP = "paired-bootstrap"
TEST_STDERR = "stderr-z"
EVIDENCE_STDERR_LABEL = "stderr (unpaired, weaker)"
# How each evidence level reads in tables and comments.
EVIDENCE_LABELS = {"paired": "paired", "stderr": EVIDENCE_STDERR_LABEL, "none": "none"}


@dataclass(frozen=True)
class TestResult:
    """One delta's test: p-value and 95% CI of the difference (fractions).

    ``se`` is the standard error of the delta the minimum detectable effect is read
    from (``minimum_detectable_effect``): from the paired differences, or the
    unpaired stderrs; None without evidence.
    """

    test: str | None
    evidence: str  # 'paired' | 'stderr' | 'none'
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None = None


NO_EVIDENCE = TestResult(None, "none", None, None, None)


def seed() -> int:
    """The bootstrap seed (``FORGETWATCH_STATS_SEED``): same data, same CI."""
    return settings.integer("stats_seed")


def resamples() -> int:
    """Bootstrap resamples (``FORGETWATCH_BOOTSTRAP_RESAMPLES``)."""
    return settings.integer("bootstrap_resamples")


def mcnemar_exact(right_to_wrong: int, wrong_to_right: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 with none)."""
    n = int(right_to_wrong) + int(wrong_to_right)
    if n == 0:
        return 1.0
    # binomtest's two-sided p at 0.5 (a symmetric null): twice the smaller tail, read off
    # the CDF directly — the same number, at a tenth of binomtest's cost per delta.
    smaller = min(int(right_to_wrong), int(wrong_to_right))
    return float(min(1.0, 2 * sps.binom.cdf(smaller, n, 0.5)))


def binary_differences(n_pairs: int, right_to_wrong: int, wrong_to_right: int) -> np.ndarray:
    """The per-doc differences (model - base) of 0/1 pairs, rebuilt from their counts.

    A 0/1 paired sample is fully described by (n, b, c), so binary tasks never
    ship their samples out of the database to be bootstrapped.
    """
    same = int(n_pairs) - int(right_to_wrong) - int(wrong_to_right)
    return np.concatenate(
        [np.zeros(same), -np.ones(int(right_to_wrong)), np.ones(int(wrong_to_right))]
    )


# A stratum with at most this many distinct values is resampled as one multinomial draw.
FEW_VALUES = 16


def _stratum_means(x: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    """Bootstrap distribution of one stratum's mean difference (n_resamples values).

    Resampling n docs with replacement from a variable with few distinct values
    (0/1 pairs give -1, 0, +1) is exactly one multinomial draw of how many docs
    take each value, so those strata cost O(resamples) instead of O(resamples · docs)
    — an MMLU-sized task in milliseconds. Others go through scipy.stats.bootstrap.
    """
    if np.ptp(x) == 0:
        return np.full(n_resamples, float(x[0]))
    values, counts = np.unique(x, return_counts=True)
    if len(values) <= FEW_VALUES:
        draws = rng.multinomial(len(x), counts / len(x), size=n_resamples)
        means: np.ndarray = draws @ values / len(x)
        return means
    result = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        batch=200,  # bounds memory to 200 resamples x docs; larger batches ran slower here
        rng=rng,
    )
    return np.asarray(result.bootstrap_distribution)


def paired_bootstrap(
    strata: Sequence[np.ndarray], *, seed_value: int | None = None, n_resamples: int | None = None
) -> tuple[float, float, float]:
    """95% percentile bootstrap CI and p-value of the mean over strata of mean differences.

    One stratum is an ordinary paired bootstrap of per-doc differences. Several
    (a capability's tasks) are resampled independently within each stratum, so
    the CI is for exactly the number shown: the unweighted mean of task deltas.
    The percentile method is used because BCa's jackknife is quadratic in the
    number of docs and undefined on constant resamples; for means over hundreds
    of docs the two agree closely.

    The p-value inverts the same bootstrap distribution (the smallest two-sided
    level whose percentile CI excludes 0, with the +1 correction that keeps it
    above zero), so test and CI always agree and only one resampling pass runs.
    """
    data = [np.asarray(x, dtype=float) for x in strata if len(x)]
    if not data:
        raise ValueError("no paired differences to bootstrap")
    if all(np.ptp(x) == 0 for x in data):
        # One bootstrap value: no interval to read, and no resample on the far side of 0
        # either. The p-value is the exact sign test of the differences (never 0).
        point = float(np.mean([x.mean() for x in data]))
        return point, point, sign_test(data)
    rng = np.random.default_rng(seed() if seed_value is None else seed_value)
    count = n_resamples or resamples()
    boot = np.mean([_stratum_means(x, rng, count) for x in data], axis=0)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])  # "linear", as scipy's bootstrap
    tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
    p = min(1.0, 2 * (tail + 1) / (len(boot) + 1))
    return float(low), float(high), p


def sign_test(strata: Sequence[np.ndarray]) -> float:
    """Exact two-sided sign test of the differences in ``strata`` (ties dropped).

    On 0/1 pairs it is the exact McNemar test; on constant differences it gives the
    honest p of "every doc moved the same way" (2·0.5ⁿ), where a bootstrap gives 0.
    """
    below = sum(int(np.sum(np.asarray(x) < 0)) for x in strata)
    above = sum(int(np.sum(np.asarray(x) > 0)) for x in strata)
    return mcnemar_exact(below, above)


def is_constant_binary(n_pairs: int, right_to_wrong: int, wrong_to_right: int) -> bool:
    """Whether every 0/1 pair has the same difference: no flips, or every pair flipped
    the same way. The bootstrap of such a sample is one value (a zero-width CI)."""
    flips = int(right_to_wrong) + int(wrong_to_right)
    return int(n_pairs) > 0 and (flips == 0 or max(right_to_wrong, wrong_to_right) == n_pairs)


def _tango_z(delta: float, n: int, up: int, down: int) -> float:
    """Tango's score statistic for "the paired difference is ``delta``".

    ``up`` pairs went wrong → right, ``down`` right → wrong; the difference is
    (up - down) / n. The variance uses the restricted maximum-likelihood estimate of
    the right → wrong cell under ``delta`` (Tango 1998, eq. 3); at ``delta`` = 0 the
    statistic is McNemar's (up - down) / √(up + down).
    """
    w = -(up + down) + (2 * n - up + down) * delta
    q = (np.sqrt(w * w + 8 * n * down * delta * (1 - delta)) - w) / (4 * n)
    variance = n * (2 * q + delta * (1 - delta))
    gap = up - down - n * delta
    if gap == 0 or variance <= 0:  # at the point estimate, or at a boundary of [-1, 1]
        return 0.0 if gap == 0 else float(np.copysign(np.inf, gap))
    return float(gap / np.sqrt(variance))


def tango_interval(
    n_pairs: int, right_to_wrong: int, wrong_to_right: int, z: float = Z_95
) -> tuple[float, float]:
    """Tango's score CI of a paired difference of proportions (model - base).

    Inverts Tango's score test: the limits are where the statistic reaches ±z. Unlike
    the bootstrap (and the Wald interval), it has a width when no pair flipped (n = 50,
    b = c = 0: ±z²/(n + z²), ±7.1 points) and when every pair flipped one way, and it
    stays inside [-1, 1]. It reads only (n, b, c), so it needs no more than the
    pairing query counts.
    """
    n, down, up = int(n_pairs), int(right_to_wrong), int(wrong_to_right)
    if n <= 0:
        raise ValueError("no pairs")
    point = (up - down) / n

    def limit(end: float) -> float:
        # The statistic is 0 at the point estimate and grows in size away from it.
        target = z if end < point else -z
        if abs(_tango_z(end, n, up, down)) < z:
            return float(np.sign(end))  # it never reaches z inside [-1, 1]
        return float(brentq(lambda d: _tango_z(d, n, up, down) - target, end, point))

    edge = 1 - 1e-12  # the statistic is undefined at exactly ±1
    return limit(-edge) if point > -edge else -1.0, limit(edge) if point < edge else 1.0


def mover_mean_interval(
    points: Sequence[float], lows: Sequence[float], highs: Sequence[float]
) -> tuple[float, float]:
    """CI of the unweighted mean of independent estimates, from each one's own CI.

    Zou & Donner's MOVER (method of variance estimates recovery): each side's
    half-widths add in quadrature, so asymmetric score intervals keep their shape. For
    symmetric normal intervals it is exactly mean ± z·√(Σ seᵢ²)/k.
    """
    d = np.asarray(points, dtype=float)
    k = len(d)
    if k == 0:
        raise ValueError("no estimates")
    mean = float(d.mean())
    below = np.sqrt(np.sum(np.square(d - np.asarray(lows, dtype=float)))) / k
    above = np.sqrt(np.sum(np.square(np.asarray(highs, dtype=float) - d))) / k
    return mean - float(below), mean + float(above)


def paired_binary(n_pairs: int, right_to_wrong: int, wrong_to_right: int) -> TestResult:
    """Exact McNemar p and a paired bootstrap CI for a 0/1 metric's difference.

    Where every pair has the same difference the bootstrap collapses to one value,
    so the CI is Tango's score interval instead (``tango_interval``).
    """
    if is_constant_binary(n_pairs, right_to_wrong, wrong_to_right):
        low, high = tango_interval(n_pairs, right_to_wrong, wrong_to_right)
    else:
        diffs = binary_differences(n_pairs, right_to_wrong, wrong_to_right)
        low, high, _ = paired_bootstrap([diffs])
    p = mcnemar_exact(right_to_wrong, wrong_to_right)
    # Under "no change" a 0/1 pair's difference has variance (b + c) / n: se = sqrt(b + c) / n.
    se = float(np.sqrt(int(right_to_wrong) + int(wrong_to_right)) / int(n_pairs))
    return TestResult(TEST_MCNEMAR, "paired", p, low, high, se)


def mean_difference_se(strata: Sequence[np.ndarray]) -> float:
    """Standard error of the unweighted mean over strata of mean differences.

    sqrt(Σ sᵢ²/nᵢ) / k with sᵢ each stratum's sample sd (ddof 1; 0 for a single
    doc): the same number the stratified bootstrap estimates, in closed form.
    """
    data = [np.asarray(x, dtype=float) for x in strata if len(x)]
    if not data:
        raise ValueError("no paired differences")
    variances = [float(np.var(x, ddof=1)) / len(x) if len(x) > 1 else 0.0 for x in data]
    return float(np.sqrt(np.sum(variances)) / len(data))


def paired_continuous(strata: Sequence[np.ndarray]) -> TestResult:
    """Paired bootstrap CI and p-value for continuous (or mixed) per-doc differences."""
    low, high, p = paired_bootstrap(strata)
    return TestResult(TEST_BOOTSTRAP, "paired", p, low, high, mean_difference_se(strata))


def stderr_test(delta: float, standard_error: float) -> TestResult:
    """z test and delta ± 1.96·se from an unpaired standard error of the difference."""
    if standard_error is None or not np.isfinite(standard_error) or delta is None:
        return NO_EVIDENCE
    if standard_error == 0:  # both evals constant: a zero-width CI and p = 0 would be
        return NO_EVIDENCE  # claimed from nothing (the stderrs do not say how many docs)
    p = float(2 * sps.norm.sf(abs(delta) / standard_error))
    half = Z_95 * standard_error
    se = float(standard_error)
    return TestResult(TEST_STDERR, "stderr", p, delta - half, delta + half, se)


def difference_stderr(se_model: float | None, se_base: float | None) -> float | None:
    """sqrt(se1² + se2²): the stderr of a difference of two independent scores."""
    if se_model is None or se_base is None or pd.isna(se_model) or pd.isna(se_base):
        return None
    return float(np.hypot(se_model, se_base))


def adjust_array(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values of one family (NaN stays NaN): Holm or Benjamini-Hochberg.

    The same step-down / step-up formulas as statsmodels' ``multipletests``, in
    a few numpy operations: ``multipletests`` runs ``gc.collect()`` on every call
    (~57 ms), which dominated pages that correct hundreds of families.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; use one of {sorted(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if m == 0:
        return out
    order = present[np.argsort(p[present], kind="mergesort")]
    ranked = p[order]
    if method == "holm":
        stepped = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        stepped = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    out[order] = np.minimum(stepped, 1.0)
    return out


def adjust(p_values: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Multiple-comparison adjusted p-values (None stays None); see ``adjust_array``."""
    raw = np.array([np.nan if p is None or pd.isna(p) else p for p in p_values], dtype=float)
    adjusted = adjust_array(raw, method)
    return [None if np.isnan(v) else float(v) for v in adjusted]


def group_score(
    values: Sequence[float], sizes: Sequence[int], stderrs: Sequence[float | None]
) -> tuple[float, float | None]:
    """A group's score and stderr from its subtasks, exactly as lm-eval aggregates them.

    Score: the size-weighted mean (lm-eval's ``aggregate_subtask_metrics`` with
    ``weight_by_size=True``). Stderr: lm-eval's ``pooled_sample_stderr``, the
    pooled variance Σ(nᵢ-1)·nᵢ·seᵢ² / (Σnᵢ - k) over Σnᵢ; None when any subtask
    has no stderr (lm-eval writes "N/A" then).
    """
    v = np.asarray(values, dtype=float)
    n = np.asarray(sizes, dtype=float)
    if len(v) != len(n) or len(v) == 0:
        raise ValueError("group_score needs one size per value, and at least one subtask")
    score = float(np.sum(v * n) / np.sum(n))
    if len(stderrs) != len(v) or any(s is None or pd.isna(s) for s in stderrs):
        return score, None
    se = np.asarray(stderrs, dtype=float)
    pooled_var = np.sum((n - 1) * se**2 * n) / (np.sum(n) - len(n))
    return score, float(np.sqrt(pooled_var / np.sum(n)))


def within_noise(row: Mapping[str, Any] | pd.DataFrame) -> bool | pd.Series:
    """True where a delta is not significant (or untested): grey it out.

    Takes one result row (a dict or Series) or a whole DataFrame (vectorised).
    """
    if isinstance(row, pd.DataFrame):
        return ~row["significant"].fillna(False).astype(bool)
    significant = row.get("significant")
    return not (significant is not None and not pd.isna(significant) and bool(significant))


# ---------------------------------------------------------------- power

POWER = 0.80  # the power every minimum detectable effect is quoted at


def family_alpha(alpha: float, tested: Any) -> Any:
    """The level one real change must reach among ``tested`` deltas: ``alpha / tested``.

    Holm's first step and Benjamini-Hochberg's rank-1 threshold are both alpha/m:
    when one change among a model's m tested deltas is real and the rest are not,
    that change is called significant exactly when its p-value is below alpha/m,
    whichever correction the budget names. So this is the row's alpha after the
    correction, and it is what the minimum detectable effect is computed at.
    """
    if np.ndim(tested) == 0:
        return float(alpha) / max(int(tested), 1)
    return float(alpha) / np.maximum(np.asarray(tested, dtype=float), 1.0)


def _quantiles(alpha: Any, power: float, df: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(two-sided critical value at ``alpha``, quantile of ``power``): normal, or t on ``df``."""
    if df is None:
        return np.asarray(sps.norm.isf(np.asarray(alpha) / 2)), np.asarray(sps.norm.ppf(power))
    return (
        np.asarray(sps.t.isf(np.asarray(alpha) / 2, df)),
        np.asarray(sps.t.ppf(power, df)),
    )


def one_way_floor(n_pairs: Any, alpha: Any, power: float = POWER) -> np.ndarray:
    """The smallest change ``n_pairs`` items can show, even if every flip goes one way.

    A true change of δ (a fraction) moves at least δ·n items, so the discordance
    under that change is at least δ: Connor's formula with discordance = δ gives
    √(nδ) = z₁₋α/₂ + z_power·√(1 - δ), solved here in closed form. It is the floor
    of every paired MDE, so an eval whose pairs never disagreed (or whose continuous
    differences are all equal) still reports how small it is, instead of an MDE of
    0; 1.0 (100 points) where even that cannot reach the power.
    """
    n = np.asarray(n_pairs, dtype=float)
    za, zb = _quantiles(alpha, power)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (-za * zb + np.sqrt(n * (n - za**2 + zb**2))) / (n + zb**2)
    floor = np.where(np.isfinite(u) & (u > 0), 1 - u**2, 1.0)
    return np.asarray(np.where(n > 0, floor, np.nan))


def mcnemar_mde(n_pairs: Any, discordance: Any, alpha: Any, power: float = POWER) -> np.ndarray:
    """Minimum detectable change in a 0/1 score from n pairs and the discordance (b + c)/n.

    Connor (1987)'s normal approximation to McNemar's test, the formula behind
    statsmodels' ``normal_power_het`` with std_null = √ψ and std_alternative =
    √(ψ - δ²): √n·δ = z₁₋α/₂·√ψ + z_power·√(ψ - δ²), solved for δ in closed form.
    The observed discordance ψ stands for the discordance under the alternative;
    ``one_way_floor`` bounds it from below (a change of δ needs ψ ≥ δ), which is
    what a discordance of 0 falls back to. Vectorised; fractions in, fractions out.
    """
    n = np.asarray(n_pairs, dtype=float)
    psi = np.asarray(discordance, dtype=float)
    za, zb = _quantiles(alpha, power)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = zb * np.sqrt(np.clip(psi * (n - za**2 + zb**2), 0, None))
        connor = (za * np.sqrt(psi) * np.sqrt(n) + root) / (n + zb**2)
    found = np.fmax(connor, one_way_floor(n, alpha, power))
    return np.asarray(np.clip(found, 0.0, 1.0))


def mean_difference_mde(n_pairs: Any, se: Any, alpha: Any, power: float = POWER) -> np.ndarray:
    """Minimum detectable mean paired difference from its standard error (paired t).

    (t₁₋α/₂ + t_power)·se on n - 1 degrees of freedom: the usual approximation to
    the paired t test's power (statsmodels' ``TTestPower``), floored by
    ``one_way_floor``. For a capability (mean of task means) ``se`` is the
    stratified one and n the pairs over all its tasks.
    """
    n = np.asarray(n_pairs, dtype=float)
    ta, tb = _quantiles(alpha, power, df=np.maximum(n - 1, 1))
    found = np.fmax((ta + tb) * np.asarray(se, dtype=float), one_way_floor(n, alpha, power))
    return np.asarray(np.clip(found, 0.0, 1.0))


def unpaired_mde(se: Any, alpha: Any, power: float = POWER) -> np.ndarray:
    """Minimum detectable change from lm-eval's stderrs alone: (z₁₋α/₂ + z_power)·se.

    A standard error of 0 (a score of exactly 0 or 1) says nothing about the
    eval's size, so it gives no MDE (NaN) rather than claiming any change is seen.
    """
    s = np.asarray(se, dtype=float)
    za, zb = _quantiles(alpha, power)
    found = np.where(s > 0, (za + zb) * s, np.nan)
    return np.asarray(np.clip(found, 0.0, 1.0))


def minimum_detectable_effect(
    test: Sequence[Any],
    n_pairs: Any,
    right_to_wrong: Any,
    wrong_to_right: Any,
    se: Any,
    alpha: Any,
    power: float = POWER,
) -> np.ndarray:
    """Each delta's minimum detectable effect at ``power`` (fractions; NaN = unknown).

    Chosen per row by the test its delta got: exact McNemar rows use Connor's
    formula on (n, (b + c)/n); paired-bootstrap rows (continuous tasks, and
    capabilities of several tasks) the paired t formula on their stored ``se``;
    stderr rows the normal formula on the unpaired stderr; untested rows none.
    ``alpha`` may be one level or one per row (``family_alpha``).
    """
    kind = np.asarray(test, dtype=object)
    n = np.asarray(n_pairs, dtype=float)
    flips = np.asarray(right_to_wrong, dtype=float) + np.asarray(wrong_to_right, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        psi = np.where(n > 0, flips / n, np.nan)
    out = np.full(len(kind), np.nan)
    for name, values in (
        (TEST_MCNEMAR, mcnemar_mde(n, psi, alpha, power)),
        (TEST_BOOTSTRAP, mean_difference_mde(n, se, alpha, power)),
        (TEST_STDERR, unpaired_mde(se, alpha, power)),
    ):
        chosen = kind == name
        out[chosen] = np.broadcast_to(values, out.shape)[chosen]
    return out
