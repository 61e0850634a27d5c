"""Host interrupts as the kernel traces them: exception entry, handler, exit.

arm64 6.1: ``irq_disable caller=enter_from_kernel_mode`` (not bracketed), the
handler events in hardirq context, then the bracketed ``irq_enable`` from
``exit_to_kernel_mode``. x86 6.1: ``irqentry_enter`` and the sysvec return.
The tick handler reads CLOCK_MONOTONIC (``now``) when it runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from .emit import Cpu, Event

# arm64 IRQ numbers as in the real QEMU traces
ARM64_IRQS = {"tick": (13, "arch_timer"), "vtimer": (12, "kvm guest vtimer"), "device": (33, "virtio0"),
              "ipi": (1, "IPI")}
X86_VECTORS = {"tick": ("local_timer", 236), "ipi": ("reschedule", 253)}
X86_DEVICE = (11, "virtio0")


@dataclass
class Irq:
    """A host interrupt: what it is and when it became pending (trace clock, ns)."""

    kind: str   # tick | vtimer | device | ipi
    due: int
    handled: Event | None = None   # its first handler event, once taken
    tick: Event | None = None      # hrtimer_expire_entry of a tick


def take(c: Cpu, irq: Irq, mono_offset: int) -> None:
    """Take ``irq`` now (IRQs were just unmasked or the CPU was interruptible)."""
    sc = c.sc
    x86 = sc.arch == "x86"
    c.at_least(irq.due)
    if x86:
        c.pi("irq_disable", "irqentry_enter+0x27/0x50", "0x0", bracketed=False, dt=2000)
    else:
        c.pi("irq_disable", "enter_from_kernel_mode+0x34/0x64", "el1_interrupt+0x20/0x50", bracketed=False, dt=2000)
    c.hardirq = True
    if x86 and irq.kind in X86_VECTORS:
        name, vec = X86_VECTORS[irq.kind]
        irq.handled = c.ev(f"{name}_entry", 3000, vector=vec)
    else:
        num, label = X86_DEVICE if x86 else ARM64_IRQS[irq.kind]
        irq.handled = c.ev("irq_handler_entry", 3000, irq=num, name=label)
    if irq.kind == "tick":
        now = c.t + 2000 - mono_offset
        irq.tick = c.ev("hrtimer_expire_entry", 2000, hrtimer=0xFFFF00003FDC5E40 + 0x100 * c.cpu,
                        function=sc.tick_function, now=now)
        c.rcu_util("scheduler-tick", 3000)
        c.ev("hrtimer_expire_exit", 4000, hrtimer=0xFFFF00003FDC5E40 + 0x100 * c.cpu)
        # the tick re-arms itself for the next period (hrtimer_start with the grid-aligned expiry)
        period = 1_000_000_000 // sc.hz
        nxt = (irq.due - mono_offset) // period * period + period
        c.ev("hrtimer_start", 2000, hrtimer=0xFFFF00003FDC5E40 + 0x100 * c.cpu, function=sc.tick_function,
             expires=nxt, softexpires=nxt, mode="ABS")
    elif irq.kind == "ipi" and not x86:
        c.ev("ipi_entry", 1000, reason="Function call interrupts")
        c.ev("ipi_exit", 2000, reason="Function call interrupts")
    if x86 and irq.kind in X86_VECTORS:
        c.ev(f"{X86_VECTORS[irq.kind][0]}_exit", 2000, vector=X86_VECTORS[irq.kind][1])
    else:
        num = (X86_DEVICE if x86 else ARM64_IRQS[irq.kind])[0]
        c.ev("irq_handler_exit", 2000, irq=num, ret="handled")
    c.hardirq = False
    if x86:
        stub = {"tick": "asm_sysvec_apic_timer_interrupt+0x1b/0x20",
                "ipi": "asm_sysvec_reschedule_ipi+0x1b/0x20"}.get(irq.kind, "asm_common_interrupt+0x27/0x40")
        c.pi("irq_enable", stub, "0x0")
    else:
        c.pi("irq_enable", "exit_to_kernel_mode.isra.0+0x14/0x40", "el1_interrupt+0x40/0x50")
