"""Names the kernel prints that the model keys on (docs/kernel.md A, C, E).

Kept in one place so a new kernel version or vendor tree is one edit here.
"""
from __future__ import annotations

#: irq_enable callers that prove the reworked (5.17+) guest entry: guest_state_enter_irqoff()
#: traced from the noinstr enter/exit helper, right after kvm_entry
ENTER_EXIT_CALLERS = frozenset({"kvm_arm_vcpu_enter_exit", "vmx_vcpu_enter_exit", "svm_vcpu_enter_exit"})

#: irq_disable callers inside the guest entry itself (arm64 VHE __kvm_vcpu_run's
#: local_daif_mask()): their window spans the guest but is not the entry-logic bug
GUEST_ENTRY_DISABLE_CALLERS = frozenset({"__kvm_vcpu_run"})

#: the KVM_RUN loop: it disables IRQs before kvm_entry (the pre-fix path's window opens there),
#: and after the guest it opens and closes the host-IRQ window and re-enables IRQs
#: (x86 ``vcpu_enter_guest`` is usually inlined into ``kvm_arch_vcpu_ioctl_run``)
RUN_LOOP_CALLERS = frozenset({"kvm_arch_vcpu_ioctl_run", "vcpu_enter_guest"})

#: hrtimer callbacks of the periodic/nohz tick (tick_nohz_handler from ~v6.9)
TICK_FUNCTIONS = frozenset({"tick_sched_timer", "tick_nohz_handler", "tick_nohz_highres_handler"})

#: CONFIG_HZ candidates, as tick periods in ns
TICK_PERIODS_NS = (1_000_000, 3_333_333, 4_000_000, 10_000_000)

#: RCU polarity words → role. ≤6.11 ``rcu_dyntick``; ≥6.12 ``rcu_watching`` swapped the words.
#: Each word → (role, change of "watching"): stop/start are task-level EQS entry/exit;
#: open/close bracket a tracepoint (open before it, close after it): irq-level ones make RCU
#: watch just for it (+1/−1), nesting ones (``++=``/``--=``) change nothing (0)
RCU_ROLES = {
    "rcu_dyntick": {"Start": ("stop", -1), "End": ("start", 1), "Endirq": ("open", 1), "Startirq": ("close", -1),
                    "++=": ("open", 0), "--=": ("close", 0)},
    "rcu_watching": {"End": ("stop", -1), "Start": ("start", 1), "Startirq": ("open", 1), "Endirq": ("close", -1),
                     "++=": ("open", 0), "--=": ("close", 0)},
}

#: hardirq handler entry events (x86 vectors print as irq_vectors:<name>_entry)
HANDLER_EVENTS = frozenset({"irq_handler_entry", "local_timer_entry", "call_function_entry",
                            "call_function_single_entry", "reschedule_entry", "irq_work_entry",
                            "thermal_apic_entry", "threshold_apic_entry", "x86_platform_ipi_entry",
                            "spurious_apic_entry", "error_apic_entry"})

#: hardirq handler exit events: with the entries above they bound hardirq context where a
#: format prints no flags column
HANDLER_EXIT_EVENTS = frozenset({e[:-len("entry")] + "exit" for e in HANDLER_EVENTS})

#: `trace-cmd record -e` groups per analysis (docs/kernel.md D)
RECORD_EVENTS = {
    "kvm": "-e kvm:kvm_entry -e kvm:kvm_exit",
    "preemptirq": "-e preemptirq:irq_disable -e preemptirq:irq_enable",
    "rcu": "-e rcu:rcu_dyntick (>= v6.12: -e rcu:rcu_watching)",
    "irq": "-e irq:irq_handler_entry -e irq:irq_handler_exit -e irq:softirq_entry -e irq:softirq_exit",
    "timer": "-e timer:hrtimer_start -e timer:hrtimer_expire_entry -e timer:hrtimer_expire_exit -e timer:tick_stop",
}

#: exit reasons that mean "a host interrupt made the guest exit" (arm64 type, SVM, VMX)
IRQ_EXIT_REASONS = frozenset({"IRQ", "interrupt", "EXTERNAL_INTERRUPT", "EXIT_INTR"})  # EXIT_INTR: trace-cmd kvm plugin

