"""Text writers: the kernel's tracefs ``trace`` file and ``trace-cmd report -N`` (with -l, -t).

Line layouts follow docs/kernel.md B.1/B.3: the kernel pads the pid to 7
(5 before 5.10), prints 4 or 5 flag columns and µs timestamps; trace-cmd pads the
pid to 5, shows flags only with ``-l`` (CPU number glued to them) and ns with ``-t``.
"""
from __future__ import annotations

from .emit import Event
from .payloads import render
from .scenario import Scenario
from .sim import LOST

KERNEL_HEADER = {5: """# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:{cpus}
#
#                                _-----=> irqs-off{bh}
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
""", 4: """# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:{cpus}
#
#                              _-----=> irqs-off
#                             / _----=> need-resched
#                            | / _---=> hardirq/softirq
#                            || / _--=> preempt-depth
#                            ||| /     delay
#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION
#              | |       |   ||||       |         |
"""}


def flags(e: Event, width: int) -> str:
    """The kernel's latency flag columns for ``e``."""
    ctx = "h" if e.hardirq else ("s" if e.softirq else ".")
    s = ("d" if e.irqs_off else ".") + ("N" if e.need_resched else ".") + ctx
    s += "." if e.preempt == 0 else f"{e.preempt & 0xF:x}"
    return s + "." if width == 5 else s


def _comm(e: Event, width: int) -> str:
    return e.comm[:width]


def kernel_header(sc: Scenario, count: int, cpus: int) -> str:
    return KERNEL_HEADER[sc.flag_columns].format(n=count, cpus=cpus, bh="/BH-disabled" if sc.kernel >= (5, 18) else "")


def tracefs_line(e: Event, sc: Scenario) -> str:
    """One line of the kernel's ``trace`` text."""
    if e.name == LOST:
        return f"CPU:{e.cpu} [LOST {e.fields['count']} EVENTS]\n"
    us = e.ts // 1000
    pidw = 7 if sc.kernel >= (5, 10) else 5
    return (f"{e.comm:>16}-{e.pid:<{pidw}d} [{e.cpu:03d}] {flags(e, sc.flag_columns)} "
            f"{us // 1_000_000:5d}.{us % 1_000_000:06d}: {e.name}: {render(e, sc)}\n")


def trace_cmd_line(e: Event, sc: Scenario, latency: bool, ns: bool, plugins: bool = False) -> str:
    """One line of ``trace-cmd report -N [-l] [-t]`` (``plugins``: without -N)."""
    if e.name == LOST:
        return f"CPU:{e.cpu} [{e.fields['count']} EVENTS DROPPED]\n"
    us = (e.ts + 500) // 1000  # trace-cmd rounds to the µs (the kernel truncates)
    t = f"{e.ts // 1_000_000_000:5d}.{e.ts % 1_000_000_000:09d}" if ns else f"{us // 1_000_000:5d}.{us % 1_000_000:06d}"
    head = f"{_comm(e, 8):>8}-{e.pid:<5d} {e.cpu:3d}{flags(e, 5)}" if latency else f"{e.comm:>16}-{e.pid:<5d} [{e.cpu:03d}]"
    return f"{head} {t}: {e.name + ':':<21} {render(e, sc, 'trace-cmd-plugins' if plugins else 'trace-cmd')}\n"


SYSTEMS = {"kvm_entry": "kvm", "kvm_exit": "kvm", "irq_disable": "preemptirq", "irq_enable": "preemptirq",
           "rcu_dyntick": "rcu", "rcu_watching": "rcu", "rcu_utilization": "rcu", "tick_stop": "timer",
           "sched_switch": "sched", "local_timer_entry": "irq_vectors", "local_timer_exit": "irq_vectors",
           "reschedule_entry": "irq_vectors", "reschedule_exit": "irq_vectors"}


def perf_line(e: Event, sc: Scenario, ns: bool = False) -> str:
    """One line of ``perf script`` (default tracepoint fields; ``--ns`` with ``ns``)."""
    if e.name == LOST:
        return ""  # perf reports lost samples in its summary, not inline
    system = SYSTEMS.get(e.name) or e.name.split("_")[0].replace("softirq", "irq").replace("hrtimer", "timer")
    t = f"{e.ts // 1_000_000_000:d}.{e.ts % 1_000_000_000:09d}" if ns else f"{e.ts // 1_000_000_000:d}.{(e.ts // 1000) % 1_000_000:06d}"
    comm = e.comm if e.pid else "swapper"
    return f"{comm:>16} {e.pid:5d} [{e.cpu:03d}] {t:>12}: {system + ':' + e.name:>34}: {render(e, sc, 'trace-cmd')}\n"
