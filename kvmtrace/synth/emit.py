"""One CPU's event stream as the kernel writes it: flags, RCU brackets and counters.

``Cpu`` keeps the state the kernel samples into every event (IRQs masked,
hardirq/softirq context, preempt depth, current task) and the RCU state that
decides how preemptirq tracepoints are bracketed in 6.1 (``++=``/``--=`` while
RCU watches, ``Endirq``/``Startirq`` inside a quiescent state).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .scenario import Scenario

NESTING_IDLE, NESTING_NESTED = 0x4000000000000000, 0x4000000000000002


@dataclass(slots=True)
class Event:
    """One synthetic event; ``seq`` is assigned when the trace is written."""

    ts: int
    cpu: int
    pid: int
    comm: str
    irqs_off: bool
    hardirq: bool
    softirq: bool
    preempt: int
    name: str
    fields: dict[str, Any]
    seq: int = -1
    need_resched: bool = False


@dataclass
class Cpu:
    """Emitter for one CPU; ``events`` collects what it wrote, in time order."""

    sc: Scenario
    cpu: int
    t: int = 0
    pid: int = 0
    comm: str = "<idle>"
    irqs_off: bool = False
    hardirq: bool = False
    softirq: bool = False
    preempt: int = 0
    eqs: bool = False            # task-level RCU extended quiescent state
    counter: int = 0x224
    events: list[Event] = field(default_factory=list)

    def ev(self, name: str, dt: int = 1000, /, **fields: Any) -> Event:
        """Emit ``name`` ``dt`` ns after the previous event."""
        self.t += max(dt, 1)
        e = Event(self.t, self.cpu, self.pid, self.comm, self.irqs_off, self.hardirq, self.softirq,
                  self.preempt, name, fields)
        self.events.append(e)
        return e

    # -- RCU -------------------------------------------------------------------------------------
    def _rcu(self, word: str, old: int, new: int, dt: int = 1000) -> Event:
        words = {"stop": "Start", "start": "End", "open": "Endirq", "close": "Startirq"}
        if self.sc.rcu_event == "rcu_watching":  # v6.12 swapped the polarity words
            words = {"stop": "End", "start": "Start", "open": "Startirq", "close": "Endirq"}
        w = words.get(word, word)
        return self.ev(self.sc.rcu_event, dt, polarity=w, oldnesting=old, newnesting=new,
                       counter=self.counter & 0xFFF)

    def rcu_stop(self) -> Event:
        """Task-level EQS entry (idle, user, guest): RCU stops watching."""
        e = self._rcu("stop", 1, 0)
        self.eqs = True
        return e

    def rcu_start(self) -> Event:
        """Task-level EQS exit: RCU watches again (the counter advances by two steps)."""
        self.counter += 2 * self.sc.counter_step
        self.eqs = False
        return self._rcu("start", 0, 1)

    def pi(self, kind: str, caller: str, parent: str, bracketed: bool = True, dt: int = 1000) -> Event:
        """A preemptirq event; 6.1 brackets the _rcuidle tracepoints with RCU nesting events."""
        if kind == "irq_disable":
            self.irqs_off = True
        opened = False
        if bracketed:
            if self.eqs:
                self.counter += 2 * self.sc.counter_step
                self._rcu("open", 0, 1, dt)
                opened = True
            else:
                self._rcu("++=", NESTING_IDLE, NESTING_NESTED, dt)
        # the tracepoint itself is always emitted with IRQs masked (d)
        was = self.irqs_off
        self.irqs_off = True
        e = self.ev(kind, 1000 if bracketed else dt, caller=caller, parent=parent)
        self.irqs_off = was
        if bracketed:
            if opened:
                self._rcu("close", 1, 0)
            else:
                self._rcu("--=", NESTING_NESTED, NESTING_IDLE)
        if kind == "irq_enable":
            self.irqs_off = False
        return e

    def rcu_util(self, what: str, dt: int = 1000) -> None:
        self.ev("rcu_utilization", dt, s=f"Start {what}")
        self.ev("rcu_utilization", 1000, s=f"End {what}")

    def at_least(self, t: int) -> None:
        """Let time pass until ``t`` (nothing traced in between)."""
        self.t = max(self.t, t)
