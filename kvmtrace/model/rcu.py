"""Per-CPU RCU extended quiescent states (EQS) from rcu_dyntick / rcu_watching.

Only task-level words open and close an EQS (≤6.11 ``Start``/``End``, swapped in
``rcu_watching``); irq-level brackets and ``++=``/``--=`` nesting are fired around
tracepoints inside or outside an EQS and do not end it (docs/kernel.md E.1).
Counter deltas between consecutive RCU events expose transitions the trace missed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..trace import Trace
from .kernel import RCU_ROLES
from .timeline import READS, Cls, Pairs, Timeline

COUNTER_MOD = 0x1000  # the event prints the counter masked to 12 bits
_WRAP = COUNTER_MOD - 1  # a difference & this is the difference modulo COUNTER_MOD (a power of two)


def quiescent_states(tl: Timeline) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per task-level EQS: stop-watching → next start-watching on the same CPU.

    An EQS belongs to the part of the trace that owns its start-watching event: idle's EQS may
    stay open across chunks of a huge trace (``carry.quiet_cuts``), its stop-watching event carried.
    The last task-level event of a CPU, open, is at the trace's edge only where the trace ends.
    """
    p = tl.task_rcu
    stop, same = p.is_open, p.same_cpu
    own = tl.owns(p.pos)
    close = np.flatnonzero(p.paired) + 1
    mine = own[close]
    s, e = p.pos[close - 1][mine], p.pos[close][mine]
    rep = np.append(False, (stop[:-1] == stop[1:]) & same) if len(p.pos) > 1 else np.zeros(len(p.pos), bool)
    in_pair = p.paired.copy()
    in_pair[close] = True
    trailing = _trailing_open(p)
    repeated = int((rep & own).sum())
    at_edge = (~in_pair & own & ~trailing).sum() + (trailing.sum() if tl.at_end else 0)
    stats = {"eqs": int(len(s)), "unbalanced": repeated, "open_at_trace_edge": int(at_edge) - repeated}
    f = pd.DataFrame({
        "cpu": tl.cpu[s], "pid": tl.pid[s], "comm": tl.comm[s],
        "start_ns": tl.ts[s], "end_ns": tl.ts[e], "duration_ns": tl.ts[e] - tl.ts[s],
        "stop_seq": tl.seq[s], "start_seq": tl.seq[e],
        "stop_pos": s, "start_pos": e,  # positions in the model's timeline
    }, copy=False)  # this function's own arrays: not copied into one block
    f["idle"] = f["pid"] == 0
    return f, stats


def _trailing_open(p: Pairs) -> np.ndarray:
    """Per entry of ``p``: the CPU's last task-level RCU event, and a stop-watching one (still open)."""
    last = np.append(~p.same_cpu, True) if len(p.pos) else np.zeros(0, bool)
    return last & p.is_open


def idle_handlers(tl: Timeline, handlers: np.ndarray) -> np.ndarray:
    """Which ``handlers`` (positions) ran inside the idle task's EQS, closed or still open where the
    timeline ends: the CPU's task-level RCU event before each is idle's stop-watching one, paired."""
    p = tl.task_rcu
    if not len(p.pos) or not len(handlers):
        return np.zeros(len(handlers), bool)
    opens = p.is_open & (p.paired | _trailing_open(p)) & (tl.pid[p.pos] == 0)
    i = np.searchsorted(p.pos, handlers) - 1
    j = np.maximum(i, 0)
    return (i >= 0) & opens[j] & (tl.cpu[p.pos[j]] == tl.cpu[handlers])


def counter_step(tl: Timeline) -> int | None:
    """The counter step per transition (2 ≤v5.14, 1 in 5.15–5.19, 4 from v6.0), from the trace."""
    k = tl.rcu_pos
    return _step(tl.cpu[k], tl.rcu_change[k], tl.rcu_counter)


def trace_counter_step(tr: Trace) -> int | None:
    """``counter_step`` of a whole trace without its timeline: chunks of a huge trace share it."""

    name = next((e for e in ("rcu_dyntick", "rcu_watching") if tr.has(e)), None)
    if name is None:
        return None
    d = tr.fields(name, list(READS[name]), base=("cpu",))
    if "counter" not in d.columns or "polarity" not in d.columns:
        return None
    counter = d["counter"].fillna(-1).to_numpy(np.int64)
    pol = d["polarity"].astype("category")
    roles = RCU_ROLES[name]
    lut = np.array([roles[c][1] if c in roles else 0 for c in map(str, pol.cat.categories)] + [0], np.int8)
    change = lut[pol.cat.codes.to_numpy()]
    keep = counter >= 0
    cpu = d["cpu"].to_numpy(np.int32)[keep]
    o = np.argsort(cpu, kind="stable")  # fields come in table order: (cpu, table order) like a timeline
    return _step(cpu[o], change[keep][o], counter[keep][o])


def _step(cpu: np.ndarray, change: np.ndarray, counter: np.ndarray) -> int | None:
    """Most common counter delta after a stop-watching event, halved (RCU events in (cpu, seq) order)."""
    if len(cpu) < 3:
        return None
    same = cpu[:-1] == cpu[1:]
    after_stop = (change[:-1] < 0) & same
    d = (counter[1:] - counter[:-1]) & _WRAP
    d = d[after_stop & (d > 0)]
    if not len(d):
        return None
    two_steps = _mode(d)
    return two_steps // 2 if two_steps % 2 == 0 else None


def _mode(values: np.ndarray, small: int = 1 << 12) -> int:
    """The most common of ``values`` (non-negative), the smallest on a tie, as ``np.unique`` counts
    give it: the small ones (a real counter step) counted by ``bincount``, no sort of millions."""
    low = values[values < small]
    counts = np.bincount(low) if len(low) else np.zeros(1, np.int64)
    best = int(np.argmax(counts))
    high = values[values >= small]
    if len(high) > counts[best]:  # a larger value could be more common: count those too
        vals, many = np.unique(high, return_counts=True)
        if many.max() > counts[best]:
            return int(vals[np.argmax(many)])
    return best


def missed_transitions(tl: Timeline, step: int | None) -> np.ndarray:
    """Positions of RCU events whose counter (``step`` per transition) says transitions were
    missed before them.

    From a stop-watching event to the next RCU event the counter grows by two steps
    (stop, then start); from any other event it stays. Anything else on the same CPU
    means untraced transitions or lost events.
    """
    k = tl.rcu_pos
    if step is None or len(k) < 2:
        return np.zeros(0, np.int64)
    same = tl.cpu[k[:-1]] == tl.cpu[k[1:]]
    d = (tl.rcu_counter[1:] - tl.rcu_counter[:-1]) & _WRAP
    want = np.where(tl.rcu_change[k[:-1]] < 0, 2 * step, 0)
    return k[1:][same & (d != want)]
