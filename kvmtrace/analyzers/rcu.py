"""IRQs handled while RCU is not watching (bug 1).

The guest's quiescent state runs from the vCPU thread's task-level stop-watching
word to its start-watching word. Every hardirq handler a non-idle task runs in
between is flagged; handlers taken from idle's quiescent state are legitimate.
Without RCU events only exposure can be reported (arm64, nohz_full CPU, entry logic
not known to be fixed, IRQ between kvm_entry and kvm_exit), labelled ``inferred``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import rcu
from ..model.timeline import Cls, containing
from ..schema import na_below_zero
from .base import (MODEL_NEEDS, NOHZ_NEEDS, Analyzer, Context, Frame, Metric, Result, Whole, by_cpu, choose, concat, findings_frame,
                   first_undecidable, labels, needs, nohz_full_cpus, summed)
from .states import Confidence, Verdict
from .verdict import entry_logic

NEEDS_ANY_RCU = ("rcu_dyntick", "rcu_watching")
HANDLER_CLASSES = (Cls.HANDLER,)


class Rcu(Result):
    """Task-level RCU extended quiescent states (EQS).

    ``eqs``: every one: ``cpu``, ``pid``, ``comm``, ``start_ns``/``end_ns`` (RCU stopped and
    started watching), ``duration_ns``, ``stop_seq``, ``start_seq``, ``idle``. ``guest_eqs``: those
    a vCPU thread entered during a guest run, with ``run`` (NA: a run lost events broke,
    ``broken_run``). The metrics count handlers inside them (bug 1) and what the counters show.
    """

    eqs = Frame()
    guest_eqs = Frame()
    source = Metric[str | None](None)
    guest_quiescent_states = Metric(0, key="guest_eqs")
    handlers_in_guest_eqs = Metric(0)
    softirqs_in_guest_eqs = Metric(0)
    handlers_in_idle_eqs_legitimate = Metric(0)
    missed_transitions = Metric(0)
    counter_step = Metric[int | None](None)
    nohz_full_cpus = Metric[dict[str, str]]({})


def collect(ctx: Context) -> Result:
    """Handlers inside the guest quiescent states this part of the trace owns, and counters."""
    res = Result("rcu")
    tl = ctx.tl
    handlers = np.flatnonzero(tl.is_(*HANDLER_CLASSES) & ~tl.nmi)
    if not ctx.has_any(*NEEDS_ANY_RCU):
        return _exposure(ctx, res, handlers)
    guest = ctx.guest_eqs
    every, stats = ctx.eqs
    stop, start = guest["stop_pos"].to_numpy(), guest["start_pos"].to_numpy()  # RCU stops / starts watching
    inside = containing(tl, stop, start, handlers)  # the guest EQS each handler ran in, else −1
    busy = (inside >= 0) & (tl.pid[handlers] != 0)  # a non-idle task: an idle CPU's IRQs are legitimate
    hit, eqs_of_hit = handlers[busy], inside[busy]
    softirqs = np.flatnonzero(tl.cls == Cls.SOFTIRQ)
    soft_in = int(((containing(tl, stop, start, softirqs) >= 0) & (tl.pid[softirqs] != 0)).sum())
    idle_hits = int((rcu.idle_handlers(tl, handlers) & tl.owns(handlers)).sum())
    step = ctx.counter_step
    missed = rcu.missed_transitions(tl, step)
    # an EQS with missed transitions or a lost-events gap inside cannot prove anything
    missed_in = containing(tl, stop, start, missed)
    doubtful = np.zeros(len(stop), bool)
    doubtful[missed_in[missed_in >= 0]] = True
    doubtful |= np.isin(start, missed)  # the counter at the EQS's own end says transitions inside it went untraced
    doubtful |= tl.near_gap(tl.cpu[stop], tl.ts[stop], tl.ts[start])
    in_broken = guest["broken_run"].to_numpy(bool)
    conf = choose(Confidence.PROVEN, (doubtful[eqs_of_hit] | in_broken[eqs_of_hit], Confidence.INFERRED))
    why = choose("", (in_broken[eqs_of_hit], "lost events inside this guest run: the run is not fully traced"),
                 (doubtful[eqs_of_hit], "missed RCU transitions or lost events inside this quiescent state"))
    stop_hit, start_hit = stop[eqs_of_hit], start[eqs_of_hit]
    evidence = np.column_stack([tl.seq[stop_hit], tl.seq[hit], tl.seq[start_hit]])
    res.findings = findings_frame(
        "rcu_not_watching", conf, tl.cpu[hit], tl.pid[hit], tl.comm[hit], tl.ts[stop_hit], tl.ts[start_hit], evidence,
        "IRQ handler ran inside the vCPU thread's guest quiescent state, which it entered during a guest run "
        "(evidence: stop-watching, the handler, start-watching)",
        why)
    res.frames["guest_eqs"] = guest.drop(columns=["stop_pos", "start_pos"])
    res.frames["eqs"] = every.drop(columns=["stop_pos", "start_pos"])
    res.metrics = {
        "source": tl.rcu_event, **stats, "guest_eqs": int((~in_broken).sum()),
        "guest_eqs_in_broken_runs": int(in_broken.sum()), "handlers_in_guest_eqs": int(len(hit)),
        "softirqs_in_guest_eqs": soft_in, "handlers_in_idle_eqs_legitimate": idle_hits,
        "counter_step": step, "missed_transitions": int(tl.owns(missed).sum()),
    }
    return res


def finish(parts: list[Result], whole: Whole) -> Result:
    """Counts over the whole trace; without RCU events, exposure where the entry logic is not known fixed
    (from its own signatures: ``verdict.entry_logic``)."""
    res = Rcu("rcu")
    first_undecidable(parts, res)
    res.findings = concat([p.findings for p in parts])
    guest = by_cpu([p.frames.pop("guest_eqs", None) for p in parts])
    cpus = nohz_full_cpus(guest, whole.trace)
    verdict = entry_logic(whole.results["entry"].metrics, whole.results["irqsoff"].metrics.get("runs_in_apparent_windows"))
    nohz = {str(c): w for c, w in cpus.items()}
    if "eqs" not in parts[0].frames:  # no RCU events: exposure only
        found = res.findings
        keep = (verdict != Verdict.FIXED) & found["cpu"].isin(list(cpus)).to_numpy(bool) if len(found) else np.zeros(0, bool)
        res.findings = found[keep].reset_index(drop=True)
        if len(res.findings):
            res.findings["why"] = labels(f"no RCU events; entry logic {verdict}: exposure, not proof", len(res.findings))
        res.metrics = {"source": None, "nohz_full_cpus": nohz, "entry_logic": verdict,
                       "exposed_handlers": int(len(res.findings))}
        return res
    # NA: the run a lost-events gap broke (``broken_run``)
    res.frames["guest_eqs"] = guest.assign(run=na_below_zero(whole.run_of(guest["run"].to_numpy())))
    res.frames["eqs"] = by_cpu([p.frames.pop("eqs") for p in parts])
    res.metrics = summed(parts, same=("source", "counter_step"))
    res.metrics["nohz_full_cpus"] = nohz
    return res


def _exposure(ctx: Context, res: Result, handlers: np.ndarray) -> Result:
    """No RCU events: IRQs between kvm_entry and kvm_exit on arm64 (docs/kernel.md C.4: exposure,
    never proof). Which CPUs are nohz_full and whether the entry logic is fixed are known only for
    the whole trace: ``finish`` keeps those findings."""
    tl = ctx.tl
    r = ctx.runs
    res.cannot_decide("IRQs without RCU watching (bug 1): exposure only", list(NEEDS_ANY_RCU), ["rcu"])
    if not len(r.entry_pos):
        return res
    before = np.searchsorted(r.entry_pos, handlers) - 1  # the last run entered before each handler
    run_of = np.maximum(before, 0)
    arm64 = (r.frame["arch"] == "arm64").to_numpy()
    ok = (before >= 0) & (handlers < r.exit_pos[run_of]) & arm64[run_of] & (tl.pid[handlers] != 0) & tl.owns(handlers)
    hit, run = handlers[ok], before[ok]
    evidence = np.column_stack([tl.seq[r.entry_pos[run]], tl.seq[hit], tl.seq[r.exit_pos[run]]])
    res.findings = findings_frame(
        "rcu_not_watching", Confidence.INFERRED, tl.cpu[hit], tl.pid[hit], tl.comm[hit], tl.ts[r.entry_pos[run]],
        tl.ts[r.exit_pos[run]], evidence, "IRQ handled between kvm_entry and kvm_exit on a nohz_full CPU", "no RCU events: exposure, not proof")
    return res


ANALYZER = Analyzer("rcu", "IRQ handlers inside the vCPU thread's guest RCU quiescent state (bug 1)",
                    needs(MODEL_NEEDS, NOHZ_NEEDS), finish, collect, after=("exits", "irqsoff", "damage", "entry"))
