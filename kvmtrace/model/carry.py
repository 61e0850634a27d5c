"""Where a chunk of a huge trace may end on each CPU, and the state the next chunk must carry.

A chunk answers for (owns) each CPU's events up to that CPU's last *quiet* point: no
guest run, irqs-off window or RCU quiescent state of a task open there. Idle's quiescent
state may stay open for a whole trace (a CPU that never wakes a task), so it does not stop
a cut: an EQS is counted where its end is owned, and what it contains (IRQ handlers taken
from idle) is counted per handler against the CPU's last task-level RCU event, which is carried. Everything owned
then opened and closed inside the chunk. What later events still look back at is
carried into the next chunk as events of its own, never as copies of results:

- the CPU's events after its quiet point (open intervals, owned next time);
- the last event of each kind the model pairs or compares with its predecessor
  (kvm_entry/kvm_exit, irq_disable/irq_enable, RCU stop/start, RCU counter,
  IRQ handler, task-context event);
- the CPU's last guest run, from kvm_entry up to where it stops mattering: ticks
  and IRQs until the CPU's next kvm_entry are charged to its exit window, and a
  tick compares itself with the run's first handler and guest-timing window.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import ticks as tk
from .timeline import Cls, Timeline

#: event kinds whose latest occurrence before a cut later events are compared with
_PAIRED = ((Cls.ENTRY, Cls.EXIT), (Cls.IRQ_OFF, Cls.IRQ_ON), (Cls.RCU_STOP, Cls.RCU_START), (Cls.HANDLER,))


def _open_at(tl: Timeline, a: int, e: int, s: int, flags_matter: bool, step: int) -> np.ndarray:
    """Per position in ``[a, e)`` of one CPU's events ``[s, e)``: whether a guest run, a task's
    irqs-off window or a task's RCU quiescent state is open before it. Each is open where the last
    earlier event of its pair (``[s, p)``) opens it; the window's first positions take that event
    from before ``a``, found by a search backwards."""
    cls = tl.cls
    open_ = np.zeros(e - a, bool)
    for opener, closer in _PAIRED[:3]:  # the intervals: a guest run, an irqs-off window, an EQS
        def pair(lo: int, hi: int, opener: Cls = opener, closer: Cls = closer) -> np.ndarray:
            return (cls[lo:hi] == opener) | (cls[lo:hi] == closer)

        def opens(at: np.ndarray, opener: Cls = opener) -> np.ndarray:
            out = cls[at] == opener
            return out & (tl.pid[at] != 0) if opener == Cls.RCU_STOP else out  # idle's EQS is carried
        open_ |= _last_is(pair, opens, a, e, s, step)
    if flags_matter:  # irqs-off windows from the flag: the last task-context event's flag
        open_ |= _last_is(lambda lo, hi: ~tl.hardirq[lo:hi] & ~tl.nmi[lo:hi], lambda at: tl.irqs_off[at], a, e, s, step)
    return open_


def _last_is(mask: Callable[[int, int], np.ndarray], test: Callable[[np.ndarray], np.ndarray], a: int, e: int,
             s: int, step: int) -> np.ndarray:
    """Per position p in ``[a, e)``: ``test`` holds at the last q in ``[s, p)`` where ``mask`` does
    (q before ``a`` looked for ``step`` positions at a time)."""
    before = -1  # the last masked position before a
    hi = a
    while hi > s and before < 0:
        lo = max(s, hi - step)
        hits = np.flatnonzero(mask(lo, hi))
        before = lo + int(hits[-1]) if len(hits) else -1
        hi = lo
    prev = np.full(e - a, before, np.int64)
    if e - a > 1:
        m = mask(a, e - 1)
        prev[1:] = np.maximum(np.where(m, np.arange(a, e - 1), -1), before)
        np.maximum.accumulate(prev, out=prev)
    got = prev >= 0
    out = np.zeros(e - a, bool)
    out[got] = test(prev[got])
    return out


def per_cpu(tl: Timeline, value: dict[int, int], default: int) -> np.ndarray:
    """``value[cpu]`` spread to every position of that CPU."""
    b = tl.cpu_bounds
    return np.repeat(np.array([value.get(c, default) for c in b], np.int64), [e - s for s, e in b.values()])


def quiet_cuts(tl: Timeline, key: np.ndarray, start: dict[int, int], flags_matter: bool, step: int = 4096
               ) -> dict[int, int]:
    """Per CPU, the ``key`` (the event's row in the whole events table) of the last event before
    which nothing is open and the CPU's owned part (from ``start[cpu]``) may end; ``start[cpu]``
    itself when there is none.

    ``flags_matter``: irqs-off windows come from the irqs-off flag (no preemptirq events),
    so a run of flagged task-context events must be closed too. Looked for from each CPU's end
    in windows of ``step`` events that grow fourfold: the quiet point is nearly always among its
    last events.
    """
    out = dict(start)
    for c, (s, e) in tl.cpu_bounds.items():
        lo_key, found, width = start.get(c, -1), start.get(c, -1), step
        while True:
            a = max(s, e - width)
            quiet = np.flatnonzero(~_open_at(tl, a, e, s, flags_matter, step) & (key[a:e] >= lo_key))
            if len(quiet):
                found = int(key[a + quiet[-1]])
                break
            if a == s:  # no quiet point: owns nothing more
                break
            width *= 4
        out[c] = found
    return out


def carried(tl: Timeline, key: np.ndarray, entry_pos: np.ndarray, return_pos: np.ndarray, exit_pos: np.ndarray,
            cut: dict[int, int]) -> np.ndarray:
    """Keys (rows in the whole events table) of the events the next chunk needs from this one
    (see the module docstring)."""
    if not len(tl):
        return np.zeros(0, np.int64)
    cut_of = per_cpu(tl, cut, np.iinfo(np.int64).max)
    before = key < cut_of
    keep = ~before  # everything after the cut is owned next time
    bounds = tl.cpu_bounds
    counted = np.zeros(len(tl), bool)
    counted[tl.rcu_pos] = True
    kinds = [tl.is_(*k) for k in _PAIRED] + [counted, ~tl.hardirq & ~tl.nmi]
    ends = {c: s + int(before[s:e].sum()) for c, (s, e) in bounds.items()}  # per CPU: first position at/after the cut
    for c, (s, _) in bounds.items():
        end = ends[c]
        for m in kinds:
            k = np.flatnonzero(m[s:end])
            if len(k):
                keep[s + k[-1]] = True
    _last_run(tl, entry_pos, return_pos, exit_pos, ends, keep)
    return key[keep]


def _last_run(tl: Timeline, entry_pos: np.ndarray, return_pos: np.ndarray, exit_pos: np.ndarray,
              ends: dict[int, int], keep: np.ndarray) -> None:
    """Mark each CPU's last guest run before the cut, up to where later ticks stop looking at it:
    its kvm_exit, its first IRQ handler after the guest returned and the KVM_RUN loop's host-IRQ
    window (``ticks.exit_path``) with the loop's next irq toggle; all of it up to the cut if
    those are not all seen yet."""
    if not len(entry_pos):
        return
    loop = np.flatnonzero(tk.run_loop_mask(tl) & tl.is_(Cls.IRQ_ON, Cls.IRQ_OFF))
    for c, end in ends.items():
        i = np.searchsorted(entry_pos, end) - 1
        if i < 0 or tl.cpu[entry_pos[i]] != c:
            continue
        ret, limit = return_pos[i:i + 1], np.array([end])
        path = tk.exit_path(tl, ret, exit_pos[i:i + 1], limit)
        upto = end
        if path.first_handler[0] >= 0:
            last = path.close_pos[0] if path.close_pos[0] >= 0 else path.open_pos[0]
            k = np.searchsorted(loop, max(int(last), int(ret[0])), side="right")
            if k < len(loop) and loop[k] < end:  # the loop toggle after the window (or after the return) is seen
                upto = min(end, max(int(exit_pos[i]), int(path.first_handler[0]), int(loop[k])) + 1)
        keep[entry_pos[i]:upto] = True
