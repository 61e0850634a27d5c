"""Per bug class: did the after-kernel fix it, make it worse, or change nothing we can show?"""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from .sides import DENOMINATOR, Side
from .stats import format_p, rate_test


class Change(StrEnum):
    """What a comparison says happened to one bug class (see ``decide``)."""

    FIXED = "fixed"
    REGRESSED = "regressed"
    UNCHANGED = "unchanged"
    UNDECIDABLE = "undecidable"


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _pct(r: float | None) -> str:
    return "–" if r is None else f"{100 * r:.3g}%"


def decide(kind: str, before: Side, after: Side, alpha: float) -> dict[str, Any]:
    """Verdict for one finding kind from proven counts, with the test and a reason.

    Counts and rates cover the traces of each side that could decide the kind;
    ``not_decided`` says why the others could not.

    ``fixed``: present before, absent after, and the drop is significant.
    ``regressed``: the rate rose significantly. ``unchanged``: anything else
    (absent on both sides, noise, or still present at a lower rate: not fixed).
    ``undecidable``: a side lacks the events to decide, or has no guest runs.
    """
    kb, ka = before.proven[kind], after.proven[kind]
    nb, na = before.denominator(kind), after.denominator(kind)
    out: dict[str, Any] = {"kind": kind, "before": kb, "after": ka, "denominator": DENOMINATOR[kind],
                           "n_before": nb, "n_after": na, "rate_before": _rate(kb, nb), "rate_after": _rate(ka, na),
                           "inferred_before": before.inferred[kind], "inferred_after": after.inferred[kind],
                           "test": "Fisher exact", "p_value": None,
                           "not_decided": {s.label: s.undecidable[kind] for s in (before, after) if kind in s.undecidable}}
    missing = {s.label: s.undecidable.get(kind, []) for s in (before, after) if not s.decided[kind]}
    if missing:
        return {**out, "verdict": Change.UNDECIDABLE,
                "why": "; ".join(f"{lbl}: {'; '.join(m)}" for lbl, m in missing.items())}
    empty = [s.label for s, n in ((before, nb), (after, na)) if n == 0]
    if empty:
        return {**out, "verdict": Change.UNDECIDABLE, "why": f"no {DENOMINATOR[kind]} in {' and '.join(empty)}"}
    t = rate_test(kb, nb, ka, na)
    out["p_value"] = t.p
    sig = t.significant(alpha)
    rb, ra = out["rate_before"], out["rate_after"]
    change = f"{_pct(rb)} → {_pct(ra)} of {DENOMINATOR[kind]} (p={format_p(t.p)})"
    if kb == 0 and ka == 0:
        return {**out, "verdict": Change.UNCHANGED, "why": "absent on both sides"}
    if ka == 0 and sig:
        return {**out, "verdict": Change.FIXED, "why": f"{kb:,} proven before, none after: {change}"}
    if ra > rb and sig:
        return {**out, "verdict": Change.REGRESSED, "why": f"rate rose {change}"}
    if ra < rb and sig:
        return {**out, "verdict": Change.UNCHANGED, "why": f"still present: rate fell {change} but not to zero"}
    return {**out, "verdict": Change.UNCHANGED, "why": f"no significant difference at alpha={alpha:g}: {change}"}
