"""Run a scenario: every CPU's events, merged in time order, with ground truth.

CPUs are simulated in time slices and merged slice by slice, so a long trace is
streamed to the writers in bounded memory; ``seq`` numbers are assigned as the
merged events are handed out (after the scenario's event filter), so ground truth
can name its evidence by position.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator

import numpy as np

from .emit import Cpu, Event
from .irqs import Irq, take
from .scenario import Scenario
from .vcpu import Truth, VcpuLoop

SLICE_NS = 20_000_000
LOST = "__lost__"  # pseudo-event: writers print a lost-events marker


class Housekeeping:
    """A CPU that idles between its periodic ticks; IRQs from idle's quiescent state are legitimate."""

    def __init__(self, sc: Scenario, cpu: int, rng: np.random.Generator) -> None:
        self.sc, self.rng = sc, rng
        self.c = Cpu(sc, cpu, t=sc.start_ns)
        self.period = 1_000_000_000 // sc.hz
        self.next_tick = (self.c.t - sc.clock_offset_ns) // self.period * self.period + self.period + sc.clock_offset_ns
        self.c.rcu_stop()  # idle: RCU not watching

    def run_until(self, end: int) -> None:
        c = self.c
        while self.next_tick < end:
            c.at_least(self.next_tick)
            c.counter += 2 * self.sc.counter_step
            c._rcu("open", 0, 1, 1000)          # irq entry from idle makes RCU watch (rcu_irq_enter)
            c.eqs = False
            take(c, Irq("tick", self.next_tick), self.sc.clock_offset_ns)
            if self.rng.random() < 0.2:         # the tick's TIMER softirq, then a kworker
                c.softirq = True
                c.ev("softirq_entry", 3000, vec=1, action="TIMER")
                c.ev("softirq_exit", 5000, vec=1, action="TIMER")
                c.softirq = False
                c.irqs_off = True
                c.ev("sched_switch", 2000, prev_comm="swapper/0", prev_pid=0, prev_prio=120, prev_state="R",
                     next_comm="kworker/0:1", next_pid=21, next_prio=120)
                c.pid, c.comm = 21, "kworker/0:1"
                c.irqs_off = False
                c.pi("irq_disable", "__raw_spin_lock_irq+0x58/0x80", "process_one_work+0x1f0/0x4a0", dt=8000)
                c.pi("irq_enable", "_raw_spin_unlock_irq+0x34/0x60", "process_one_work+0x220/0x4a0", dt=4000)
                c.irqs_off = True
                c.ev("sched_switch", 3000, prev_comm="kworker/0:1", prev_pid=21, prev_prio=120, prev_state="I",
                     next_comm="swapper/0", next_pid=0, next_prio=120)
                c.pid, c.comm = 0, "<idle>"
                c.irqs_off = False
            c.eqs = True
            c._rcu("close", 1, 0, 2000)          # back to idle's quiescent state
            self.next_tick += self.period


def simulate(sc: Scenario, truth: Truth) -> Iterator[Event]:
    """All events of ``sc`` in (ts, cpu) order; ``truth`` fills in as they are produced."""
    rng = np.random.default_rng(sc.seed)
    loops: list = [Housekeeping(sc, c, np.random.default_rng([sc.seed, c])) for c in sc.housekeeping_cpus]
    loops += [VcpuLoop(sc, c, 30 + i, np.random.default_rng([sc.seed, c, 1]), truth) for i, c in enumerate(sc.vcpu_cpus)]
    del rng
    end = sc.start_ns + sc.duration_ns
    t = sc.start_ns
    while t < end:
        t = min(t + SLICE_NS, end)
        for lp in loops:
            lp.run_until(t)
        # hand out what every CPU finished before ``t``; keep the rest for the next slice
        ready = []
        for lp in loops:
            evs = lp.c.events
            k = len(evs)
            while k and evs[k - 1].ts >= t and t < end:
                k -= 1
            ready.append(evs[:k])
            lp.c.events = evs[k:]
        yield from heapq.merge(*ready, key=lambda e: (e.ts, e.cpu))


def number(events: Iterator[Event], sc: Scenario, lost: list[dict]) -> Iterator[Event]:
    """Apply the recorded event set and lost-event gaps; give each kept event its seq."""
    skip = set(sc.unrecorded)
    if not sc.preemptirq:
        skip |= {"irq_disable", "irq_enable"}
    if not sc.rcu:
        skip.add(sc.rcu_event)
    gap = None
    if sc.lost_gap:
        mid = sc.start_ns + sc.duration_ns // 2
        gap = (sc.vcpu_cpus[0], mid, mid + 2_000_000)
    seq = 0
    last_ts: dict[int, int] = {}
    for e in events:
        if e.name in skip:
            continue
        if gap and e.cpu == gap[0] and gap[1] <= e.ts < gap[2]:
            if not lost or lost[-1].get("done"):
                lost.append({"cpu": e.cpu, "after_ts": last_ts.get(e.cpu), "count": 0})
            lost[-1]["count"] += 1
            continue
        if lost and not lost[-1].get("done") and gap and e.cpu == gap[0]:
            lost[-1]["done"] = True
            lost[-1]["before_seq"] = seq
            # the marker the tools print where the ring buffer overwrote events
            yield Event(e.ts, e.cpu, 0, "", False, False, False, 0, LOST, {"count": lost[-1]["count"]})
        e.seq = seq
        seq += 1
        last_ts[e.cpu] = e.ts
        yield e
