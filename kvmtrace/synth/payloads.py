"""Each event's printed payload: the kernel's TP_printk, and trace-cmd's -N rendering of it.

The two differ where the tools differ: the kernel prints ``%pS`` as
``sym+off/size`` and hashes ``%p`` pointers; trace-cmd (kallsyms without sizes)
prints ``sym+off`` and raw pointers, and shows hrtimer ``mode`` as a number.
"""
from __future__ import annotations

from typing import Any

from .emit import Event
from .scenario import Scenario

HRTIMER_MODES = {"ABS": 0x0, "REL": 0x1, "ABS|PINNED|HARD": 0xA}
#: libtraceevent plugin_kvm.c's own SVM exit names, and plugin_sched_switch.c's state letters
SVM_PLUGIN_NAMES = {"interrupt": "EXIT_INTR", "cpuid": "EXIT_CPUID", "hlt": "EXIT_HLT", "io": "EXIT_IOIO",
                    "msr": "EXIT_MSR", "npf": "EXIT_NPF"}
PLUGIN_STATES = {"R": "R", "S": "S", "D": "D", "I": "W"}


def _sym(s: str, tool: str) -> str:
    return s.split("/")[0] if tool == "trace-cmd" else s


def _ptr(v: int, tool: str) -> str:
    return f"0x{v:x}" if tool == "trace-cmd" else "(____ptrval____)"


def plugins(e: Event, sc: Scenario) -> str:
    """What plain ``trace-cmd report`` prints: libtraceevent's plugins rewrite some events
    (kvm: x86 forms, and field-lookup errors on arm64; hrtimer; sched_switch)."""
    f, n = e.fields, e.name
    if n == "kvm_entry":
        return f" vcpu {f['vcpu']} rip 0x{f['rip']:x}" if sc.arch == "x86" else \
            "CAN'T FIND FIELD \"vcpu_id\"<CANT FIND FIELD rip>" + render(e, sc, "trace-cmd")
    if n == "kvm_exit":
        return f"reason {SVM_PLUGIN_NAMES.get(f['reason'], f['reason'])} rip 0x{f['rip']:x} info 0 0" if sc.arch == "x86" else \
            "<CANT FIND FIELD exit_reason>" + render(e, sc, "trace-cmd")
    if n == "hrtimer_expire_entry":
        return f"hrtimer=0x{f['hrtimer']:x} now={f['now']} function={f['function']}/0x0"
    if n == "hrtimer_start":
        return f"hrtimer=0x{f['hrtimer']:x} function={f['function']}/0x0 expires={f['expires']} softexpires={f['softexpires']}"
    if n == "sched_switch":
        return (f"{f['prev_comm']}:{f['prev_pid']} [{f['prev_prio']}] {PLUGIN_STATES[f['prev_state']]} ==> "
                f"{f['next_comm']}:{f['next_pid']} [{f['next_prio']}]")
    return render(e, sc, "trace-cmd")


def render(e: Event, sc: Scenario, tool: str = "kernel") -> str:
    """Payload text of ``e`` as ``tool`` ("kernel" or "trace-cmd" -N) prints it."""
    if tool == "trace-cmd-plugins":
        return plugins(e, sc)
    f: dict[str, Any] = e.fields
    n = e.name
    if n in ("irq_disable", "irq_enable"):
        return f"caller={_sym(f['caller'], tool)} parent={_sym(f['parent'], tool)}"
    if n in ("rcu_dyntick", "rcu_watching"):
        return f"{f['polarity']} {f['oldnesting']:x} {f['newnesting']:x} {f['counter']:#x}"
    if n == "rcu_utilization":
        return f["s"]
    if n == "kvm_entry":
        if sc.arch == "x86":
            return f"vcpu {f['vcpu']}, rip 0x{f['rip']:x}"
        return f"PC: 0x{f['vcpu_pc']:0{sc.pc_width}x}"
    if n == "kvm_exit":
        if sc.arch == "x86":
            return (f"vcpu {f['vcpu']} reason {f['reason']} rip 0x{f['rip']:x} info1 0x{0:016x} info2 0x{0:016x} "
                    f"intr_info 0x{0:08x} error_code 0x{0:08x}")
        return f"{f['ret']}: HSR_EC: 0x{f['esr_ec']:04x} ({f['ec_name']}), PC: 0x{f.get('vcpu_pc', 0x40000000):0{sc.pc_width}x}"
    if n == "irq_handler_entry":
        return f"irq={f['irq']} name={f['name']}"
    if n == "irq_handler_exit":
        return f"irq={f['irq']} ret={f['ret']}"
    if n in ("softirq_entry", "softirq_exit", "softirq_raise"):
        return f"vec={f['vec']} [action={f['action']}]"
    if n == "hrtimer_expire_entry":
        return f"hrtimer={_ptr(f['hrtimer'], tool)} function={f['function']} now={f['now']}"
    if n == "hrtimer_start":
        mode = f"0x{HRTIMER_MODES[f['mode']]:x}" if tool == "trace-cmd" else f["mode"]
        return (f"hrtimer={_ptr(f['hrtimer'], tool)} function={f['function']} expires={f['expires']} "
                f"softexpires={f['softexpires']} mode={mode} was_armed=0")  # the 6.1 format's extra field
    if n == "hrtimer_expire_exit":
        return f"hrtimer={_ptr(f['hrtimer'], tool)}"
    if n in ("ipi_entry", "ipi_exit"):
        return f"({f['reason']})"
    if n.endswith("_entry") or n.endswith("_exit"):  # x86 irq_vectors
        return f"vector={f['vector']}"
    if n == "tick_stop":
        return f"success={f['success']} dependency={f['dependency']}"
    if n == "sched_switch":
        return (f"prev_comm={f['prev_comm']} prev_pid={f['prev_pid']} prev_prio={f['prev_prio']} "
                f"prev_state={f['prev_state']} ==> next_comm={f['next_comm']} next_pid={f['next_pid']} "
                f"next_prio={f['next_prio']}")
    raise KeyError(f"no payload rendering for {n}")
