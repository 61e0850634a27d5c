"""Per-CPU event timeline with each event classified by what it means to the model.

All events of a trace, ordered by (cpu, seq), as numpy arrays. Every later step
(guest runs, irqs-off windows, RCU state, ticks) is a vectorized pass over these.
"""
from __future__ import annotations

import re
from typing import Any
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from enum import IntEnum

import numpy as np
import pandas as pd

from ..seqindex import SeqIndex
from ..trace import Trace
from .kernel import (ENTER_EXIT_CALLERS, GUEST_ENTRY_DISABLE_CALLERS, HANDLER_EVENTS, HANDLER_EXIT_EVENTS, RCU_ROLES,
                     TICK_FUNCTIONS)


_ADDRESS = re.compile(r"^(?:0x)?[0-9a-fA-F]+$")


class Cls(IntEnum):
    """What an event means to the model."""

    OTHER = 0
    ENTRY = 1          # kvm_entry
    EXIT = 2           # kvm_exit
    IRQ_OFF = 3        # preemptirq:irq_disable
    IRQ_ON = 4         # preemptirq:irq_enable
    RCU_STOP = 5       # task-level: RCU stops watching (EQS entry)
    RCU_START = 6      # task-level: RCU watches again (EQS exit)
    RCU_OPEN = 7       # irq-level/nesting bracket opened before a tracepoint
    RCU_CLOSE = 8      # ... and closed after it
    RCU_UTIL = 9       # rcu_utilization (non-nohz guest entry: rcu_note_context_switch)
    HANDLER = 10       # hardirq handler entry
    SOFTIRQ = 11       # softirq_entry
    TICK = 12          # hrtimer_expire_entry of the tick timer
    IPI = 13           # ipi_entry (inside an IPI's irq handler on arm64)


class Coded:
    """A string column kept as codes into a small table of distinct names.

    Avoids one Python string reference per event for columns read only at a few
    positions; a scalar position gives the name (or None), an array of positions a
    pandas Categorical, which frames take without re-inferring a string per row.
    """

    def __init__(self, codes: np.ndarray, names: list) -> None:
        names = [str(n) for n in names]
        uniq: Any
        if len(set(names)) == len(names):  # the usual case: codes already index distinct names
            uniq, self.codes = names, codes
        else:
            uniq, remap = np.unique(np.array(names, dtype=object), return_inverse=True)
            self.codes = np.where(codes >= 0, np.append(remap, -1)[codes], -1)
        # one code per event: int16 for the usual few hundred names
        self.codes = self.codes.astype(np.int16 if len(uniq) < 1 << 15 else np.int32, copy=False)
        self.categories = pd.Index(list(uniq), dtype=object)
        self.names = np.array(list(uniq) + [None], dtype=object)  # code −1 → None

    def __getitem__(self, pos: Any) -> Any:
        if np.ndim(pos) == 0:
            return self.names[self.codes[pos]]
        return pd.Categorical.from_codes(self.codes[pos], dtype=pd.CategoricalDtype(self.categories))

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class Timeline:
    """Events sorted by (cpu, seq). ``pos`` of an event = its index in these arrays."""

    ts: np.ndarray
    seq: np.ndarray
    cpu: np.ndarray
    pid: np.ndarray
    cls: np.ndarray          # int8 Cls
    hardirq: np.ndarray      # bool
    irqs_off: np.ndarray     # bool (False where the source shows no flags)
    flags_known: bool        # the source shows the irqs-off flag at all
    nmi: np.ndarray          # bool
    entry_path: np.ndarray   # bool: an event the guest-entry code emits between kvm_entry and the guest
    caller: "Coded"          # preemptirq caller symbol per position, else None
    comm: "Coded"            # task name per position
    rcu_event: str | None    # "rcu_dyntick" / "rcu_watching" / None
    rcu_pos: np.ndarray      # positions (sorted) of the RCU events that carry a counter: few, so not one per event
    rcu_counter: np.ndarray  # int64: the counter of each of them
    rcu_change: np.ndarray   # int8: +1 RCU starts watching, -1 stops, 0 nesting/not rcu
    pos_by_seq: "SeqIndex"   # seq → position
    row: np.ndarray          # the events-table row of each position (int32 below 2^31 events)
    damaged: np.ndarray      # bool: an event the model reads whose payload could not be decoded
    present: set[str] = field(default_factory=set)
    #: (cpu, ts or None) of each lost-events gap
    gaps: list[tuple[int, int | None]] = field(default_factory=list)
    #: positions this timeline answers for; None = all. A chunk of a huge trace also holds events
    #: carried from before it (open intervals, each CPU's last event of each kind) as context only
    owned: np.ndarray | None = None
    #: the timeline reaches the trace's last event (False for every chunk but the last)
    at_end: bool = True

    def __len__(self) -> int:
        return len(self.ts)

    def is_(self, *classes: Cls) -> np.ndarray:
        """Mask of events of any of ``classes`` (np.isin is several times slower on int8)."""
        out = self.cls == classes[0]
        for c in classes[1:]:
            out |= self.cls == c
        return out

    @cached_property
    def unbracketed(self) -> np.ndarray:
        """Positions of every event that is not an RCU nesting bracket around a tracepoint."""
        return np.flatnonzero(~self.is_(Cls.RCU_OPEN, Cls.RCU_CLOSE))

    @cached_property
    def unresolved(self) -> np.ndarray:
        """Per position: an irq_disable/irq_enable whose caller is not a kernel function name (a raw
        address: no kallsyms, or kptr_restrict zeroed it; or no caller at all)."""
        names = self.caller.names
        lut = np.array([n is None or _ADDRESS.match(n) is not None for n in names], dtype=bool)
        return self.is_(Cls.IRQ_OFF, Cls.IRQ_ON) & lut[self.caller.codes]

    @cached_property
    def task_rcu(self) -> "Pairs":
        """Task-level RCU stop/start-watching events paired per CPU (quiescent states and what they hold)."""
        return alternating(self, Cls.RCU_STOP, Cls.RCU_START)

    def pos_of(self, seq: np.ndarray) -> np.ndarray:
        """Timeline positions of events given by ``seq``."""
        return self.pos_by_seq[np.asarray(seq, dtype=np.int64)]

    def owns(self, pos: np.ndarray) -> np.ndarray:
        """Which of ``pos`` this timeline answers for (all of them for a whole trace)."""
        pos = np.asarray(pos, dtype=np.int64)
        return np.ones(len(pos), bool) if self.owned is None else self.owned[pos]

    @cached_property
    def cpu_bounds(self) -> dict[int, tuple[int, int]]:
        """cpu → [start, end) positions (the timeline is sorted by cpu)."""
        first, ends = stretches(self.cpu)
        return {int(c): (int(s), int(e)) for c, s, e in zip(self.cpu[first], first, ends)}

    def near_gap(self, cpu: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
        """True where a lost-events gap on ``cpu`` falls in [start_ns, end_ns] (see ``near_gap``)."""
        return near_gap(self.gaps, cpu, start_ns, end_ns)


def gaps_of(tr: Trace) -> list[tuple[int, int | None]]:
    """(cpu, ts or None) of each lost-events gap of a trace."""
    return [(int(g["cpu"]), None if g.get("ts") is None else int(g["ts"])) for g in tr.meta.lost_gaps]


def near_gap(gaps: list[tuple[int, int | None]], cpu: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
    """True where a lost-events gap on ``cpu`` falls in [start_ns, end_ns].

    A gap without a timestamp (events lost before the first one) counts
    for everything on its CPU before the first event seen there.
    """
    out = np.zeros(len(cpu), dtype=bool)
    for c, t in gaps:
        on = cpu == c
        out |= on & ((start_ns <= t) & (t <= end_ns) if t is not None else True)
    return out


#: the fields the model reads per event, asked for together so each event is decoded once
#: every event the timeline classifies, with the fields it decodes: the one declaration of what the
#: model reads besides the guest runs' exit reasons (``runs.READS``)
READS: dict[str, tuple[str, ...]] = {
    "kvm_entry": (), "kvm_exit": (), "irq_disable": ("caller",), "irq_enable": ("caller",),
    "rcu_dyntick": ("polarity", "counter"), "rcu_watching": ("polarity", "counter"), "rcu_utilization": (),
    "softirq_entry": (), "ipi_entry": (), "hrtimer_expire_entry": ("function", "now"),
    **{h: () for h in sorted(HANDLER_EVENTS | HANDLER_EXIT_EVENTS)},
}


def _read(tr: Trace, name: str) -> pd.DataFrame | None:
    """seq and the fields of event ``name`` the timeline reads, or None when the trace lacks it."""
    return tr.fields(name, list(READS[name])) if tr.has(name) else None


def _coded(d: pd.DataFrame | None, column: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(seq, category codes, categories) of a string column of ``d``; every code −1 (undecodable)
    when the events are there without the column (a format that lost the field)."""
    if d is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), []
    if column not in d.columns:
        return d["seq"].to_numpy(np.int64), np.full(len(d), -1, np.int64), []
    col = d[column].astype("category")
    return d["seq"].to_numpy(np.int64), col.cat.codes.to_numpy(np.int64), [str(c) for c in col.cat.categories]


def build(tr: Trace) -> Timeline:
    """Classify every event of ``tr`` and order them per CPU."""
    ev = tr.events
    n = len(ev)
    order = by_cpu(ev["cpu"].to_numpy(np.int32))  # the row of each position, kept as ``row``
    seq = ev["seq"].to_numpy(np.int64)[order]
    cpu = ev["cpu"].to_numpy(np.int32)[order]
    names = ev["event"].astype("category")
    cats = [str(c) for c in names.cat.categories]
    by_name = {
        "kvm_entry": Cls.ENTRY, "kvm_exit": Cls.EXIT, "irq_disable": Cls.IRQ_OFF, "irq_enable": Cls.IRQ_ON,
        "rcu_utilization": Cls.RCU_UTIL, "softirq_entry": Cls.SOFTIRQ, "ipi_entry": Cls.IPI,
        **{h: Cls.HANDLER for h in HANDLER_EVENTS},
    }
    lut = np.array([int(by_name.get(c, Cls.OTHER)) for c in cats], dtype=np.int8)
    codes = names.cat.codes.to_numpy()[order]  # in position order: each lookup below is one gather
    cls = np.append(lut, np.int8(Cls.OTHER))[codes]  # code −1 (no name) reads the last entry
    leave = np.array([c in HANDLER_EXIT_EVENTS for c in cats] + [False], dtype=bool)[codes]
    del codes
    # what the fields say goes straight to each event's position (no per-row copy to reorder)
    pos_by_seq = SeqIndex(seq)
    entry = np.zeros(n, dtype=bool)
    change = np.zeros(n, dtype=np.int8)
    damaged = np.zeros(n, dtype=bool)
    rcu_event = next((e for e in ("rcu_dyntick", "rcu_watching") if tr.has(e)), None)
    rcu_pos, counter = np.zeros(0, np.int64), np.zeros(0, np.int64)
    # the fields decode on two threads (numpy gathers and Arrow kernels release the GIL); the
    # million rcu events alone take as long as everything else
    names = [x for x in (rcu_event, "irq_disable", "irq_enable", "hrtimer_expire_entry") if x]
    with ThreadPoolExecutor(max_workers=2) as pool:
        read = dict(zip(names, pool.map(lambda x: _read(tr, x), names)))
    toggles = {name: _coded(read[name], "caller") for name in ("irq_disable", "irq_enable")}
    caller_code: dict[str, int] = {}  # one table for both events' callers
    for _s, _codes, cats in toggles.values():
        for c in cats:
            caller_code.setdefault(c, len(caller_code))
    caller = np.full(n, -1, dtype=np.int16 if len(caller_code) < 1 << 15 else np.int32)  # as ``Coded`` keeps it
    for name, (s, codes, cats) in toggles.items():
        at = pos_by_seq[s]
        damaged[at[codes < 0]] = True  # no caller: cut or garbled line
        # an address no kernel symbol holds: a damaged record (real callers are kernel or module text)
        unnamed = np.array([c.startswith("0x") for c in cats] + [False], dtype=bool)
        damaged[at[unnamed[codes]]] = True
        caller[at] = np.array([caller_code[c] for c in cats] + [-1], caller.dtype)[codes]
        known = ENTER_EXIT_CALLERS if name == "irq_enable" else GUEST_ENTRY_DISABLE_CALLERS
        entry[at] = np.array([c in known for c in cats] + [False], dtype=bool)[codes]
    if rcu_event:
        roles = RCU_ROLES[rcu_event]
        role_cls = {"stop": Cls.RCU_STOP, "start": Cls.RCU_START, "open": Cls.RCU_OPEN, "close": Cls.RCU_CLOSE}
        d = read[rcu_event]
        s, codes, cats = _coded(d, "polarity")
        at = pos_by_seq[s]
        cls_lut = np.array([role_cls[roles[c][0]] if c in roles else Cls.OTHER for c in cats] + [Cls.OTHER], np.int8)
        chg_lut = np.array([roles[c][1] if c in roles else 0 for c in cats] + [0], np.int8)
        cls[at] = cls_lut[codes]  # code −1 (missing) picks the trailing OTHER
        damaged[at[cls_lut[codes] == Cls.OTHER]] = True  # no polarity word the kernel prints
        change[at] = chg_lut[codes]
        if d is not None and "counter" in d.columns:
            value = d["counter"].to_numpy(np.int64, na_value=-1)
            # positions go CPU by CPU, and each CPU's are already in order: a stable sort by CPU
            # puts them in position order; the events with a counter are picked in that order
            # (one gather of each column, not a copy of the kept ones and then a second)
            by_pos = by_cpu(cpu[at])
            by_pos = by_pos[(value >= 0)[by_pos]]
            rcu_pos, counter = at[by_pos], value[by_pos]
    s, codes, cats = _coded(read["hrtimer_expire_entry"], "function")
    at = pos_by_seq[s]
    damaged[at[codes < 0]] = True  # cannot tell a tick from another timer
    h = read["hrtimer_expire_entry"]
    if h is not None and "now" in h.columns:
        damaged[at[h["now"].isna().to_numpy()]] = True
    tick_lut = np.array([c in TICK_FUNCTIONS for c in cats] + [False], dtype=bool)
    cls[at[tick_lut[codes]]] = Cls.TICK
    # guest-entry code between kvm_entry and the guest: the enter/exit helper's irq_enable,
    # __kvm_vcpu_run's irq_disable, the task-level EQS entry, rcu_note_context_switch
    entry_path = entry | (cls == Cls.RCU_STOP) | (cls == Cls.RCU_UTIL)
    del entry
    comm = ev["comm"].astype("category")
    return Timeline(
        ts=ev["ts"].to_numpy(np.int64)[order], seq=seq, cpu=cpu,
        pid=ev["pid"].to_numpy(np.int32)[order], cls=cls,
        hardirq=_hardirq(ev, order, cls, leave),
        nmi=ev["nmi"].to_numpy(bool, na_value=False)[order],
        irqs_off=ev["irqs_off"].to_numpy(bool, na_value=False)[order],
        flags_known=bool(ev["irqs_off"].notna().any()),
        entry_path=entry_path, caller=Coded(caller, list(caller_code)),
        comm=Coded(comm.cat.codes.to_numpy()[order], [str(c) for c in comm.cat.categories]),
        rcu_event=rcu_event, rcu_pos=rcu_pos, rcu_counter=counter, rcu_change=change,
        pos_by_seq=pos_by_seq, row=order, damaged=damaged,
        present=set(tr.event_names()),
        gaps=gaps_of(tr),
    )


def by_cpu(cpu: np.ndarray, few: int = 8) -> np.ndarray:
    """The indices of ``cpu`` ordered by CPU, in their own order within each (a stable sort), as
    int32 below 2**31 entries (no array of 8-byte indices first). With at most ``few`` CPUs, one
    comparison pass per CPU; otherwise numpy's stable sort of 16-bit integers, a radix sort."""
    n = len(cpu)
    kind = np.int32 if n < 1 << 31 else np.int64
    low, high = (int(cpu.min()), int(cpu.max())) if n else (0, 0)
    small = cpu.astype(np.int16) if -(1 << 15) <= low and high < 1 << 15 else cpu
    counts = np.bincount(small) if n and low >= 0 and small is not cpu else None
    if counts is None or np.count_nonzero(counts) > few:
        return np.argsort(small, kind="stable").astype(kind, copy=False)
    present = np.flatnonzero(counts)
    order = np.empty(n, kind)
    at = dict(zip(present.tolist(), np.r_[0, np.cumsum(counts[present])[:-1]].tolist()))
    for a in range(0, n, 1 << 20):  # a slice at a time: no array of 8-byte indices of every event
        part = small[a: a + (1 << 20)]
        for c in present.tolist():
            rows = np.flatnonzero(part == c)
            order[at[c]: at[c] + len(rows)] = rows + a
            at[c] += len(rows)
    return order


def unpaired_toggles(cls: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """Per position (in CPU order): inside a stretch where an irq toggle is missing.

    The kernel traces irq_disable and irq_enable only on a change of state (trace_hardirqs_off/on
    keep a per-CPU flag), so on one CPU they alternate. Two of a kind in a row mean the other was
    lost between them (a deleted line, a lost event): that stretch, both toggles included, is damage.
    """
    out = np.zeros(len(cls), bool)
    toggle = np.flatnonzero((cls == Cls.IRQ_OFF) | (cls == Cls.IRQ_ON))
    if len(toggle) < 2:
        return out
    repeat = np.flatnonzero((cls[toggle[1:]] == cls[toggle[:-1]]) & (cpu[toggle[1:]] == cpu[toggle[:-1]]))
    if len(repeat):
        mark = np.zeros(len(cls) + 1, np.int64)
        np.add.at(mark, toggle[repeat], 1)
        np.add.at(mark, toggle[repeat + 1] + 1, -1)
        out = np.cumsum(mark[:-1]) > 0
    return out


def empty_brackets(cls: np.ndarray, cpu: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Per position (in CPU order): a nesting bracket (``++=`` then ``--=``) with nothing inside.

    RCU brackets an ``_rcuidle`` tracepoint only when that tracepoint is enabled, so the event it
    emits sits between its ``++=`` and ``--=`` (none of ~400,000 brackets of the real 6.1 traces is
    empty). An empty one lost that event: deleted, dropped, or filtered out; both ends are damage.
    Irq-level brackets (``Endirq``/``Startirq``) are left alone: the kernel opens them around
    untraced work too.
    """
    out = np.zeros(len(cls), bool)
    if len(cls) < 2:
        return out
    empty = np.flatnonzero((cls[:-1] == Cls.RCU_OPEN) & (change[:-1] == 0) & (cls[1:] == Cls.RCU_CLOSE)
                           & (change[1:] == 0) & (cpu[1:] == cpu[:-1]))
    out[empty] = out[empty + 1] = True
    return out


def _hardirq(ev: pd.DataFrame, order: np.ndarray, cls: np.ndarray, leave: np.ndarray) -> np.ndarray:
    """Hardirq context per position: the flags column where the source prints one; else derived
    from the handlers' entry and exit events (every event from a handler entry to its exit on the
    CPU, nested ones included), so a format without flags sees the same contexts."""
    if ev["hardirq"].notna().any():
        return ev["hardirq"].to_numpy(bool, na_value=False)[order]
    step = (cls == Cls.HANDLER).astype(np.int8) - leave
    cpu = ev["cpu"].to_numpy(np.int32)[order]
    # the depth changes only at handler entries and exits: count there, and at each CPU's first
    # event (each CPU from 0), then spread each stretch's depth over its events
    first, _end = stretches(cpu)
    at = np.union1d(np.flatnonzero(step), first)
    depth = np.cumsum(step[at], dtype=np.int64)
    base = depth[np.searchsorted(at, first)] - step[first]
    depth = np.maximum(depth - np.repeat(base, np.diff(np.r_[np.searchsorted(at, first), len(at)])), 0)
    return np.repeat(depth > 0, np.diff(np.r_[at, len(cls)])) | leave  # the exit event itself is still in the handler


def stretches(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of every run of equal consecutive ``values``: each CPU's stretch of an array in
    CPU order."""
    start = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.zeros(0, np.int64)
    return start, np.append(start[1:], len(values))


@dataclass
class Pairs:
    """Open/close events of one kind per CPU, in order, and which ones pair up."""

    pos: np.ndarray        # positions of the open and close events
    is_open: np.ndarray    # bool per entry of ``pos``
    same_cpu: np.ndarray   # bool per consecutive couple of ``pos``
    paired: np.ndarray     # bool per entry: an open directly followed by its close

    @property
    def open_pos(self) -> np.ndarray:
        return self.pos[self.paired]

    @property
    def close_pos(self) -> np.ndarray:
        return self.pos[np.flatnonzero(self.paired) + 1]


def alternating(tl: Timeline, open_cls: Cls, close_cls: Cls, same_pid: bool = False) -> Pairs:
    """Pair each ``open_cls`` event with the next event of either kind on its CPU when that is a
    ``close_cls`` (and, with ``same_pid``, of the same task); anything else stays unpaired."""
    k = np.flatnonzero((tl.cls == open_cls) | (tl.cls == close_cls))
    is_open = tl.cls[k] == open_cls
    same = tl.cpu[k[:-1]] == tl.cpu[k[1:]] if len(k) > 1 else np.zeros(0, bool)
    link = same & (tl.pid[k[:-1]] == tl.pid[k[1:]]) if same_pid else same
    paired = np.append(is_open[:-1] & ~is_open[1:] & link, False) if len(k) else np.zeros(0, bool)
    return Pairs(k, is_open, same, paired)


def containing(tl: Timeline, starts: np.ndarray, ends: np.ndarray, pos: np.ndarray,
               include_end: bool = False) -> np.ndarray:
    """Index of the interval (``starts`` sorted, ``(start, end)`` positions on one CPU) that each
    position lies in, on that position's CPU; −1 if none. ``include_end``: ``end`` itself counts."""
    if not len(starts):
        return np.full(len(pos), -1)
    i = np.searchsorted(starts, pos) - 1
    j = np.maximum(i, 0)
    inside = ends[j] >= pos if include_end else ends[j] > pos
    ok = (i >= 0) & inside & (tl.cpu[starts[j]] == tl.cpu[pos])
    return np.where(ok, i, -1)
