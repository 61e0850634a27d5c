"""IRQs handled while RCU is not watching (bug 1).

The guest's quiescent state runs from the vCPU thread's task-level stop-watching
word to its start-watching word. Every hardirq handler a non-idle task runs in
between is flagged; handlers taken from idle's quiescent state are legitimate.
Without RCU events only exposure can be reported (arm64, nohz_full CPU, entry logic
not known to be fixed, IRQ between kvm_entry and kvm_exit), labelled ``inferred``.
"""
from __future__ import annotations

import numpy as np

from ..model import rcu
from ..model.timeline import Cls, containing
from .base import Context, Result, findings_frame, text

NEEDS_ANY_RCU = ("rcu_dyntick", "rcu_watching")
HANDLER_CLASSES = (Cls.HANDLER,)


def analyze(ctx: Context, verdict: str) -> Result:
    res = Result("rcu")
    tl = ctx.tl
    handlers = np.flatnonzero(tl.is_(*HANDLER_CLASSES) & ~tl.nmi)
    if not ctx.has_any(*NEEDS_ANY_RCU):
        return _exposure(ctx, res, handlers, verdict)
    g = ctx.guest_eqs
    q, stats = ctx.eqs
    sp, ep = g["stop_pos"].to_numpy(), g["start_pos"].to_numpy()
    k = containing(tl, sp, ep, handlers)
    hit = handlers[(k >= 0) & (tl.pid[handlers] != 0)]
    kk = k[(k >= 0) & (tl.pid[handlers] != 0)]
    soft = np.flatnonzero(tl.cls == Cls.SOFTIRQ)
    soft_in = int(((containing(tl, sp, ep, soft) >= 0) & (tl.pid[soft] != 0)).sum())
    m = q["idle"].to_numpy(bool)
    idle_hits = int((containing(tl, q["stop_pos"].to_numpy()[m], q["start_pos"].to_numpy()[m], handlers) >= 0).sum())
    step = rcu.counter_step(tl)
    missed = rcu.missed_transitions(tl, step)
    # an EQS with missed transitions or a lost-events gap inside cannot prove anything
    m_in = containing(tl, sp, ep, missed)
    doubtful = np.zeros(len(sp), bool)
    doubtful[m_in[m_in >= 0]] = True
    doubtful |= tl.near_gap(tl.cpu[sp], tl.ts[sp], tl.ts[ep])
    in_broken = g["broken_run"].to_numpy(bool)
    conf = np.where(doubtful[kk] | in_broken[kk], "inferred", "proven")
    why = np.where(in_broken[kk], "lost events inside this guest run: the run is not fully traced",
                   np.where(doubtful[kk], "missed RCU transitions or lost events inside this quiescent state", ""))
    ev = np.column_stack([tl.seq[sp[kk]], tl.seq[hit], tl.seq[ep[kk]]])
    res.findings = findings_frame(
        "rcu_not_watching", conf, tl.cpu[hit], tl.pid[hit], tl.comm[hit], tl.ts[sp[kk]], tl.ts[ep[kk]], ev,
        text("IRQ handler ran inside the vCPU thread's guest quiescent state (guest run ", g["run"].to_numpy()[kk], ")"),
        why)
    res.frames["guest_eqs"] = g
    res.frames["eqs"] = q
    res.metrics = {
        "source": tl.rcu_event, **stats, "guest_eqs": int((~in_broken).sum()),
        "guest_eqs_in_broken_runs": int(in_broken.sum()),
        "handlers_in_guest_eqs": int(len(hit)), "softirqs_in_guest_eqs": soft_in,
        "handlers_in_idle_eqs_legitimate": idle_hits,
        "counter_step": step, "missed_transitions": int(len(missed)),
        "nohz_full_cpus": {str(c): why_ for c, why_ in ctx.nohz_full_cpus.items()},
    }
    return res


def _exposure(ctx: Context, res: Result, handlers: np.ndarray, verdict: str) -> Result:
    """No RCU events: IRQs between kvm_entry and kvm_exit on nohz_full-looking arm64 CPUs whose
    entry logic is not known to be fixed (kernel-semantics.md C.4: exposure, never proof)."""
    tl = ctx.tl
    r = ctx.runs
    res.cannot_decide("IRQs without RCU watching (bug 1): exposure only",
                      list(NEEDS_ANY_RCU), ["rcu"])
    cpus = ctx.nohz_full_cpus
    res.metrics = {"source": None, "nohz_full_cpus": {str(c): w for c, w in cpus.items()}, "entry_logic": verdict}
    if verdict == "fixed" or not len(r.entry_pos) or not cpus:
        res.metrics["exposed_handlers"] = 0
        return res
    i = np.searchsorted(r.entry_pos, handlers) - 1
    j = np.maximum(i, 0)
    arm64 = (r.frame["arch"] == "arm64").to_numpy()
    ok = (i >= 0) & (handlers < r.exit_pos[j]) & arm64[j] & np.isin(tl.cpu[handlers], list(cpus)) & (tl.pid[handlers] != 0)
    h, run = handlers[ok], i[ok]
    ev = np.column_stack([tl.seq[r.entry_pos[run]], tl.seq[h], tl.seq[r.exit_pos[run]]])
    res.findings = findings_frame(
        "rcu_not_watching", "inferred", tl.cpu[h], tl.pid[h], tl.comm[h], tl.ts[r.entry_pos[run]], tl.ts[r.exit_pos[run]],
        ev, "IRQ handled between kvm_entry and kvm_exit on a nohz_full CPU",
        f"no RCU events; entry logic {verdict}: exposure, not proof")
    res.metrics["exposed_handlers"] = int(len(h))
    return res
