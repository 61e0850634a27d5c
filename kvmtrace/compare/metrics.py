"""The side-by-side metric rows of a comparison, each with its test where one applies."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..analyzers import FINDING_KINDS
from .sides import Side
from .stats import Test, holm, percentile_test, rate_test

COLUMNS = ["group", "metric", "unit", "before", "after", "delta", "relative", "test", "p_value", "p_holm",
           "ci_low", "ci_high", "n_before", "n_after", "significant"]


def _row(group: str, metric: str, unit: str, b: float | int | None, a: float | int | None,
         test: Test | None, alpha: float) -> dict[str, Any]:
    delta = None if b is None or a is None else a - b
    rel = None if delta is None or not b else delta / b
    return {"group": group, "metric": metric, "unit": unit, "before": b, "after": a, "delta": delta,
            "relative": rel, "test": test.name if test else None, "p_value": test.p if test else None, "p_holm": None,
            "ci_low": _us(test.ci[0]) if test and test.ci else None, "ci_high": _us(test.ci[1]) if test and test.ci else None,
            "n_before": test.n_before if test else None, "n_after": test.n_after if test else None,
            "significant": None}


def _us(ns: float) -> float:
    return ns / 1e3


def _q(x: np.ndarray, q: float) -> float | None:
    return float(np.quantile(x, q)) / 1e3 if len(x) else None


def _max(x: np.ndarray) -> float | None:
    return float(x.max()) / 1e3 if len(x) else None


def _distribution(group: str, what: str, b: np.ndarray, a: np.ndarray, alpha: float) -> list[dict[str, Any]]:
    """p50 and p99, each with a bootstrap of that percentile's difference; max (one sample: untested)."""
    return [_row(group, f"{what} p50", "us", _q(b, 0.5), _q(a, 0.5), percentile_test(b, a, 0.5), alpha),
            _row(group, f"{what} p99", "us", _q(b, 0.99), _q(a, 0.99), percentile_test(b, a, 0.99), alpha),
            _row(group, f"{what} max", "us", _max(b), _max(a), None, alpha)]


def rows(before: Side, after: Side, alpha: float) -> list[dict[str, Any]]:
    """Every metric the analyzers give, before beside after."""
    out = [_row("runs", "guest runs", "count", before.runs, after.runs, None, alpha)]
    for kind in FINDING_KINDS:
        nb, na = before.denominator(kind), after.denominator(kind)
        kb, ka = before.proven[kind], after.proven[kind]
        out.append(_row(kind, "proven findings", "count", kb, ka, None, alpha))
        out.append(_row(kind, "inferred findings", "count", before.inferred[kind], after.inferred[kind], None, alpha))
        out.append(_row(kind, "proven per 1k " + ("ticks" if kind == "misaccounted_tick" else "runs"), "rate",
                        1000 * kb / nb if nb else None, 1000 * ka / na if na else None, rate_test(kb, nb, ka, na), alpha))
    out.append(_row("irqsoff", "windows", "count", len(before.irqsoff_ns), len(after.irqsoff_ns), None, alpha))
    out += _distribution("irqsoff", "duration", before.irqsoff_ns, after.irqsoff_ns, alpha)
    out.append(_row("irqsoff", "apparent time", "us", before.apparent_ns.sum() / 1e3, after.apparent_ns.sum() / 1e3,
                    None, alpha))
    out.append(_row("irqsoff", "apparent time per guest run", "us",
                    before.apparent_ns.sum() / 1e3 / before.runs if before.runs else None,
                    after.apparent_ns.sum() / 1e3 / after.runs if after.runs else None, None, alpha))
    out.append(_row("ticks", "ticks on vCPU CPUs", "count", before.ticks, after.ticks, None, alpha))
    out += _host_to_guest(before, after, alpha)
    out += _guest(before, after, alpha)
    out += _exit_reasons(before, after, alpha)
    # one family: Holm's correction over every tested row (the per-class verdicts are apart, uncorrected)
    for row, adjusted in zip(out, holm([r["p_value"] for r in out])):
        row["p_holm"] = adjusted
        row["significant"] = None if adjusted is None else adjusted < alpha
    return out


def _host_to_guest(before: Side, after: Side, alpha: float) -> list[dict[str, Any]]:
    """Host time charged to the guest by design (ticks due after the guest left, taken while guest
    timing was on), per exit reason, per 1k ticks on the vCPU CPUs."""
    out = []
    hb, ha = before.host_to_guest, after.host_to_guest
    for reason in sorted(set(hb) | set(ha), key=lambda r: -(hb.get(r, 0) + ha.get(r, 0))):
        kb, ka = hb.get(reason, 0), ha.get(reason, 0)
        out.append(_row("ticks", f"host time charged to the guest after {reason} exits per 1k ticks", "rate",
                        1000 * kb / before.ticks if before.ticks else None, 1000 * ka / after.ticks if after.ticks else None,
                        rate_test(kb, before.ticks, ka, after.ticks), alpha))
    return out


def _guest(before: Side, after: Side, alpha: float) -> list[dict[str, Any]]:
    b, a = before.exits["guest_ns"].to_numpy(np.int64), after.exits["guest_ns"].to_numpy(np.int64)
    return _distribution("runs", "guest run time", b, a, alpha)


def _exit_reasons(before: Side, after: Side, alpha: float) -> list[dict[str, Any]]:
    """Per exit reason: count, share of runs, host handling time p50/p99/max."""
    out = []
    cb, ca = before.exits["reason"].value_counts(), after.exits["reason"].value_counts()
    for reason in sorted(set(cb.index) | set(ca.index), key=lambda r: -(cb.get(r, 0) + ca.get(r, 0))):
        nb, na = int(cb.get(reason, 0)), int(ca.get(reason, 0))
        g = f"exit {reason}"
        out.append(_row(g, "count", "count", nb, na, None, alpha))
        out.append(_row(g, "share of exits", "%", 100 * nb / before.runs if before.runs else None,
                        100 * na / after.runs if after.runs else None, rate_test(nb, before.runs, na, after.runs), alpha))
        hb = _host(before, reason)
        ha = _host(after, reason)
        out += _distribution(g, "host handling", hb, ha, alpha)
    return out


def _host(s: Side, reason: str) -> np.ndarray:
    h = s.exits.loc[(s.exits["reason"] == reason).to_numpy(bool), "host_ns"]
    return h.dropna().to_numpy(np.int64)
