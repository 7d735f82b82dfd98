"""Statistics behind "did this fine-tune really change the score?" — no SQL here.

Every delta is tested with the strongest evidence available for it:

* **0/1 metrics, per-sample results on both sides:** exact McNemar test on the
  discordant pairs (b = right→wrong, c = wrong→right): under "no change" each
  discordant pair is a fair coin, so p is scipy's two-sided exact binomial test
  of c out of b + c. The CI is a paired bootstrap of the per-doc differences.
* **continuous metrics (TruthfulQA mc2, list metrics stored as means):** paired
  bootstrap CI of the mean per-doc difference (scipy.stats.bootstrap, fixed
  seed), and the p-value read off the same bootstrap distribution.
* **no per-sample results on a side:** lm-eval's stderrs, treating the two evals
  as independent (z test, CI = delta ± 1.96·sqrt(se1² + se2²)); weaker, because
  pairing removes the per-question difficulty that dominates the variance.
* **nothing:** no test; such deltas are never called significant.

p-values are corrected for the number of deltas looked at per model (Holm by
default, or Benjamini-Hochberg), with statsmodels' formulas (``adjust_array``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

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
    """One delta's test: p-value and 95% CI of the difference (fractions)."""

    test: str | None
    evidence: str  # 'paired' | 'stderr' | 'none'
    p_value: float | None
    ci_low: float | None
    ci_high: float | None


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
        point = float(np.mean([x.mean() for x in data]))
        return point, point, 1.0 if point == 0 else 0.0
    rng = np.random.default_rng(seed() if seed_value is None else seed_value)
    count = n_resamples or resamples()
    boot = np.mean([_stratum_means(x, rng, count) for x in data], axis=0)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])  # "linear", as scipy's bootstrap
    tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
    p = min(1.0, 2 * (tail + 1) / (len(boot) + 1))
    return float(low), float(high), p


def paired_binary(n_pairs: int, right_to_wrong: int, wrong_to_right: int) -> TestResult:
    """Exact McNemar p and a paired bootstrap CI for a 0/1 metric's difference."""
    diffs = binary_differences(n_pairs, right_to_wrong, wrong_to_right)
    low, high, _ = paired_bootstrap([diffs])
    return TestResult(
        TEST_MCNEMAR, "paired", mcnemar_exact(right_to_wrong, wrong_to_right), low, high
    )


def paired_continuous(strata: Sequence[np.ndarray]) -> TestResult:
    """Paired bootstrap CI and p-value for continuous (or mixed) per-doc differences."""
    low, high, p = paired_bootstrap(strata)
    return TestResult(TEST_BOOTSTRAP, "paired", p, low, high)


def stderr_test(delta: float, standard_error: float) -> TestResult:
    """z test and delta ± 1.96·se from an unpaired standard error of the difference."""
    if standard_error is None or not np.isfinite(standard_error) or delta is None:
        return NO_EVIDENCE
    if standard_error == 0:
        p = 1.0 if delta == 0 else 0.0
    else:
        p = float(2 * sps.norm.sf(abs(delta) / standard_error))
    half = Z_95 * standard_error
    return TestResult(TEST_STDERR, "stderr", p, delta - half, delta + half)


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
