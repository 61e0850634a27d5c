"""A vCPU thread's KVM_RUN loop on one CPU, along the real code paths (docs/kernel.md C).

Each guest run: ``local_irq_disable``, ``kvm_entry``, the entry path, the guest
(host interrupts arriving meanwhile force an IRQ exit; otherwise the guest traps),
the exit path taking pending interrupts where that kernel takes them, ``kvm_exit``,
and the host's handling of the exit. Bug instances and tick accounting are recorded
as they happen, as ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.releases import x86_window_is_guest_time
from ..uname import parse
from .emit import Cpu, Event
from .irqs import Irq, take
from .scenario import Scenario

ARM64_TRAPS = [("DABT_LOW", 0x24, 0.55), ("WFx", 0x01, 0.2), ("HVC64", 0x16, 0.1), ("SYS64", 0x18, 0.1),
               ("IABT_LOW", 0x20, 0.05)]
X86_EXITS = [("io", 0.55), ("hlt", 0.2), ("msr", 0.1), ("npf", 0.1), ("cpuid", 0.05)]
PREFIX = {"dis": "kvm_arch_vcpu_ioctl_run+0x31c/0x7f0", "w1_on": "kvm_arch_vcpu_ioctl_run+0x38c/0x7f0",
          "exit_off": "kvm_arch_vcpu_ioctl_run+0x614/0x7f0", "exit_on": "kvm_arch_vcpu_ioctl_run+0x60c/0x7f0"}
FIXED = {"dis": "kvm_arch_vcpu_ioctl_run+0x3b8/0x750", "w1_on": "kvm_arch_vcpu_ioctl_run+0x3c0/0x750",
         "w1_off": "kvm_arch_vcpu_ioctl_run+0x3f4/0x750", "exit_on": "kvm_arch_vcpu_ioctl_run+0x1cc/0x750"}
VMX_EXITS = [("IO_INSTRUCTION", 0.55), ("HLT", 0.2), ("MSR_WRITE", 0.1), ("EPT_VIOLATION", 0.1), ("CPUID", 0.05)]
# x86 5.12-5.16 (VMX): vcpu_enter_guest() takes pending IRQs after kvm_exit, before vtime_account_guest_exit()
VMX_OLD = {"dis": "vcpu_enter_guest+0x9b4/0x1e00", "enter": "vmx_vcpu_enter_exit+0x2c/0x90",
           "guest_off": "vmx_vcpu_enter_exit+0x5d/0x90", "w1_on": "vcpu_enter_guest+0x1154/0x1e00",
           "w1_off": "vcpu_enter_guest+0x1161/0x1e00", "exit_on": "vcpu_enter_guest+0x11bd/0x1e00"}
X86 = {"dis": "kvm_arch_vcpu_ioctl_run+0x12cf/0x2100", "w1_on": "kvm_arch_vcpu_ioctl_run+0x62e/0x2100",
       "w1_off": "kvm_arch_vcpu_ioctl_run+0x133f/0x2100", "exit_on": "kvm_arch_vcpu_ioctl_run+0x66a/0x2100"}
IOCTL = "kvm_vcpu_ioctl+0x240/0x82c"


@dataclass
class Truth:
    """Ground truth gathered while simulating (events are resolved to seq when written)."""

    runs: list[dict] = field(default_factory=list)
    bugs: list[dict] = field(default_factory=list)
    ticks: list[dict] = field(default_factory=list)


class VcpuLoop:
    """One vCPU thread pinned to one CPU."""

    def __init__(self, sc: Scenario, cpu: int, pid: int, rng: np.random.Generator, truth: Truth) -> None:
        self.sc, self.rng, self.truth = sc, rng, truth
        self.c = Cpu(sc, cpu, t=sc.start_ns + int(rng.integers(0, 50_000)), pid=pid, comm=f"CPU {cpu - 1}/KVM" if cpu else "CPU 0/KVM")
        self.nohz = cpu in sc.nohz_full
        self.period = 1_000_000_000 // sc.hz
        self.mono = sc.clock_offset_ns
        self.next_tick = (self.c.t - self.mono) // self.period * self.period + self.period + self.mono
        self.next_vtimer = self.c.t + self._exp(sc.timer_hz)
        self.next_device = self.c.t + self._exp(sc.device_irq_hz)
        self.pending: list[Irq] = []

    def _exp(self, hz: float) -> int:
        return int(self.rng.exponential(1e9 / hz)) + 1000 if hz > 0 else 1 << 62

    def _us(self, lo: float, hi: float) -> int:
        return int(self.rng.uniform(lo, hi) * 1000)

    # -- interrupt sources -----------------------------------------------------------------------
    def _arrivals_until(self, t: int, in_guest: bool) -> None:
        """Queue every host interrupt that becomes pending at or before ``t``."""
        while self.next_tick <= t:
            # nohz_full: no periodic tick while the guest (a single task) runs
            if not (self.nohz and in_guest):
                self.pending.append(Irq("tick", self.next_tick))
            self.next_tick += self.period
        while self.next_vtimer <= t:
            self.pending.append(Irq("vtimer" if self.sc.arch == "arm64" else "ipi", self.next_vtimer))
            self.next_vtimer += self._exp(self.sc.timer_hz)
        while self.next_device <= t:
            self.pending.append(Irq("ipi" if self.rng.random() < 0.5 else "device", self.next_device))
            self.next_device += self._exp(self.sc.device_irq_hz)
        self.pending.sort(key=lambda q: q.due)

    def _take_pending(self, run: dict | None, where: str, charged_guest: bool) -> None:
        for irq in self.pending:
            take(self.c, irq, self.mono)
            # the first interrupt taken after an IRQ exit is the one that forced the guest out
            caused = run is not None and run.get("irq_exit", False) and not run.get("taken")
            if run is not None:
                run["taken"] = run.get("taken", 0) + 1
            self._record(irq, run, where, charged_guest, caused)
        self.pending = []

    def _record(self, irq: Irq, run: dict | None, where: str, charged_guest: bool, caused: bool = False) -> None:
        c = self.c
        if run is not None and self.nohz and c.eqs and c.pid != 0:
            self.truth.bugs.append({"kind": "rcu_not_watching", "cpu": c.cpu, "pid": c.pid, "events": [irq.handled],
                                    "start_ev": run["eqs_start"], "run": run["id"]})
        if irq.kind == "tick":
            # pending before the guest stopped (also when already pending at entry: the guest
            # exits at once and the kernel delivers it "in the guest")
            in_guest = run is not None and irq.due < run["guest_end"]
            self.truth.ticks.append({"cpu": c.cpu, "due": irq.due, "event": irq.tick, "run": None if run is None else run["id"],
                                     "due_in_guest": in_guest, "caused_exit": caused,
                                     "charged_guest": charged_guest, "where": where,
                                     "accounted": not self.nohz})

    # -- the loop --------------------------------------------------------------------------------
    def run_until(self, end: int) -> None:
        if self.nohz and not self.c.events and not self.truth.runs:
            # nohz_full: the tick stops once the vCPU thread is the only task (tick_nohz_stop_tick)
            self.c.irqs_off = True
            self.c.ev("tick_stop", 2000, success=1, dependency="NONE")
            self.c.irqs_off = False
        while self.c.t < end:
            self._host_between_runs()
            self._guest_run()

    def _host_between_runs(self) -> None:
        """Host side after kvm_exit: vcpu put/load noise; IRQs that arrive are taken at once."""
        c = self.c
        for _ in range(int(self.rng.integers(1, 3))):
            c.pi("irq_disable", "kvm_arch_vcpu_put_fp+0x74/0xbc", "kvm_arch_vcpu_put+0x1c/0x70", dt=self._us(2, 6))
            c.pi("irq_enable", "kvm_arch_vcpu_put_fp+0x6c/0xbc", "kvm_arch_vcpu_put+0x1c/0x70")
            self._arrivals_until(c.t, in_guest=False)
            self._take_pending(None, "host", False)

    def _guest_run(self) -> None:
        c, sc = self.c, self.sc
        if sc.arch == "arm64":
            names = FIXED if sc.fixed else PREFIX
        else:
            names = X86 if sc.fixed else VMX_OLD
        run: dict = {"id": len(self.truth.runs), "cpu": c.cpu, "pid": c.pid}
        c.preempt = 0
        opened = c.pi("irq_disable", names["dis"], IOCTL, dt=self._us(2, 5))
        run["entry"] = c.ev("kvm_entry", 3000, vcpu_pc=0x40000000 + 4 * int(self.rng.integers(0, 16)), vcpu=0, rip=0xFFF0)
        # entry path
        if sc.arch == "x86":
            enter = "svm_vcpu_enter_exit+0xc/0x30" if sc.fixed else names["enter"]
            c.pi("irq_enable", enter, "0x0", bracketed=False)   # guest_state_enter / kvm_guest_enter_irqoff
            run["eqs_start"] = self._guest_eqs(c)
        elif sc.fixed:
            c.pi("irq_enable", "kvm_arm_vcpu_enter_exit+0x18/0xf0", "kvm_arch_vcpu_ioctl_run+0x16c/0x750", bracketed=False)
            run["eqs_start"] = self._guest_eqs(c)
            c.pi("irq_disable", "__kvm_vcpu_run+0x20/0x254", "kvm_arm_vcpu_enter_exit+0x70/0xf0")
        else:
            run["eqs_start"] = self._guest_eqs(c)
        # the guest runs until a host interrupt becomes pending or it traps
        start = c.t
        g_end = start + self._us(*sc.guest_run_us)
        self._arrivals_until(g_end, in_guest=True)
        irq_exit = bool(self.pending) and self.pending[0].due < g_end
        if irq_exit:
            # an interrupt already pending at entry makes the guest exit at once
            g_end = max(self.pending[0].due, start) + self._us(0.5, 2)
            self.pending = [q for q in self.pending if q.due <= g_end]
            self.next_tick = max(self.next_tick, min(q.due for q in self.pending) + 1)  # arrivals past g_end re-queued
        else:
            self.pending = []
        self._requeue_after(g_end)
        c.at_least(g_end)
        run["guest_end"], run["irq_exit"] = g_end, irq_exit
        # the exit path; run["return"] is the first host event after the guest
        if sc.arch == "x86":
            (self._x86_exit if sc.fixed else self._x86_prefix_exit)(run, names, irq_exit)
        elif sc.fixed:
            self._arm64_fixed_exit(run, names, irq_exit)
        else:
            self._arm64_prefix_exit(run, names, irq_exit, opened)
        self.truth.runs.append(run)

    def _guest_eqs(self, c: Cpu) -> Event | None:
        """Into the guest: a nohz_full CPU's vCPU thread enters an RCU quiescent state (its stop
        event returned); elsewhere RCU notes a context switch and nothing is entered."""
        if self.nohz:
            return c.rcu_stop()
        c.rcu_util("context switch")
        return None

    def _requeue_after(self, g_end: int) -> None:
        """Interrupt sources keep their schedule past the guest's end."""
        if self.next_tick <= g_end:
            self.next_tick = ((g_end - self.mono) // self.period + 1) * self.period + self.mono

    def _exit_reason(self, irq_exit: bool) -> dict:
        if self.sc.arch == "x86":
            vmx = not self.sc.fixed
            if irq_exit:
                return {"reason": "EXTERNAL_INTERRUPT" if vmx else "interrupt"}
            names, w = zip(*(VMX_EXITS if vmx else X86_EXITS))
            return {"reason": names[int(self.rng.choice(len(names), p=np.array(w) / sum(w)))]}
        if irq_exit:
            return {"ret": "IRQ", "esr_ec": 0, "ec_name": "UNKNOWN"}
        i = int(self.rng.choice(len(ARM64_TRAPS), p=np.array([w for *_x, w in ARM64_TRAPS]) / sum(w for *_x, w in ARM64_TRAPS)))
        return {"ret": "TRAP", "esr_ec": ARM64_TRAPS[i][1], "ec_name": ARM64_TRAPS[i][0]}

    def _post_exit_arrivals(self, dt: int) -> None:
        """Interrupts that become pending while the host runs the exit path (IRQs masked)."""
        self._arrivals_until(self.c.t + dt, in_guest=False)

    def _arm64_prefix_exit(self, run: dict, n: dict, irq_exit: bool, opened: Event) -> None:
        c = self.c
        late = irq_exit and self.rng.random() < self.sc.late_irq_share  # pending IRQ missed: no ISB
        first = len(c.events)
        w1_on = c.pi("irq_enable", n["w1_on"], IOCTL, dt=500)   # local_irq_enable(): no isb()
        run["return"] = c.events[first]
        self._post_exit_arrivals(self._us(0, 2))
        if not late:
            self._take_pending(run, "before guest_exit", charged_guest=True)
        c.pi("irq_disable", n["exit_off"], IOCTL)                          # guest_exit(): local_irq_save
        if self.nohz:
            c.rcu_start()
        c.pi("irq_enable", n["exit_on"], IOCTL)                            # local_irq_restore
        self._take_pending(run, "after guest_exit", charged_guest=False)
        self.truth.bugs.append({"kind": "apparent_irqsoff", "cpu": c.cpu, "pid": c.pid, "run": run["id"],
                                "events": [opened, run["entry"], run["return"], w1_on]})
        run["exit"] = c.ev("kvm_exit", 2000, **self._exit_reason(irq_exit))

    def _arm64_fixed_exit(self, run: dict, n: dict, irq_exit: bool) -> None:
        c, sc = self.c, self.sc
        first = len(c.events)
        if self.nohz:
            c.rcu_start()                                               # guest_state_exit_irqoff()
        if irq_exit or sc.kernel < (5, 18):  # the isb() window: after IRQ exits only from 5.18 (f7659f8bcdf8)
            c.pi("irq_enable", n["w1_on"], IOCTL, dt=500 if not self.nohz else 1000)
            run["return"] = c.events[first]
            self._post_exit_arrivals(self._us(0, 2))
            self._take_pending(run, "isb window", charged_guest=True)
            c.pi("irq_disable", n["w1_off"], IOCTL)
        c.pi("irq_enable", n["exit_on"], IOCTL, dt=500 if "return" not in run and not self.nohz else self._us(1, 3))
        if "return" not in run:  # guest_timing_exit_irqoff(), then local_irq_enable()
            run["return"] = c.events[first]
            self._post_exit_arrivals(self._us(0, 2))
        self._take_pending(run, "after guest timing", charged_guest=False)
        run["exit"] = c.ev("kvm_exit", 2000, **self._exit_reason(irq_exit))

    def _x86_prefix_exit(self, run: dict, n: dict, irq_exit: bool) -> None:
        """5.9-5.16 VMX: kvm_exit inside vmx_vcpu_run (5.11 on; before, in vmx_handle_exit after the
        window), then vcpu_enter_guest's IRQ window. Guest timing ends after the window from 5.13
        (5.12.8, 5.10.41: 160457140187); before, in vmx_vcpu_enter_exit(), ahead of it."""
        c, sc = self.c, self.sc
        first = len(c.events)
        if self.nohz:
            c.rcu_start()                                               # context_tracking_guest_exit()
        c.pi("irq_disable", n["guest_off"], "0x0", bracketed=False, dt=500)   # kvm_guest_exit_irqoff()
        run["return"] = c.events[first]
        if sc.kernel >= (5, 11):
            run["exit"] = c.ev("kvm_exit", 2000, **self._exit_reason(irq_exit), vcpu=0, rip=0xFFF0)
        self._post_exit_arrivals(self._us(0, 2))
        c.pi("irq_enable", n["w1_on"], "0x0", dt=self._us(1, 3))        # kvm_before_interrupt; local_irq_enable
        late_timing = bool(x86_window_is_guest_time(parse(sc.release))[0])
        self._take_pending(run, "irq window" + (" before vtime_account_guest_exit" if late_timing else
                                                " after guest timing ended"), charged_guest=late_timing)
        c.pi("irq_disable", n["w1_off"], "0x0")
        c.pi("irq_enable", n["exit_on"], "0x0", dt=self._us(1, 3))
        if sc.kernel < (5, 11):
            run["exit"] = c.ev("kvm_exit", 2000, **self._exit_reason(irq_exit), vcpu=0, rip=0xFFF0)

    def _x86_exit(self, run: dict, n: dict, irq_exit: bool) -> None:
        c = self.c
        first = len(c.events)
        if self.nohz:
            c.rcu_start()                                               # guest_state_exit_irqoff()
        c.pi("irq_disable", "svm_vcpu_run+0x186/0x6b0", "0x0", bracketed=False, dt=500)
        run["return"] = c.events[first]
        self._post_exit_arrivals(self._us(0, 2))
        c.pi("irq_enable", n["w1_on"], "0x0", dt=self._us(1, 3))        # kvm_before_interrupt; local_irq_enable
        self._take_pending(run, "irq window before guest_timing_exit", charged_guest=True)
        c.pi("irq_disable", n["w1_off"], "0x0")
        c.pi("irq_enable", n["exit_on"], "0x0", dt=self._us(1, 3))
        run["exit"] = c.ev("kvm_exit", 2000, **self._exit_reason(irq_exit), vcpu=0, rip=0xFFF0)
