"""The statistics behind ``compare``: is a difference more than noise?

Bug rates are counts out of a denominator (guest runs, ticks), so they are
compared with Fisher's exact test on the 2×2 table. A percentile row (p50, p99 of a
duration) is tested on that percentile itself: a bootstrap of the difference after −
before (``scipy.stats.bootstrap``, percentile interval), which gives its confidence
interval and a two-sided p-value; no normality is assumed, which irqs-off and handling
times never have. The metric rows are one family, corrected with Holm's method.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

#: fewer samples than this on either side: no test, the p-value would mean nothing
MIN_SAMPLES = 5


#: bootstrap resamples, and the largest sample a side is resampled from (a seeded subsample
#: beyond it; the percentile itself is always the whole side's)
RESAMPLES = 999
MAX_RESAMPLED = 5_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Test:
    """One test's outcome; ``p`` is None when the samples were too few to test; ``ci`` is the
    confidence interval of the difference (after − before) where the test gives one."""

    name: str
    p: float | None
    n_before: int
    n_after: int
    ci: tuple[float, float] | None = None

    def significant(self, alpha: float) -> bool:
        return self.p is not None and self.p < alpha


def rate_test(k_before: int, n_before: int, k_after: int, n_after: int) -> Test:
    """Fisher's exact test (two-sided) of k/n before against k/n after."""
    if n_before <= 0 or n_after <= 0:
        return Test("Fisher exact", None, n_before, n_after)
    table = [[k_before, max(n_before - k_before, 0)], [k_after, max(n_after - k_after, 0)]]
    return Test("Fisher exact", float(stats.fisher_exact(table).pvalue), n_before, n_after)


def percentile_test(before: np.ndarray, after: np.ndarray, q: float, seed: int = 0) -> Test:
    """Bootstrap of the ``q``-quantile's difference after − before: its 95% percentile interval, and
    the two-sided p-value of "no difference" from the bootstrap standard error (a share of
    resampled differences could not go below 1/resamples, which no correction could use)."""
    name = f"bootstrap p{round(q * 100):g}"
    if len(before) < MIN_SAMPLES or len(after) < MIN_SAMPLES:
        return Test(name, None, len(before), len(after))
    if _same_constant(before, after):
        return Test(name, 1.0, len(before), len(after), (0.0, 0.0))
    rng = np.random.default_rng(seed)

    def sample(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return rng.choice(x, MAX_RESAMPLED, replace=False) if len(x) > MAX_RESAMPLED else x

    def diff(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.quantile(a, q, axis=axis) - np.quantile(b, q, axis=axis)

    res = stats.bootstrap((sample(before), sample(after)), diff, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                          method="percentile", vectorized=True, random_state=rng)
    se = float(res.standard_error)
    observed = float(np.quantile(after, q) - np.quantile(before, q))
    p = 1.0 if se == 0 and observed == 0 else 0.0 if se == 0 else float(2 * stats.norm.sf(abs(observed) / se))
    ci = res.confidence_interval
    return Test(name, p, len(before), len(after), (float(ci.low), float(ci.high)))


def holm(p: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values of one family (None stays None)."""
    tested = [(v, i) for i, v in enumerate(p) if v is not None]
    out: list[float | None] = [None] * len(p)
    m, running = len(tested), 0.0
    for rank, (v, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def format_p(p: float | None) -> str | None:
    """One way to print a p-value everywhere: two significant digits; one that underflows is tiny, not 0."""
    if p is None:
        return None
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def _same_constant(a: np.ndarray, b: np.ndarray) -> bool:
    """Both samples one and the same value: U is undefined, and nothing differs."""
    return bool(a.min() == a.max() == b.min() == b.max())
