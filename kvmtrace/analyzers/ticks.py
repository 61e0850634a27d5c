"""Misaccounted guest ticks (bug 3): a tick that hit the guest but was charged to the host.

A tick hit the guest when it fell due while the guest ran or caused its IRQ exit; it is
charged to the host when its handler ran after guest timing ended. Where guest timing
ends is read from the kernel's own sequence after the guest returns (``model.ticks.ExitPath``):

- arm64 before the rework (``local_irq_enable(); guest_exit();``, no ``isb()``): at the
  ``irq_disable`` of ``guest_exit()``'s ``local_irq_save``, which closes the window;
- arm64 5.17 (every exit) and ≥5.18 (IRQ exits only): at the ``irq_disable`` closing the
  ``local_irq_enable(); isb(); local_irq_disable()`` window; with no window, at the return;
- x86: after the host-IRQ window from 5.13 (5.12.8, 5.10.41), before it on 5.9 up to those.
  The events are the same either way, so the kernel release decides (``model.releases``).

Ticks due after the guest returned and handled while guest timing was still on are how the
kernels are built: they are counted per exit reason ("host time charged to the guest"), never
reported as findings. Tick-accounted CPUs only: nohz_full CPUs account guest time by vtime.
"""
from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from .. import uname
from ..model import releases
from ..model import ticks as tk
from ..model.kernel import IRQ_EXIT_REASONS
from ..schema import empty_frame, na_below_zero
from .damage import spans_damage
from .states import Confidence, Verdict
from .base import (MODEL_NEEDS, NOHZ_NEEDS, Analyzer, Context, Frame, Metric, Result, Whole, choose, concat, findings_frame,
                   first_undecidable, needs)

#: without these no tick can be placed against the guest runs
REQUIRED = ("kvm_entry", "kvm_exit", "hrtimer_expire_entry")



class Place(StrEnum):
    """Where a tick's handler ran, against its guest run (the tick frame's ``place``)."""

    IN_GUEST = "in the guest run"
    WINDOW = "in the host-IRQ window"
    AFTER_WINDOW = "after the host-IRQ window"
    NO_WINDOW = "after the guest returned, no window"
    HOST = "host code"


class Pending(StrEnum):
    """When a tick's IRQ was pending (``pending``): exact from the trace's order, or estimated."""

    CAUSED = "caused the IRQ exit"
    LEFT = "after the guest left (non-IRQ exit)"
    DUE_GUEST = "due in the guest (estimate)"
    DUE_HOST = "due after the guest returned (estimate)"


class Charged(StrEnum):
    """What a tick was charged to (``charged``): vtime on nohz_full CPUs, where ticks charge nothing."""

    GUEST = "guest"
    HOST = "host"
    VTIME = "vtime"
    UNKNOWN = "unknown"


#: a tick that hit the guest: it forced the IRQ exit, or fell due while the guest ran
HIT_GUEST = (Pending.CAUSED, Pending.DUE_GUEST)

WHY_ESTIMATE = "pending time estimated from the tick's due time; IRQ delivery latency is unknown"
WHY_GUARANTEED = ("the host-IRQ window after this exit takes every IRQ pending at the exit (isb() on arm64, "
                  "sti on x86); a tick handled after it became pending later or was delivered late")
WHY_UNSEEN = "the KVM_RUN loop's irq toggles after this run were not seen (callers unresolved or events missing)"
WHY_REASON = "the exit reason could not be decoded"


class Ticks(Result):
    """Ticks on the vCPU CPUs and where each was charged (bug 3).

    ``ticks``: one row per tick expiry: ``seq``, ``cpu``, ``ts``, ``now`` (its hrtimer clock),
    ``pid``, ``comm``, ``run_of`` (the guest run it belongs to; NA: none), ``place`` (where its
    handler ran against that run), ``caused_exit``, ``after_non_irq_exit``, ``reworked_entry``,
    ``path_seen``, ``due_ns`` and ``pending_ns`` (estimated in trace time), ``pending`` (when its
    IRQ was pending), ``cpu_mode`` (``tick`` or ``nohz_full``), ``charged`` (``guest``, ``host``,
    ``vtime``, ``unknown``), ``misaccounted``, ``host_charged_to_guest``. ``per_cpu``: ``mode``,
    ``ticks``, ``expected_guest``, ``charged_guest`` (NA: undecided), ``misaccounted``,
    ``host_charged_to_guest`` per CPU.
    """

    ticks = Frame()
    per_cpu = Frame()
    ticks_on_vcpu_cpus = Metric(0)
    charged_guest_ticks = Metric[int | None](None)
    misaccounted_ticks = Metric(0)
    tick_period_ns = Metric(0)
    clock_offset_ns = Metric(0)
    due_uncertainty_ns = Metric(0)
    path = Metric(Verdict.UNKNOWN)
    path_evidence = Metric("")
    host_time_charged_to_guest = Metric(0)
    host_time_charged_to_guest_by_exit = Metric[dict[str, int]]({})


def collect(ctx: Context) -> Result:
    """Where each tick this part of the trace owns ran relative to its guest run, and whether it
    caused that run's IRQ exit. Due times, charging and findings need the whole trace (``finish``)."""
    res = Result("ticks")
    trace, tl, runs = ctx.trace, ctx.tl, ctx.runs
    missing = [n for n in REQUIRED if not ctx.has_any(n)]
    if missing:
        res.cannot_decide("expected and charged guest ticks", missing, ["kvm", "timer"])
        return res
    ticks = tk.tick_frame(trace)
    ticks = ticks[tl.owns(tl.pos_of(ticks["seq"].to_numpy()))].reset_index(drop=True)
    starts = tk.tick_starts(trace)
    res.frames["starts"] = starts[tl.owns(tl.pos_of(starts["seq"].to_numpy()))]
    pos = tl.pos_of(ticks["seq"].to_numpy())
    ticks.insert(4, "pid", tl.pid[pos])
    ticks.insert(5, "comm", tl.comm[pos])
    n = len(pos)
    place = np.full(n, Place.HOST, dtype=object)
    caused = left = np.zeros(n, bool)
    run = np.full(n, -1, np.int64)
    reworked = seen = np.zeros(n, bool)
    handler = tk.handler_before(tl, pos)  # the IRQ handler each tick ran in
    if len(runs.entry_pos):
        # the run each tick belongs to: the last kvm_entry before it on its CPU, up to the next entry
        last = np.maximum(np.searchsorted(runs.entry_pos, pos) - 1, 0)
        in_run = (np.searchsorted(runs.entry_pos, pos) > 0) & (tl.cpu[runs.entry_pos[last]] == tl.cpu[pos]) & \
            (pos < runs.window_end[last])
        run = np.where(in_run, last, -1)
        path = tk.exit_path(tl, runs.return_pos, runs.exit_pos, runs.window_end)
        opens, closes = path.open_pos[last], path.close_pos[last]  # the run's host-IRQ window
        after = in_run & (pos > runs.return_pos[last])
        place[in_run] = Place.IN_GUEST
        place[after] = Place.NO_WINDOW
        place[after & (opens >= 0) & (pos > opens) & (pos < closes)] = Place.WINDOW
        place[after & (opens >= 0) & (pos > closes)] = Place.AFTER_WINDOW
        reason = runs.frame["reason"].to_numpy(object)[last]
        irq_exit = np.isin(reason, list(IRQ_EXIT_REASONS))
        caused = after & irq_exit & (handler >= 0) & (handler == path.first_handler[last])
        left = after & ~irq_exit & (reason != "?")
        reworked = tk.reworked_entry(tl, runs.entry_pos, runs.return_pos)[last] >= 0
        # a reworked entry opens the window after IRQ exits: kvm_exit inside it means its close was lost
        seen = path.seen[last] & ~(irq_exit & reworked & path.exit_inside[last])
    ticks["run_of"] = runs.key(run)
    ticks["place"] = place
    ticks["caused_exit"], ticks["after_non_irq_exit"] = caused, left
    ticks["reworked_entry"], ticks["path_seen"] = reworked & (run >= 0), seen & (run >= 0)
    ticks["handler_ns"] = np.where(handler >= 0, tl.ts[np.maximum(handler, 0)], -1) if len(tl) else handler
    res.frames["ticks"] = ticks
    own_runs = tl.owns(runs.entry_pos)
    res.metrics = {"kvm_exit_undecoded": int(((runs.frame["reason"] == "?").to_numpy() & own_runs).sum())
                   if len(runs.frame) else 0}
    return res


def finish(parts: list[Result], whole: Whole) -> Result:
    """Due times, charging and findings of every tick on a vCPU CPU."""
    res = Ticks("ticks")
    if first_undecidable(parts, res):
        return res
    runs = whole.runs
    every = concat([p.frames["ticks"] for p in parts]).sort_values("seq", kind="stable").reset_index(drop=True)
    vcpu_cpus = set(int(c) for c in runs["cpu"].unique()) if len(runs) else set()
    ticks = every[every["cpu"].isin(vcpu_cpus)].reset_index(drop=True) if len(every) else every
    starts = concat([p.frames["starts"] for p in parts])
    clock = tk.estimate_clock(every, starts["expires"].to_numpy(np.int64) if len(starts) else np.zeros(0, np.int64))
    undecoded = sum(p.metrics.get("kvm_exit_undecoded", 0) for p in parts)
    if clock is None or not len(ticks):
        why = (f"{len(every)} tick expiries in the trace, {len(ticks)} on the vCPU CPUs: too few to place the tick "
               "clock (two ticks apart on one CPU are needed)") if whole.trace.has("hrtimer_expire_entry") else \
            "no tick expiries (hrtimer_expire_entry of the tick timer) in the trace"
        res.metrics = {"ticks_on_vcpu_cpus": int(len(ticks)), "path": Verdict.UNKNOWN, "path_evidence": why}
        if whole.trace.has("hrtimer_expire_entry"):  # the events are recorded: the capture is too short
            res.cannot_decide(f"tick due times: {why}", [], [], record="a longer capture (several tick periods)")
        else:
            res.cannot_decide(f"tick due times: {why}", ["hrtimer_expire_entry"], ["timer"])
        return res
    due = tk.due_ns(clock, ticks["now"].to_numpy(np.int64))
    delivery = tk.delivery_ns(ticks["handler_ns"].to_numpy(np.int64), due)
    run_of = whole.run_of(ticks["run_of"].to_numpy())
    ticks = ticks.drop(columns=["handler_ns"])
    ticks["due_ns"] = due
    ticks["pending_ns"] = due + delivery  # best estimate of when its IRQ became pending
    ticks["run_of"] = run_of
    ticks["pending"] = _pending(runs, ticks)
    nohz = whole.nohz_full_cpus
    ticks["cpu_mode"] = np.where(ticks["cpu"].isin(list(nohz)), "nohz_full", "tick")
    release_text = whole.release_given
    release = uname.parse(release_text)
    x86_guest, x86_why = releases.x86_window_is_guest_time(release)
    arch = runs["arch"].to_numpy(object)[np.maximum(run_of, 0)] if len(runs) else np.full(len(ticks), None, object)
    arch[run_of < 0] = None  # a tick outside every run
    preemptirq = all(n in whole.trace.event_names() for n in ("irq_disable", "irq_enable"))  # one alone: damage
    ticks["charged"] = _charged(ticks, arch, x86_guest) if preemptirq else Charged.UNKNOWN
    ticks.loc[ticks["cpu_mode"] == "nohz_full", "charged"] = Charged.VTIME
    tickacc = (ticks["cpu_mode"] == "tick").to_numpy()
    ticks["misaccounted"] = tickacc & ticks["pending"].isin(HIT_GUEST).to_numpy() & ticks["charged"].isin([Charged.HOST, Charged.UNKNOWN]).to_numpy()
    ticks["host_charged_to_guest"] = tickacc & ticks["pending"].isin([Pending.LEFT, Pending.DUE_HOST]).to_numpy() & (ticks["charged"] == Charged.GUEST).to_numpy()
    if not preemptirq:
        res.cannot_decide("which ticks were charged to the guest (needs the KVM_RUN loop's irq toggles)",
                          ["irq_disable", "irq_enable"], ["preemptirq"])
    res.findings = _findings(ticks, runs, arch, x86_why)
    res.frames["per_cpu"] = _per_cpu(ticks)
    path, evidence = _path(ticks, arch, x86_guest, x86_why, preemptirq, _damaged_runs(whole)[run_of])
    by_exit = ticks[ticks["host_charged_to_guest"]].merge(runs[["run", "reason"]], left_on="run_of", right_on="run", how="left")
    res.metrics = {
        "tick_period_ns": clock.period_ns, "clock_offset_ns": clock.offset_ns, "due_uncertainty_ns": clock.uncertainty_ns,
        "irq_delivery_floor_ns": delivery,
        "ticks_on_vcpu_cpus": int(len(ticks)),
        "expected_guest_ticks": int((tickacc & ticks["pending"].isin(HIT_GUEST).to_numpy()).sum()),
        "charged_guest_ticks": int((ticks["charged"] == Charged.GUEST).sum()) if preemptirq else None,
        "misaccounted_ticks": int(ticks["misaccounted"].sum()),
        "host_time_charged_to_guest": int(ticks["host_charged_to_guest"].sum()),
        "host_time_charged_to_guest_by_exit": {str(k): int(v) for k, v in by_exit["reason"].value_counts().items() if v},
        "kernel_release": release.text if release else release_text,
        "kvm_exit_undecoded": undecoded,
        "path": path, "path_evidence": evidence,
        "nohz_full_cpus_excluded": sorted(int(c) for c in nohz),
        "per_cpu": res.frames["per_cpu"].to_dict(orient="records"),
    }
    res.frames["ticks"] = _typed(ticks)
    return res


#: the tick frame's label columns (what each tick's pending time, charging, CPU and place are)
LABELS = ("pending", "charged", "cpu_mode", "place")


def _typed(ticks: pd.DataFrame) -> pd.DataFrame:
    """The tick frame as notebooks get it: labels categorical, ``run_of`` NA outside every run."""
    return ticks.assign(run_of=na_below_zero(ticks["run_of"].to_numpy()),
                        **{c: pd.Categorical(ticks[c].astype(str)) for c in LABELS if c in ticks.columns})


def _pending(runs: pd.DataFrame, ticks: pd.DataFrame) -> np.ndarray:
    """When each tick's IRQ was pending: exact where the trace's order decides it (a pending host IRQ
    forces an IRQ exit, whose first handler it is; after a non-IRQ exit it came later), else from
    its estimated pending time against the guest runs on its CPU."""
    how = np.where(ticks["caused_exit"], Pending.CAUSED, np.where(ticks["after_non_irq_exit"], Pending.LEFT, Pending.DUE_HOST)).astype(object)
    rest = np.flatnonzero(how == Pending.DUE_HOST)
    if not len(rest) or not len(runs):
        return how
    ent, ret = runs["entry_ns"].to_numpy(np.int64), runs["return_ns"].to_numpy(np.int64)
    # a run that ended by a non-IRQ exit had no host IRQ pending: an estimate inside it is wrong
    irq_exit = runs["reason"].isin(list(IRQ_EXIT_REASONS) + ["?"]).to_numpy()
    cpu, pend, tcpu = runs["cpu"].to_numpy(), ticks["pending_ns"].to_numpy(), ticks["cpu"].to_numpy()
    for c in np.unique(tcpu[rest]):
        cpu_runs = np.flatnonzero(cpu == c)
        mine = rest[tcpu[rest] == c]  # this CPU's ticks still undecided
        if not len(cpu_runs):
            continue
        before = np.searchsorted(ent[cpu_runs], pend[mine], side="right") - 1  # the run entered before it fell due
        run = cpu_runs[np.maximum(before, 0)]
        how[mine[(before >= 0) & (pend[mine] < ret[run]) & irq_exit[run]]] = Pending.DUE_GUEST
    return how


def _charged(ticks: pd.DataFrame, arch: np.ndarray, x86_guest: bool | None) -> np.ndarray:
    """guest / host / unknown per tick, from where its handler ran and where guest timing ends."""
    place = ticks["place"].to_numpy(object)
    out = np.full(len(ticks), Charged.HOST, dtype=object)
    window_charge = np.where(arch == "arm64", Charged.GUEST,
                             np.where(arch == "x86", {True: Charged.GUEST, False: Charged.HOST, None: Charged.UNKNOWN}[x86_guest], Charged.UNKNOWN))
    out[place == Place.IN_GUEST] = Charged.GUEST
    out[place == Place.WINDOW] = window_charge[place == Place.WINDOW]
    after = np.isin(place, [Place.AFTER_WINDOW, Place.NO_WINDOW])
    out[after & ~ticks["path_seen"].to_numpy(bool)] = Charged.UNKNOWN
    return out


def _findings(ticks: pd.DataFrame, runs: pd.DataFrame, arch: np.ndarray, x86_why: str) -> pd.DataFrame:
    """Ticks that hit the guest and were (or may have been) charged to the host."""
    bad = ticks[ticks["misaccounted"]]
    idx = bad.index.to_numpy()
    run = bad["run_of"].to_numpy(np.int64)
    place, how, charged = bad["place"].to_numpy(object), bad["pending"].to_numpy(object), bad["charged"].to_numpy(object)
    a = arch[idx]
    # the window takes every IRQ pending at the exit, except on the pre-fix arm64 path (no isb())
    guaranteed = (a == "x86") | ((a == "arm64") & bad["reworked_entry"].to_numpy(bool))
    why = np.full(len(bad), "", dtype=object)
    why[how == Pending.DUE_GUEST] = WHY_ESTIMATE
    why[(place == Place.AFTER_WINDOW) & guaranteed & (why == "")] = WHY_GUARANTEED
    why[(charged == Charged.UNKNOWN) & (place == Place.WINDOW) & (a == "x86") & (why == "")] = x86_why
    why[(charged == Charged.UNKNOWN) & (why == "")] = np.where(a[(charged == Charged.UNKNOWN) & (why == "")] == None,  # noqa: E711
                                                         WHY_REASON, WHY_UNSEEN)
    proven = why == ""
    ok = run >= 0
    r = np.maximum(run, 0)

    def seqs(col: str) -> np.ndarray:
        return np.where(ok, runs[col].to_numpy(np.int64)[r], -1) if len(runs) else np.full(len(bad), -1)
    ev = np.column_stack([seqs("entry_seq"), seqs("return_seq"), bad["seq"].to_numpy(np.int64), seqs("exit_seq")]) \
        if len(bad) else np.zeros((0, 4), np.int64)
    detail = [f"tick that hit the guest ({p}) was charged to the host: handled {w}, after guest timing ended"
              if c == Charged.HOST else f"tick that hit the guest ({p}) handled {w}: charged to the guest or the host"
              for p, w, c in zip(how, place, charged)]
    return findings_frame("misaccounted_tick", choose(Confidence.INFERRED, (proven, Confidence.PROVEN)), bad["cpu"], bad["pid"],
                          bad["comm"].array, bad["pending_ns"], bad["ts"], ev, detail, why)


def _damaged_runs(whole: Whole) -> np.ndarray:
    """Per run: damage between its kvm_entry and kvm_exit, where the entry's and the exit's code
    path show (a lost irq_enable there makes a reworked entry look like the old one). One extra
    False last: run −1, a tick outside every run."""
    runs = whole.runs
    if not len(runs):
        return np.zeros(1, bool)
    return np.append(spans_damage(runs["cpu"].to_numpy(np.int64), runs["entry_seq"].to_numpy(np.int64),
                                  runs["exit_seq"].to_numpy(np.int64), whole.results["damage"].frames["damaged"]), False)


def _path(ticks: pd.DataFrame, arch: np.ndarray, x86_guest: bool | None, x86_why: str,
          preemptirq: bool, damaged: np.ndarray) -> tuple[Verdict, str]:
    """What the trace shows of where guest timing ends on its tick-accounted vCPU CPUs (the
    verdict adds the proven findings: ``verdict.decide``). ``damaged``: per tick, its run holds
    damage, so its entry path is not read from it."""
    acc = (ticks["cpu_mode"] == "tick").to_numpy() & (ticks["run_of"] >= 0).to_numpy()
    if not acc.any():
        return Verdict.UNKNOWN, "no tick-accounted vCPU CPU with guest runs (nohz_full CPUs account guest time by vtime)"
    if not preemptirq:
        return Verdict.UNKNOWN, "no preemptirq events: where guest timing ends cannot be seen"
    a = arch[acc]
    seen = ticks["path_seen"].to_numpy(bool)[acc] & ~damaged[acc]
    rew = ticks["reworked_entry"].to_numpy(bool)[acc]
    if (a == "arm64").any():
        old = int(((a == "arm64") & seen & ~rew).sum())
        new = int(((a == "arm64") & seen & rew).sum())
        if old and new:  # one kernel runs one entry: the runs without the helper's irq_enable lost it
            return Verdict.UNKNOWN, (f"both entry paths around ticks ({new} ticks after the reworked entry, {old} after "
                                     "one without its irq_enable): mixed kernels or lost events")
        if old:
            return Verdict.PRE_FIX, (f"guest timing ends in guest_exit() after a local_irq_enable() with no isb() "
                               f"(around {old} ticks): a tick pending at the exit may be charged to the host")
        if new:
            return Verdict.FIXED, "guest timing ends after the isb() window that follows IRQ exits"
        return Verdict.UNKNOWN, WHY_UNSEEN if not damaged[acc].any() else \
            "the guest runs around the ticks hold damaged or missing events: their exit path is not read"
    if (a == "x86").any():
        return {True: Verdict.FIXED, False: Verdict.PRE_FIX, None: Verdict.UNKNOWN}[x86_guest], x86_why
    return Verdict.UNKNOWN, WHY_REASON


def _per_cpu(ticks: pd.DataFrame) -> pd.DataFrame:
    """Per CPU: its mode, ticks, those that hit the guest, charged to it (NA where undecided), misaccounted."""
    cols = ["cpu", "mode", "ticks", "expected_guest", "charged_guest", "misaccounted", "host_charged_to_guest"]
    if not len(ticks):
        return empty_frame({"cpu": np.int32, "mode": "category", **{c: np.int64 for c in cols[2:]}, "charged_guest": "Int64"})
    g = ticks.assign(hit=ticks["pending"].isin(HIT_GUEST) & (ticks["cpu_mode"] == "tick"), guest=ticks["charged"] == Charged.GUEST,
                 known=ticks["charged"] != Charged.UNKNOWN).groupby("cpu")
    out = pd.DataFrame({
        "mode": pd.Categorical(g["cpu_mode"].first()), "ticks": g.size(), "expected_guest": g["hit"].sum(),
        "charged_guest": g["guest"].sum().astype("Int64").where(g["known"].all(), pd.NA),
        "misaccounted": g["misaccounted"].sum(), "host_charged_to_guest": g["host_charged_to_guest"].sum(),
    }).reset_index()
    return out[cols]


#: the per-CPU tick table as the CLI and the report print it
TICK_HEADER = ["cpu", "mode", "ticks", "hit the guest", "charged guest", "misaccounted (bug 3)", "host time charged to guest"]


def tick_rows(per_cpu: pd.DataFrame) -> list[list]:
    """Rows of ``TICK_HEADER`` from the ``per_cpu`` frame (charged guest is blank where undecided)."""
    return [[int(r.cpu), r.mode, int(r.ticks), int(r.expected_guest),
             None if pd.isna(r.charged_guest) else int(r.charged_guest),
             int(r.misaccounted), int(r.host_charged_to_guest)] for r in per_cpu.itertuples()]


ANALYZER = Analyzer("ticks", "each tick on a vCPU CPU placed against the guest runs: charged to the guest or the host "
                    "(bug 3)", needs(MODEL_NEEDS, tk.READS, NOHZ_NEEDS), finish, collect,
                    after=("exits", "rcu", "damage", "entry"), cost=1.5)
