"""Which guest-entry logic the traced kernel runs: ``pre-fix``, ``fixed`` or ``unknown``.

Proof of the fix: irq_enable from the noinstr enter/exit helper
(``kvm_arm_vcpu_enter_exit``, ``vmx/svm_vcpu_enter_exit``) between kvm_entry and
the guest. Proof of the old logic: a guest-spanning irqs-off window opened before
kvm_entry, or IRQ handlers inside the vCPU thread's guest quiescent state.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..model.timeline import Cls
from .base import Context


def collect(ctx: Context) -> dict[str, Any]:
    """Runs this part of the trace owns, and those that show the fixed entry (with the helper's names)."""
    r, tl = ctx.runs, ctx.tl
    own = tl.owns(r.entry_pos)
    out: dict[str, Any] = {"runs": int(own.sum()), "fixed_runs": 0, "callers": set()}
    if len(r.entry_pos) and ctx.has_any("irq_enable"):
        # entry_path marks exactly the irq_enable events whose caller is an enter/exit helper
        on = np.flatnonzero((tl.cls == Cls.IRQ_ON) & tl.entry_path)
        k = np.searchsorted(on, r.entry_pos)
        nxt = np.where(k < len(on), on[np.minimum(k, max(len(on) - 1, 0))], -1) if len(on) else np.full(len(k), -1)
        fixed = (nxt > r.entry_pos) & (nxt < r.return_pos) & own
        out["fixed_runs"] = int(fixed.sum())
        out["callers"] = {str(c) for c in pd.unique(tl.caller[nxt[fixed]].astype(object))} if fixed.any() else set()
    return out


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One trace's evidence from its parts."""
    return {"runs": sum(p["runs"] for p in parts), "fixed_runs": sum(p["fixed_runs"] for p in parts),
            "callers": set().union(*(p["callers"] for p in parts))}


def decide(seen: dict[str, Any], apparent_runs: int | None, rcu_hits: int | None) -> dict[str, Any]:
    """The verdict from what the parts saw (``merge``) and the two bugs' proven counts."""
    runs, fixed_runs = seen["runs"], seen["fixed_runs"]
    out: dict[str, Any] = {"verdict": "unknown", "evidence": []}
    if not runs:
        out["evidence"].append("no paired guest runs (kvm_entry → kvm_exit) in the trace")
        return out
    if fixed_runs:
        callers = sorted(seen["callers"])
        out["evidence"].append(f"{fixed_runs} of {runs} guest runs: irq_enable caller={'/'.join(callers)} "
                               "right after kvm_entry (guest_state_enter_irqoff, the reworked entry)")
        if any(c.startswith(("vmx_", "svm_")) for c in callers):
            out["evidence"].append("x86: kernels before 5.17 emit the same irq_enable (kvm_guest_enter_irqoff) and never "
                                   "showed bugs 1 and 2; this shows the guest runs with IRQs traced on, not the version")
    pre = 0
    if apparent_runs:
        pre += apparent_runs
        out["evidence"].append(f"{apparent_runs} of {runs} guest runs inside an irqs-off window opened before kvm_entry")
    if rcu_hits:
        pre += rcu_hits
        out["evidence"].append(f"{rcu_hits} IRQ handlers inside the vCPU thread's guest RCU quiescent state")
    out["fixed_runs"], out["runs"] = fixed_runs, runs
    if fixed_runs and not pre:
        out["verdict"] = "fixed"
    elif pre and not fixed_runs:
        out["verdict"] = "pre-fix"
    elif pre and fixed_runs:
        out["evidence"].append("both signatures present: mixed kernels or a misread trace")
    elif apparent_runs is None:
        out["evidence"].append("no preemptirq events: the entry logic cannot be told from the trace")
    else:
        out["evidence"].append("neither signature present")
    return out
