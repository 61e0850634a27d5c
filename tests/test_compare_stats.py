"""compare's statistics: percentiles tested on the percentile, one family corrected, one p format."""
from __future__ import annotations

import re

import numpy as np

import kvmtrace
from conftest import ARM64
from kvmtrace.compare import compare
from kvmtrace.compare.stats import format_p, holm, percentile_test


def test_a_percentile_is_tested_with_a_bootstrap_interval_of_that_percentile():
    rng = np.random.default_rng(3)
    base = rng.lognormal(10, 1, 4000)
    same = percentile_test(base, rng.permutation(base), 0.99)
    assert same.name == "bootstrap p99" and same.p > 0.5 and same.ci[0] <= 0 <= same.ci[1]
    tail = base.copy()
    tail[tail > np.quantile(tail, 0.98)] *= 3  # only the tail moved: p50 must not notice, p99 must
    p99, p50 = percentile_test(base, tail, 0.99), percentile_test(base, tail, 0.5)
    observed = np.quantile(tail, 0.99) - np.quantile(base, 0.99)
    assert p99.p < 1e-6 and p99.ci[0] > 0 and p99.ci[0] <= observed <= p99.ci[1]
    assert p50.p > 0.5
    assert percentile_test(base[:3], tail[:3], 0.99).p is None  # too few samples: untested


def test_holm_adjusts_one_family_and_keeps_untested_rows_untested():
    adjusted = holm([0.01, None, 0.04, 0.03, 0.5])
    assert adjusted == [0.04, None, 0.09, 0.09, 0.5]
    assert all(a >= p for a, p in zip(adjusted, [0.01, None, 0.04, 0.03, 0.5]) if p is not None)


def test_p_values_print_one_way():
    assert [format_p(p) for p in (None, 0.0, 2.2e-317, 7e-31, 0.25, 1.0)] == [None, "<1e-300", "<1e-300", "7e-31", "0.25", "1"]


def test_compare_tables_are_typed_corrected_and_say_which_family():
    b = kvmtrace.analyze(ARM64 / "arm64-6.1-prefix-tick.dat")
    a = kvmtrace.analyze(ARM64 / "arm64-6.1-fixed-tick.dat")
    c = compare(b, a)
    t = c.table
    assert str(t["p_value"].dtype) == "Float64" and str(t["significant"].dtype) == "boolean"
    tested = t[t["p_value"].notna()]
    assert (tested["p_holm"] >= tested["p_value"]).all()
    assert (tested["significant"] == (tested["p_holm"] < c.alpha)).all()
    pct = t[t["metric"].str.endswith(("p50", "p99")) & t["p_value"].notna()]
    assert len(pct) >= 6 and pct["test"].str.startswith("bootstrap").all() and pct["ci_low"].notna().all()
    text = c.to_text()
    assert "Holm-corrected" in text and "Fisher tests, uncorrected" in text and "Kolmogorov" not in text
    for p in re.findall(r"p=(\S+?)\)", text):  # the verdicts' p-values, printed like the table's
        assert p == "<1e-300" or re.fullmatch(r"\d(\.\d)?(e-\d+)?|0\.\d{1,3}", p), p
