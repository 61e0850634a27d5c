"""What to simulate: architecture, entry logic, kernel version, CPUs, guests, event sets.

The kernel version selects what the real kernel would print: 4 or 5 flag columns
(5.15), the PC width (5.10), ``rcu_dyntick`` or ``rcu_watching`` with swapped
polarity words (6.12), ``tick_sched_timer`` or ``tick_nohz_handler`` (6.9).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Scenario:
    """One synthetic trace. Defaults: the real arm64 6.1 QEMU setup, on hardware-like timing."""

    arch: str = "arm64"              # arm64 | x86
    fixed: bool = False              # entry logic after "kvm/arm64: rework guest entry logic"
    kernel: tuple[int, int] = (6, 1)
    vcpu_cpus: tuple[int, ...] = (1,)
    nohz_full: tuple[int, ...] = (1,)  # vCPU CPUs with context tracking (RCU EQS around the guest)
    housekeeping_cpus: tuple[int, ...] = (0,)
    hz: int = 250
    duration_ns: int = 200_000_000
    seed: int = 1
    preemptirq: bool = True          # preemptirq:irq_disable/irq_enable recorded
    rcu: bool = True                 # rcu:rcu_dyntick / rcu_watching recorded
    late_irq_share: float = 0.3      # pre-fix arm64: share of pending IRQs taken after guest_exit (no ISB)
    guest_run_us: tuple[float, float] = (20.0, 400.0)
    device_irq_hz: float = 300.0     # host device IRQs/IPIs per vCPU CPU
    guest_timer_hz: float | None = None  # arm64: the guest's vtimer IRQ (1500/s); x86: reschedule IPIs (100/s)
    lost_gap: bool = False           # drop a slice of events from one CPU and mark it lost
    clock_offset_ns: int = 12_351_200  # trace clock (local) − CLOCK_MONOTONIC
    start_ns: int = 500_000_000      # trace clock at the first event (uptime-like, as real traces)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timer_hz(self) -> float:
        if self.guest_timer_hz is not None:
            return self.guest_timer_hz
        return 1500.0 if self.arch == "arm64" else 100.0

    @property
    def unrecorded(self) -> set[str]:
        """Events the usual recording leaves out (docs/kernel.md D: x86 records only the timer vectors)."""
        return {"reschedule_entry", "reschedule_exit"} if self.arch == "x86" else set()

    @property
    def flag_columns(self) -> int:
        return 5 if self.kernel >= (5, 15) else 4

    @property
    def rcu_event(self) -> str:
        return "rcu_watching" if self.kernel >= (6, 12) else "rcu_dyntick"

    @property
    def tick_function(self) -> str:
        return "tick_nohz_handler" if self.kernel >= (6, 9) else "tick_sched_timer"

    @property
    def pc_width(self) -> int:
        return 16 if self.kernel >= (5, 10) else 8

    @property
    def counter_step(self) -> int:
        if self.kernel >= (6, 0):
            return 4
        return 1 if self.kernel >= (5, 15) else 2

    @property
    def release(self) -> str:
        """``uname -r`` of the simulated kernel; 5.10 and 5.12 stand for the stable releases before the
        x86 tick-accounting backports (5.10.41, 5.12.8), so their guest timing ends before the IRQ window."""
        patch = {(5, 10): 40, (5, 12): 7}.get(self.kernel, 0)
        return f"{self.kernel[0]}.{self.kernel[1]}.{patch}"

    @property
    def variant(self) -> str:
        return f"{self.arch}-{'fixed' if self.fixed else 'prefix'}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel"] = ".".join(map(str, self.kernel))
        return d
