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

import numpy as np

from . import ticks as tk
from .timeline import Cls, Timeline

#: event kinds whose latest occurrence before a cut later events are compared with
_PAIRED = ((Cls.ENTRY, Cls.EXIT), (Cls.IRQ_OFF, Cls.IRQ_ON), (Cls.RCU_STOP, Cls.RCU_START), (Cls.HANDLER,))


def _last_before(tl: Timeline, mask: np.ndarray, first_of_cpu: np.ndarray) -> np.ndarray:
    """Per position, the last earlier position on its CPU where ``mask`` holds (−1 if none): one
    running maximum, in place, of 4-byte positions where they fit."""
    n = len(tl)
    prev = np.full(n, -1, np.int32 if n < 1 << 31 else np.int64)
    if n > 1:
        prev[1:] = np.where(mask[:-1], np.arange(n - 1, dtype=prev.dtype), -1)
        np.maximum.accumulate(prev, out=prev)
        prev[prev < first_of_cpu] = -1
    return prev


def per_cpu(tl: Timeline, value: dict[int, int], default: int) -> np.ndarray:
    """``value[cpu]`` spread to every position of that CPU."""
    b = tl.cpu_bounds
    return np.repeat(np.array([value.get(c, default) for c in b], np.int64), [e - s for s, e in b.values()])


def quiet_cuts(tl: Timeline, key: np.ndarray, start: dict[int, int], flags_matter: bool) -> dict[int, int]:
    """Per CPU, the ``key`` (the event's row in the whole events table) of the last event before
    which nothing is open and the CPU's owned part (from ``start[cpu]``) may end; ``start[cpu]``
    itself when there is none.

    ``flags_matter``: irqs-off windows come from the irqs-off flag (no preemptirq events),
    so a run of flagged task-context events must be closed too.
    """
    n = len(tl)
    first_of_cpu = np.searchsorted(tl.cpu, tl.cpu, side="left")
    open_ = np.zeros(n, bool)
    for opener, closer in ((Cls.ENTRY, Cls.EXIT), (Cls.IRQ_OFF, Cls.IRQ_ON), (Cls.RCU_STOP, Cls.RCU_START)):
        prev = _last_before(tl, tl.is_(opener, closer), first_of_cpu)
        at = np.maximum(prev, 0)
        is_open = (prev >= 0) & (tl.cls[at] == opener)
        if opener == Cls.RCU_STOP:  # idle's EQS may span chunks: its stop-watching event is carried
            is_open &= tl.pid[at] != 0
        open_ |= is_open
    if flags_matter:
        prev = _last_before(tl, ~tl.hardirq & ~tl.nmi, first_of_cpu)
        open_ |= (prev >= 0) & tl.irqs_off[np.maximum(prev, 0)]
    lo = per_cpu(tl, start, -1)
    quiet = np.flatnonzero(~open_ & (key >= lo))
    out = dict(start)
    out.update({c: start.get(c, -1) for c in tl.cpu_bounds})  # no quiet point: owns nothing more
    if len(quiet):
        cpus = tl.cpu[quiet]
        last = quiet[np.append(cpus[1:] != cpus[:-1], True)]  # tl is sorted by cpu: the last quiet one per CPU
        out.update({int(c): int(s) for c, s in zip(tl.cpu[last], key[last])})
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
