"""What the trace shows of the kernel's path, per bug class: ``pre-fix``, ``fixed`` or ``unknown``.

Entry logic (apparent irqs-off windows, IRQs without RCU watching): the reworked (5.17+)
entry is proven by the noinstr enter/exit helper's irq_enable (``kvm_arm_vcpu_enter_exit``,
``vmx/svm_vcpu_enter_exit``) between kvm_entry and the guest; the old one by a
guest-spanning irqs-off window opened before kvm_entry, or by IRQ handlers inside the vCPU
thread's guest quiescent state. Tick accounting: where guest timing ends (``ticks``).
The overall verdict is ``pre-fix`` when any decidable class shows the pre-fix path,
``fixed`` when every decidable class shows the fixed one, else ``unknown``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..model import ticks as tk
from .base import MODEL_NEEDS, Analyzer, Context, Result, Whole, made_inferred
from .states import Confidence, Verdict

#: the bug classes, by finding kind, as the verdict names them
CLASSES = {"apparent_irqsoff": "apparent irqs-off windows", "rcu_not_watching": "IRQs without RCU watching",
           "misaccounted_tick": "guest tick accounting"}


def collect(ctx: Context) -> Result:
    """Runs this part of the trace owns, and those that show the reworked entry (with the helper's names)."""
    r, tl = ctx.runs, ctx.tl
    own = tl.owns(r.entry_pos)
    seen: dict[str, Any] = {"runs": int(own.sum()), "fixed_runs": 0, "callers": set()}
    if len(r.entry_pos) and ctx.has_any("irq_enable"):
        helper = tk.reworked_entry(tl, r.entry_pos, r.return_pos)
        fixed = (helper >= 0) & own
        seen["fixed_runs"] = int(fixed.sum())
        seen["callers"] = {str(c) for c in pd.unique(tl.caller[helper[fixed]].astype(object))} if fixed.any() else set()
    return Result("entry", metrics=seen)


def merge(parts: list[Result], whole: Whole) -> Result:
    """One trace's entry evidence from its parts."""
    seen = [p.metrics for p in parts]
    return Result("entry", metrics={"runs": sum(p["runs"] for p in seen), "fixed_runs": sum(p["fixed_runs"] for p in seen),
                                    "callers": set().union(*(p["callers"] for p in seen))})


def finish(parts: list[Result], whole: Whole) -> Result:
    """The verdicts (``metrics``: ``decide``'s document) from the other analyzers' settled results;
    the tick metrics get the proven count they were decided from."""
    got = whole.results
    apparent = got["irqsoff"].metrics.get("runs_in_apparent_windows")
    proven = {name: int((got[name].findings["confidence"] == Confidence.PROVEN).sum()) for name in ("irqsoff", "rcu", "ticks")}
    got["ticks"].metrics["misaccounted_proven"] = proven["ticks"]
    return Result("verdict", metrics=decide(
        got["entry"].metrics, None if apparent is None else proven["irqsoff"],
        {"proven": proven["rcu"], "metrics": got["rcu"].metrics}, got["ticks"].metrics,
        int(got["irqsoff"].metrics.get("unresolved_callers") or 0)))


def entry_logic(seen: dict[str, Any], apparent_runs: int | None) -> str:
    """The entry logic from its own signatures alone (what the RCU exposure fallback needs)."""
    if seen["fixed_runs"] and not apparent_runs:
        return Verdict.FIXED
    if apparent_runs and not seen["fixed_runs"]:
        return Verdict.PRE_FIX
    return Verdict.UNKNOWN


def decide(seen: dict[str, Any], apparent_runs: int | None, rcu: dict[str, Any], ticks: dict[str, Any],
           unresolved: int = 0) -> dict[str, Any]:
    """Per-class and overall verdicts, each with its evidence.

    ``rcu``: proven count and the RCU metrics (``guest_eqs``, ``source``); ``ticks``: the tick
    analysis' ``path``/``path_evidence`` metrics and its proven count (``misaccounted_proven``);
    ``unresolved``: irq_disable/irq_enable events whose caller is a raw address.
    """
    runs, fixed_runs = seen["runs"], seen["fixed_runs"]
    if not runs:
        why = "no paired guest runs (kvm_entry → kvm_exit) in the trace"
        return {"verdict": Verdict.UNKNOWN, "evidence": [why], "summary": why,
                "classes": {k: {"verdict": Verdict.UNKNOWN, "evidence": why} for k in CLASSES}}
    entry = []
    if fixed_runs:
        callers = sorted(seen["callers"])
        entry.append(f"{fixed_runs:,} of {runs:,} guest runs: irq_enable caller={'/'.join(callers)} right after kvm_entry "
                     "(guest_state_enter_irqoff, the reworked entry)")
        if any(c.startswith(("vmx_", "svm_")) for c in callers):
            entry.append("x86: kernels before 5.17 emit the same irq_enable (kvm_guest_enter_irqoff) and never showed "
                         "these two classes; this shows the guest runs with IRQs traced on, not the version")
    classes = {"apparent_irqsoff": _apparent(runs, fixed_runs, apparent_runs, entry, unresolved),
               "rcu_not_watching": _rcu(runs, fixed_runs, rcu),
               "misaccounted_tick": _ticks(ticks)}
    decided = [c["verdict"] for c in classes.values() if c["verdict"] != Verdict.UNKNOWN]
    overall = Verdict.PRE_FIX if Verdict.PRE_FIX in decided else Verdict.FIXED if decided else Verdict.UNKNOWN
    evidence = entry + [f"{CLASSES[k]}: {c['verdict']}: {c['evidence']}" for k, c in classes.items()]
    return {"verdict": overall, "evidence": evidence, "classes": classes, "summary": _summary(classes, ticks)}


def _apparent(runs: int, fixed_runs: int, apparent_runs: int | None, entry: list[str], unresolved: int) -> dict[str, str]:
    if apparent_runs is None:
        return {"verdict": Verdict.UNKNOWN, "evidence": "no preemptirq events: the entry logic cannot be told from the trace"}
    if apparent_runs and fixed_runs:
        return {"verdict": Verdict.UNKNOWN, "evidence": f"both signatures present ({apparent_runs} runs in a window opened "
                                                  f"before kvm_entry, {fixed_runs} reworked): mixed kernels or a misread trace"}
    if apparent_runs:
        return {"verdict": Verdict.PRE_FIX, "evidence": f"{apparent_runs} of {runs} guest runs inside an irqs-off window "
                                                  "opened before kvm_entry"}
    if fixed_runs:
        return {"verdict": Verdict.FIXED, "evidence": entry[0]}
    if unresolved:
        return {"verdict": Verdict.UNKNOWN, "evidence": f"{unresolved:,} irq_disable/irq_enable callers are raw addresses (no "
                                                  "kallsyms, or kptr_restrict): the entry logic cannot be read"}
    return {"verdict": Verdict.UNKNOWN, "evidence": "neither signature present"}


def _rcu(runs: int, fixed_runs: int, rcu: dict[str, Any]) -> dict[str, str]:
    proven, m = rcu["proven"], rcu["metrics"]
    if proven:
        return {"verdict": Verdict.PRE_FIX, "evidence": f"{proven} IRQ handlers inside the vCPU thread's guest RCU quiescent state"}
    if not m.get("source"):
        return {"verdict": Verdict.UNKNOWN, "evidence": "no rcu_dyntick/rcu_watching events: only exposure can be seen"}
    eqs = int(m.get("guest_eqs") or 0)
    if not eqs:
        return {"verdict": Verdict.UNKNOWN, "evidence": "no guest RCU quiescent state (no nohz_full vCPU CPU): "
                                                  "the trace cannot show this class"}
    if fixed_runs:
        return {"verdict": Verdict.FIXED, "evidence": f"{eqs:,} guest quiescent states, no IRQ handler inside any, "
                                                "reworked entry"}
    return {"verdict": Verdict.UNKNOWN, "evidence": f"{eqs:,} guest quiescent states without an IRQ inside, but the entry "
                                              "logic is not shown"}


def _ticks(ticks: dict[str, Any]) -> dict[str, str]:
    proven = ticks.get("misaccounted_proven", 0)
    if proven:
        return {"verdict": Verdict.PRE_FIX, "evidence": f"{proven:,} ticks that hit the guest were charged to the host; "
                                                  f"{ticks.get('path_evidence', '')}"}
    return {"verdict": ticks.get("path", Verdict.UNKNOWN), "evidence": ticks.get("path_evidence", "the tick analysis could not run")}


def _summary(classes: dict[str, dict[str, str]], ticks: dict[str, Any]) -> str:
    """One line naming what was observed, e.g. "reworked-style entry (apparent irqs-off, RCU);
    guest timing ends before the IRQ window (ticks, release 5.10.40)"."""
    a, r, t = (Verdict(classes[k]["verdict"]) for k in CLASSES)
    entry = {Verdict.FIXED: "reworked-style entry", Verdict.PRE_FIX: "pre-fix entry", Verdict.UNKNOWN: "entry logic not shown"}
    if r in (Verdict.UNKNOWN, a):
        parts = [f"{entry[a]} (apparent irqs-off{', RCU' if r == a else ''})"]
    else:
        parts = [f"{entry[a]} (apparent irqs-off)", f"{entry[r]} (RCU)"]
    rel = f", release {ticks['kernel_release']}" if ticks.get("kernel_release") else ""
    timing = {Verdict.FIXED: "guest timing ends after the host-IRQ window", Verdict.PRE_FIX: "guest timing ends before pending "
              "ticks are handled", Verdict.UNKNOWN: "where guest timing ends is not shown"}[t]
    parts.append(f"{timing} (ticks{rel})")
    return "; ".join(parts)


def contradicted(findings: pd.DataFrame, seen: dict[str, Any]) -> pd.DataFrame:
    """Apparent irqs-off findings made inferred when other runs of the same trace show the reworked
    entry's irq_enable: one kernel runs one entry path, so a run without that irq_enable more likely
    lost it (a deleted, dropped or cut line) than ran other code. Their proof would rest on an event's
    absence that the trace itself contradicts."""
    if not len(findings) or not seen.get("fixed_runs"):
        return findings
    return made_inferred(findings, (findings["kind"] == "apparent_irqsoff").to_numpy(bool),
                         f"{seen['fixed_runs']:,} of {seen['runs']:,} runs of this trace show the reworked entry's "
                         "irq_enable; its absence here may be a lost or deleted event")


#: the entry logic each run shows, which settles apparent irqs-off findings (``contradicted``)
ENTRY = Analyzer("entry", "guest runs showing the reworked entry's irq_enable", MODEL_NEEDS, merge, collect,
                 reported=False)
VERDICT = Analyzer("verdict", "pre-fix, fixed or unknown per bug class, and overall", {}, finish,
                   after=("irqsoff", "rcu", "ticks", "entry"), reported=False)
