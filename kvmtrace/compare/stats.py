"""The statistics behind ``compare``: is a difference more than noise?

Bug rates are counts out of a denominator (guest runs, ticks), so they are
compared with Fisher's exact test on the 2×2 table. Durations are compared with
Mann-Whitney U (a shift of the typical value) and two-sample Kolmogorov-Smirnov
(any difference in shape, tails included). Both are rank tests: no normality is
assumed, which irqs-off and handling times never have.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

#: fewer samples than this on either side: no test, the p-value would mean nothing
MIN_SAMPLES = 5


@dataclass(frozen=True)
class Test:
    """One test's outcome; ``p`` is None when the samples were too few to test."""

    name: str
    p: float | None
    n_before: int
    n_after: int

    def significant(self, alpha: float) -> bool:
        return self.p is not None and self.p < alpha


def rate_test(k_before: int, n_before: int, k_after: int, n_after: int) -> Test:
    """Fisher's exact test (two-sided) of k/n before against k/n after."""
    if n_before <= 0 or n_after <= 0:
        return Test("Fisher exact", None, n_before, n_after)
    table = [[k_before, max(n_before - k_before, 0)], [k_after, max(n_after - k_after, 0)]]
    return Test("Fisher exact", float(stats.fisher_exact(table).pvalue), n_before, n_after)


def location_test(before: np.ndarray, after: np.ndarray) -> Test:
    """Mann-Whitney U (two-sided): has the typical value moved?"""
    if len(before) < MIN_SAMPLES or len(after) < MIN_SAMPLES:
        return Test("Mann-Whitney U", None, len(before), len(after))
    if _same_constant(before, after):
        return Test("Mann-Whitney U", 1.0, len(before), len(after))
    p = stats.mannwhitneyu(before, after, alternative="two-sided", method="asymptotic").pvalue
    return Test("Mann-Whitney U", float(p), len(before), len(after))


def shape_test(before: np.ndarray, after: np.ndarray) -> Test:
    """Two-sample Kolmogorov-Smirnov: does the distribution differ anywhere (tails too)?"""
    if len(before) < MIN_SAMPLES or len(after) < MIN_SAMPLES:
        return Test("Kolmogorov-Smirnov", None, len(before), len(after))
    p = stats.ks_2samp(before, after, method="asymp" if min(len(before), len(after)) > 10_000 else "auto").pvalue
    return Test("Kolmogorov-Smirnov", float(p), len(before), len(after))


def _same_constant(a: np.ndarray, b: np.ndarray) -> bool:
    """Both samples one and the same value: U is undefined, and nothing differs."""
    return bool(a.min() == a.max() == b.min() == b.max())
