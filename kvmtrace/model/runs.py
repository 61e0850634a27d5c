"""Guest runs (kvm_entry → kvm_exit on one CPU) and exit windows (kvm_exit → next kvm_entry).

A run is paired only when its kvm_entry is directly followed, among that CPU's
kvm_entry/kvm_exit events, by a kvm_exit of the same thread with no lost-events
gap between them; everything else is counted as unpaired, never mispaired.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..trace import Trace
from ..schema import empty_frame
from ..seqindex import SeqIndex
from .timeline import Cls, Timeline, alternating, near_gap

_BRACKETS = (Cls.RCU_OPEN, Cls.RCU_CLOSE)


@dataclass
class Runs:
    """Guest runs, one row each, plus what could not be paired."""

    frame: pd.DataFrame
    entry_pos: np.ndarray
    return_pos: np.ndarray
    exit_pos: np.ndarray
    unpaired: dict[str, int] = field(default_factory=dict)
    #: per run, the end of its exit window on its CPU: the CPU's next kvm_entry, else its last event + 1
    window_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: runs a lost-events gap falls into: not analyzed, but findings there are reported as inferred
    broken_entry_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    broken_exit_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def key(self, run: np.ndarray) -> np.ndarray:
        """A run's name that holds across chunks of a trace: the seq of its kvm_entry (−1 stays −1).
        Analyzers refer to runs by key; ``pipeline.finish`` turns keys into run numbers."""
        run = np.asarray(run, dtype=np.int64)
        seq = self.frame["entry_seq"].to_numpy(np.int64) if len(self.frame) else np.zeros(1, np.int64)
        return np.where(run >= 0, seq[np.maximum(run, 0)], -1) if len(run) else np.zeros(0, np.int64)


def _first_at_or_after(sorted_pos: np.ndarray, at: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    i = np.searchsorted(sorted_pos, at)
    ok = i < len(sorted_pos)
    out = fallback.copy()
    out[ok] = np.minimum(sorted_pos[i[ok]], fallback[ok])
    return out


def _guest_return(tl: Timeline, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """Position of the first host event after the guest ran, for each run.

    The guest-entry code emits a known set of events after kvm_entry (see
    ``Timeline.entry_path``); RCU nesting brackets belong to the tracepoint they
    surround. The guest return is the first event after the last entry-path event
    (and its closing bracket) that precedes the first ordinary host event.
    """
    host = np.flatnonzero(~tl.entry_path & ~tl.is_(*_BRACKETS))
    first_host = _first_at_or_after(host, entry + 1, exit_)
    epos = np.flatnonzero(tl.entry_path)
    i = np.searchsorted(epos, first_host) - 1
    last_e = np.where(i >= 0, epos[np.maximum(i, 0)], entry) if len(epos) else entry  # no entry-path events at all
    last_e = np.maximum(last_e, entry)
    ret = last_e + 1
    for _ in range(4):  # closing brackets of the last entry-path tracepoint
        more = (ret < first_host) & (tl.cls[np.minimum(ret, len(tl) - 1)] == Cls.RCU_CLOSE)
        if not more.any():
            break
        ret = ret + more
    return np.minimum(ret, exit_)


#: what the guest runs read besides the timeline: each exit's reason (arm64 type and exception
#: class, x86 reason)
READS: dict[str, tuple[str, ...]] = {"kvm_exit": ("exit_type", "esr_ec", "esr_ec_class", "reason")}


def _exit_reason(tr: Trace, seq: np.ndarray) -> pd.DataFrame:
    """Exit reason per kvm_exit seq: arm64 exception class (TRAP) or type; x86 reason."""
    got = tr.fields("kvm_exit", list(READS["kvm_exit"]))
    # fields come in table order, which is seq order unless the text was out of time order
    at = SeqIndex(got["seq"].to_numpy(np.int64))[seq]
    d = got.iloc[np.maximum(at, 0)].reset_index(drop=True) if len(got) else got.reindex(range(len(seq)))
    out = pd.DataFrame(index=range(len(seq)))
    if "exit_type" in d.columns:  # arm64
        typ = d["exit_type"].astype(object)
        ec = d["esr_ec_class"].astype(object) if "esr_ec_class" in d.columns else pd.Series(None, index=d.index)
        out["exit_type"] = typ.to_numpy()
        out["esr_ec"] = d["esr_ec"].array if "esr_ec" in d.columns else pd.array([pd.NA] * len(d), dtype="Int64")
        out["reason"] = np.where(typ.to_numpy() == "TRAP", ec.to_numpy(), typ.to_numpy())
        out["arch"] = "arm64"
    elif "reason" in d.columns:  # x86
        out["reason"] = d["reason"].astype(object).to_numpy()
        out["arch"] = "x86"
    else:
        out["reason"] = None
        out["arch"] = "unknown"
    out["reason"] = out["reason"].where(out["reason"].notna(), "?").astype(str)
    for c in ("exit_type", "reason", "arch"):  # a handful of values over a huge trace's runs
        if c in out.columns:
            out[c] = out[c].astype("category")
    return out


def pair(tr: Trace, tl: Timeline) -> Runs:
    """Pair kvm_entry → kvm_exit per CPU and find each run's guest return."""
    p = alternating(tl, Cls.ENTRY, Cls.EXIT, same_pid=True)
    is_entry, cand = p.is_open, p.paired
    entry, exit_ = p.open_pos, p.close_pos
    broken = tl.near_gap(tl.cpu[entry], tl.ts[entry], tl.ts[exit_])
    closes = np.zeros(len(p.pos), bool)
    closes[np.flatnonzero(cand) + 1] = True
    own = tl.owns(p.pos)  # each event is counted by the part of the trace that owns it
    unpaired = {
        "entries_without_exit": int((is_entry & ~cand & own).sum()),
        "exits_without_entry": int((~is_entry & ~closes & own).sum()),
        "runs_broken_by_lost_events": int((broken & tl.owns(entry)).sum()),
    }
    broken_entry, broken_exit = entry[broken], exit_[broken]
    entry, exit_ = entry[~broken], exit_[~broken]
    ret = _guest_return(tl, entry, exit_)
    f = pd.DataFrame({
        "run": np.arange(len(entry)), "cpu": tl.cpu[entry], "pid": tl.pid[entry], "comm": tl.comm[entry],
        "entry_ns": tl.ts[entry], "return_ns": tl.ts[ret], "exit_ns": tl.ts[exit_],
        "entry_seq": tl.seq[entry], "return_seq": tl.seq[ret], "exit_seq": tl.seq[exit_],
    })
    f = pd.concat([f, _exit_reason(tr, tl.seq[exit_])], axis=1) if len(f) else f.assign(reason=pd.Categorical([]), arch=pd.Categorical([]))
    f["guest_ns"] = f["return_ns"] - f["entry_ns"]
    f["entry_to_exit_ns"] = f["exit_ns"] - f["entry_ns"]
    window_end = _attribute(tl, f, entry, exit_)
    return Runs(f, entry, ret, exit_, unpaired, window_end, broken_entry, broken_exit)


def _count_between(pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How many of sorted ``pos`` fall in [lo, hi)."""
    return np.searchsorted(pos, hi) - np.searchsorted(pos, lo)


def _attribute(tl: Timeline, f: pd.DataFrame, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """Host IRQs, softirqs and ticks that landed inside each run (kvm_entry..kvm_exit) and in
    its exit window on that CPU (kvm_exit..the CPU's next kvm_entry); returns the window ends.

    A window can outlast a chunk of a huge trace, so window counts come from the events the
    timeline owns, per run; chunks' counts for the same run add up (``exits.finish``).
    """
    nxt = np.append(entry[1:], len(tl))
    same = np.append(tl.cpu[entry[1:]] == tl.cpu[entry[:-1]], False) if len(entry) else np.zeros(0, bool)
    cpu_end = np.searchsorted(tl.cpu, tl.cpu[entry], side="right")  # tl is sorted by cpu
    window_end = np.where(same, nxt, cpu_end)
    for col, cls in (("irqs", Cls.HANDLER), ("softirqs", Cls.SOFTIRQ), ("ticks", Cls.TICK)):
        pos = np.flatnonzero((tl.cls == cls) & ~tl.nmi)
        f[col] = _count_between(pos, entry, exit_)
        own = pos[tl.owns(pos)]
        i = np.searchsorted(exit_, own, side="right") - 1  # windows are disjoint and in position order
        ok = (i >= 0) & (own < window_end[np.maximum(i, 0)]) if len(exit_) else np.zeros(len(own), bool)
        f[f"window_{col}"] = np.bincount(i[ok], minlength=len(entry))
    return window_end


def exit_windows(f: pd.DataFrame, gaps: list[tuple[int, int | None]]) -> None:
    """Exit window of each run: its kvm_exit to the same thread's next kvm_entry (on any CPU),
    so it is computed over every run of the trace at once."""
    n = len(f)
    next_entry, host, ok = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
    if n:
        o = f.sort_values(["pid", "entry_ns"], kind="stable").index.to_numpy()
        pid = f["pid"].to_numpy()[o]
        same = np.append(pid[1:] == pid[:-1], False)
        nxt_entry = np.append(f["entry_ns"].to_numpy()[o][1:], 0)
        exit_ns = f["exit_ns"].to_numpy()[o]
        cpu = f["cpu"].to_numpy()[o]
        good = same & ~near_gap(gaps, cpu, exit_ns, np.where(same, nxt_entry, exit_ns))
        ok[o] = good
        next_entry[o] = np.where(good, nxt_entry, 0)
        host[o] = np.where(good, nxt_entry - exit_ns, 0)
    f["next_entry_ns"] = pd.arrays.IntegerArray(next_entry, ~ok)
    f["host_ns"] = pd.arrays.IntegerArray(host, ~ok)


def exit_stats(f: pd.DataFrame) -> pd.DataFrame:
    """Per exit reason: count, share, host handling and guest run percentiles (µs), like perf kvm stat."""
    if not len(f):
        return empty_frame({"reason": "category", "count": np.int64, **{c: float for c in STAT_COLUMNS}})
    rows = []
    # only the columns read: a group-by of the whole runs frame would copy all of it
    for reason, g in f[["reason", "host_ns", "guest_ns"]].groupby("reason", sort=False, observed=True):
        host = g["host_ns"].dropna().to_numpy(np.float64) / 1e3
        guest = g["guest_ns"].to_numpy(np.float64) / 1e3

        def q(a: np.ndarray, p: float) -> float:
            return float(np.percentile(a, p)) if len(a) else float("nan")
        rows.append({"reason": reason, "count": len(g), "share": len(g) / len(f),
                     "host_p50_us": q(host, 50), "host_p90_us": q(host, 90), "host_p99_us": q(host, 99),
                     "host_max_us": float(host.max()) if len(host) else float("nan"),
                     "guest_p50_us": q(guest, 50), "guest_p99_us": q(guest, 99), "guest_max_us": float(guest.max())})
    out = pd.DataFrame(rows).sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    out["reason"] = pd.Categorical(out["reason"].astype(str))
    return out


#: the per-reason statistics after reason and count
STAT_COLUMNS = ("share", "host_p50_us", "host_p90_us", "host_p99_us", "host_max_us", "guest_p50_us", "guest_p99_us",
                "guest_max_us")
