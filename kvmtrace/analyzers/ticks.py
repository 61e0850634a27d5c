"""Misaccounted guest ticks (bug 3), both directions.

Expected guest ticks became pending while a guest ran ([kvm_entry, guest return)).
A tick is charged to the guest when its handler runs in the first irqs-on window
after the guest returned and guest timing is still on (the pre-fix ``guest_exit()``
window, the fix's ``isb()`` window, x86's ``vcpu_enter_guest`` window). Ticks due in the guest but
charged to the host are the missing-ISB bug; ticks due after the guest returned
but charged to it are the pre-fix kernel taking pending IRQs before ``guest_exit()``.
Tick-accounted CPUs only: nohz_full CPUs account guest time by vtime.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import ticks as tk
from ..model.kernel import IRQ_EXIT_REASONS
from ..model.timeline import Cls
from .base import Context, Result, Whole, concat, findings_frame, first_undecidable

DIRECTIONS = {"guest_as_host": "tick due during the guest run was charged to the host (late, after guest timing ended)",
              "host_as_guest": "tick due after the guest returned was charged to the guest (taken before guest timing ended)"}


NEEDS = ("kvm_entry", "kvm_exit", "hrtimer_expire_entry")
GUEST = ("guest: caused the IRQ exit", "guest: by due time")


def collect(ctx: Context) -> Result:
    """What the timeline tells of each tick this part of the trace owns: its run, whether it caused
    or followed an exit, whether it ran in the guest-timing window. Due times, the delivery floor
    and the nohz_full CPUs need the whole trace and come in ``finish``."""
    res = Result("ticks")
    tr, tl, r = ctx.trace, ctx.tl, ctx.runs
    missing = [n for n in NEEDS if not ctx.has_any(n)]
    if missing:
        res.cannot_decide("expected and charged guest ticks", missing, ["kvm", "timer"])
        return res
    t = tk.tick_frame(tr)
    t = t[tl.owns(tl.pos_of(t["seq"].to_numpy()))].reset_index(drop=True)
    starts = tk.tick_starts(tr)
    res.frames["starts"] = starts[tl.owns(tl.pos_of(starts["seq"].to_numpy()))]
    pos = tl.pos_of(t["seq"].to_numpy())
    t.insert(4, "pid", tl.pid[pos])
    t.insert(5, "comm", tl.comm[pos])
    # the run each tick belongs to: the last kvm_entry before it on its CPU, up to the next entry
    j = np.searchsorted(r.entry_pos, pos) - 1
    jj = np.maximum(j, 0)
    if len(r.entry_pos):
        nxt = r.window_end[jj]
        in_run = (j >= 0) & (tl.cpu[r.entry_pos[jj]] == tl.cpu[pos]) & (pos < nxt)
    else:
        in_run, nxt = np.zeros(len(pos), bool), np.zeros(len(pos), np.int64)
    after_return = in_run & (pos > r.return_pos[jj]) if len(r.entry_pos) else in_run
    t["handled_in_run"] = r.key(np.where(in_run, j, -1))
    t["how"] = _how(ctx, pos, jj, after_return)
    t["run_of"] = r.key(np.where(in_run, jj, -1))
    t["charged_guest"] = after_return & _in_timing_window(tl, r, pos, jj, nxt)
    h = tk.handler_before(tl, pos)
    t["handler_ts"] = np.where(h >= 0, tl.ts[np.maximum(h, 0)], -1) if len(tl) else h
    res.frames["ticks"] = t
    return res


def finish(parts: list[Result], whole: Whole) -> Result:
    """Due times on the trace clock, pending time and direction of every tick on a vCPU CPU."""
    res = Result("ticks")
    if first_undecidable(parts, res):
        return res
    runs = whole.runs
    every = concat([p.frames["ticks"] for p in parts]).sort_values("seq", kind="stable").reset_index(drop=True)
    vcpu_cpus = set(int(c) for c in runs["cpu"].unique()) if len(runs) else set()
    t = every[every["cpu"].isin(vcpu_cpus)].reset_index(drop=True) if len(every) else every
    starts = concat([p.frames["starts"] for p in parts])
    clock = tk.estimate_clock(every, starts["expires"].to_numpy(np.int64) if len(starts) else np.zeros(0, np.int64))
    if clock is None or not len(t):
        res.metrics = {"ticks_on_vcpu_cpus": int(len(t))}
        res.cannot_decide("tick due times: too few tick expiries to estimate the tick clock", [], ["timer"])
        return res
    due = tk.due_ts(clock, t["now"].to_numpy(np.int64))
    delivery = tk.delivery_ns(t["handler_ts"].to_numpy(np.int64), due)
    how = np.array(t["how"].to_numpy(object), dtype=object)
    run_of = whole.run_of(t["run_of"].to_numpy())
    charged_guest = t["charged_guest"].to_numpy(bool)
    t = t.drop(columns=["how", "run_of", "charged_guest", "handler_ts"])
    t["due_ts"] = due
    t["pending_ts"] = t["due_ts"] + delivery  # best estimate of when its IRQ became pending
    t["handled_in_run"] = whole.run_of(t["handled_in_run"].to_numpy())
    _by_due_time(runs, t, how, run_of)
    t["pending"] = how
    t["pending_in_guest_run"] = np.where(np.isin(how, GUEST), run_of, -1)
    nohz = whole.nohz_full_cpus
    t["cpu_mode"] = np.where(t["cpu"].isin(list(nohz)), "nohz_full", "tick")
    t["charged"] = None
    t["direction"] = None
    if not any(n in whole.trace.event_names() for n in ("irq_disable", "irq_enable")):
        res.cannot_decide("which ticks were charged to the guest (needs the guest_exit irq toggles)",
                          ["irq_disable", "irq_enable"], ["preemptirq"])
    else:
        res.findings = _findings(t, runs, run_of, charged_guest, clock)
    res.frames["ticks"] = t
    res.frames["per_cpu"] = _per_cpu(t)
    res.metrics = {
        "tick_period_ns": clock.period_ns, "clock_offset_ns": clock.offset_ns, "due_uncertainty_ns": clock.uncertainty_ns,
        "irq_delivery_floor_ns": delivery,
        "ticks_on_vcpu_cpus": int(len(t)),
        "expected_guest_ticks": int((t["pending_in_guest_run"] >= 0).sum()),
        "charged_guest_ticks": int((t["charged"] == "guest").sum()) if t["charged"].notna().any() else None,
        "guest_as_host": int((t["direction"] == "guest_as_host").sum()),
        "host_as_guest": int((t["direction"] == "host_as_guest").sum()),
        "nohz_full_cpus_excluded": sorted(int(c) for c in nohz),
        "per_cpu": res.frames["per_cpu"].to_dict(orient="records"),
    }
    return res


def _findings(t: pd.DataFrame, runs: pd.DataFrame, run_of: np.ndarray, charged_guest: np.ndarray, clock) -> pd.DataFrame:
    """Sets ``charged`` and ``direction`` of each tick; the misaccounted ones as findings."""
    t["charged"] = np.where(charged_guest, "guest", "host")
    acc = (t["cpu_mode"] == "tick").to_numpy()
    guest = (t["pending_in_guest_run"] >= 0).to_numpy()
    t.loc[acc & guest & ~charged_guest, "direction"] = "guest_as_host"
    t.loc[acc & ~guest & charged_guest, "direction"] = "host_as_guest"
    bad = t[t["direction"].notna()]
    run = run_of[bad.index.to_numpy()]
    how = bad["pending"].to_numpy()
    arm64 = runs["arch"].to_numpy()[run] == "arm64" if len(run) else np.zeros(0, bool)
    # a tick not even due until after the guest returned cannot have been pending in it
    # (timers never fire early); the delivery-latency estimate proves nothing either way
    late = (how == "host: by due time") & (bad["due_ts"].to_numpy() - runs["return_ts"].to_numpy(np.int64)[run]
                                           > clock.uncertainty_ns)
    # "non-IRQ exit ⇒ pending after the guest" is exact where the kernel takes pending IRQs
    # only after IRQ exits (arm64); x86 opens that window after every exit by design
    proven = (how == "guest: caused the IRQ exit") | ((how == "host: the guest left by a non-IRQ exit") & arm64) | late
    ev = np.column_stack([runs[c].to_numpy(np.int64)[run] for c in ("entry_seq", "return_seq")]
                         + [bad["seq"].to_numpy(np.int64), runs["exit_seq"].to_numpy(np.int64)[run]]) \
        if len(run) else np.zeros((0, 4), np.int64)
    return findings_frame(
        "misaccounted_tick", np.where(proven, "proven", "inferred"), bad["cpu"], bad["pid"], bad["comm"].array,
        bad["pending_ts"], bad["ts"], ev, [DIRECTIONS[d] + f" ({p})" for d, p in zip(bad["direction"], bad["pending"])],
        np.where(proven, "", np.where(how == "host: the guest left by a non-IRQ exit",
                                      "x86 takes pending IRQs before guest timing ends after every exit, by design",
                                      "pending time estimated from the tick's due time; IRQ delivery latency is unknown")))


def _in_timing_window(tl, r, pos: np.ndarray, run: np.ndarray, next_entry: np.ndarray) -> np.ndarray:
    """Whether each tick ran in the first irqs-on window after its run's guest return, while
    guest timing was still on: that window closes with a task-level irq_disable and does not
    contain kvm_exit (arm64 and SVM print kvm_exit after guest timing ended; VMX prints it
    inside vmx_vcpu_run, before the window)."""
    ons, offs = tk.task_level_irq_on(tl), tk.task_level_irq_off(tl)
    if not len(ons) or not len(offs) or not len(r.entry_pos):
        return np.zeros(len(pos), bool)
    k = np.searchsorted(ons, r.return_pos[run], side="right")
    first_on = np.where(k < len(ons), ons[np.minimum(k, len(ons) - 1)], np.iinfo(np.int64).max)
    m = np.searchsorted(offs, np.minimum(first_on, len(tl)), side="right")
    close = np.where(m < len(offs), offs[np.minimum(m, len(offs) - 1)], np.iinfo(np.int64).max)
    exit_inside = (r.exit_pos[run] > first_on) & (r.exit_pos[run] < close)
    return (pos > first_on) & (pos < close) & ~exit_inside & (first_on < next_entry)


def _how(ctx: Context, pos: np.ndarray, run: np.ndarray, after_return: np.ndarray) -> np.ndarray:
    """When each tick's IRQ was pending, where the timeline alone decides it.

    A pending host IRQ forces the guest out with an IRQ exit. So a tick whose
    handler is the first one after an IRQ exit's return caused that exit (pending
    in the guest), and a tick handled after a non-IRQ exit's return became pending
    after the guest left. Other ticks fall back on their estimated pending time (``finish``).
    """
    tl, r = ctx.tl, ctx.runs
    irq_exit = r.frame["reason"].isin(IRQ_EXIT_REASONS).to_numpy() if len(r.frame) else np.zeros(0, bool)
    h = np.flatnonzero(tl.cls == Cls.HANDLER)
    own = h[np.maximum(np.searchsorted(h, pos, side="right") - 1, 0)] if len(h) else pos
    if len(h) and len(r.entry_pos):
        k = np.searchsorted(h, r.return_pos[run], side="right")
        first = np.where(k < len(h), h[np.minimum(k, len(h) - 1)], -1)  # none after the return: no match
    else:
        first = np.full(len(pos), -1)
    how = np.full(len(pos), "host: by due time", dtype=object)
    caused = after_return & irq_exit[run] & (own == first) if len(irq_exit) else np.zeros(len(pos), bool)
    later = after_return & ~irq_exit[run] if len(irq_exit) else np.zeros(len(pos), bool)
    how[caused] = "guest: caused the IRQ exit"
    how[later] = "host: the guest left by a non-IRQ exit"
    return how


def _by_due_time(runs: pd.DataFrame, t: pd.DataFrame, how: np.ndarray, run_of: np.ndarray) -> None:
    """The rest: pending in the guest run (on the tick's CPU) running at the estimated pending time."""
    rest = np.flatnonzero(how == "host: by due time")
    if not len(rest) or not len(runs):
        return
    ent, ret = runs["entry_ts"].to_numpy(np.int64), runs["return_ts"].to_numpy(np.int64)
    cpu = runs["cpu"].to_numpy()
    pend = t["pending_ts"].to_numpy()
    tcpu = t["cpu"].to_numpy()
    for c in np.unique(tcpu[rest]):
        on = np.flatnonzero(cpu == c)
        m = rest[tcpu[rest] == c]
        i = np.searchsorted(ent[on], pend[m], side="right") - 1
        ok = (i >= 0) & (pend[m] < ret[on[np.maximum(i, 0)]]) if len(on) else np.zeros(len(m), bool)
        how[m[ok]] = "guest: by due time"
        run_of[m[ok]] = on[i[ok]]


def _per_cpu(t: pd.DataFrame) -> pd.DataFrame:
    if not len(t):
        return pd.DataFrame(columns=["cpu", "mode", "ticks", "expected_guest", "charged_guest", "guest_as_host",
                                     "host_as_guest", "misaccounted_rate"])
    g = t.groupby("cpu")
    out = pd.DataFrame({
        "mode": g["cpu_mode"].first(), "ticks": g.size(),
        "expected_guest": g["pending_in_guest_run"].apply(lambda s: int((s >= 0).sum())),
        "charged_guest": g["charged"].apply(lambda s: int((s == "guest").sum()) if s.notna().any() else None),
        "guest_as_host": g["direction"].apply(lambda s: int((s == "guest_as_host").sum())),
        "host_as_guest": g["direction"].apply(lambda s: int((s == "host_as_guest").sum())),
    }).reset_index()
    out["misaccounted_rate"] = (out["guest_as_host"] + out["host_as_guest"]) / out["ticks"]
    return out
