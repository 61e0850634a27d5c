"""How each event's payload prints across kernel versions and tools, and its typed columns.

One ``EventSpec`` per event: alternative full-line patterns (kernel
``TP_printk`` forms of different versions, trace-cmd plugin forms) and/or
order-independent ``key=value`` fields, plus the type of every column. The
binary reader yields the same columns from the raw record fields, so
``trace.df(name)`` has one shape whichever reader loaded the trace.

Types: ``int`` (signed decimal or 0x-hex), ``xint`` (bare hex → Int64),
``hex`` (unsigned hex → UInt64),
``shex`` (``%lx`` of a signed long), ``ptr`` (hex pointer, NA when hashed or
hidden), ``cat`` (string category), ``sym`` (symbol name, ``+0x``/``/0x`` cut off),
``symoff`` (symbol and offset: adds ``<name>_off``), ``flag`` (present → True).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..readers.flags import FLAG_COLUMNS

#: Columns every typed frame starts with (those every reader fills identically).
BASE_COLUMNS = ["ts", "seq", "cpu", "pid", "comm", *FLAG_COLUMNS]

_HEX = r"[0-9a-fA-F]+"
_SYMOFF = r"\S+"
#: what trace-cmd's x86 kvm plugin prints before the normal text when it runs on another
#: architecture's kvm events (docs/kernel.md B.3): "<CANT FIND FIELD exit_reason>TRAP: ..."
_PLUGIN_MISS = r"(?:<CANT FIND FIELD \w+>|CAN'T FIND FIELD \"\w+\")*"


@dataclass(frozen=True)
class EventSpec:
    """Patterns and column types for one event name."""

    patterns: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    types: dict[str, str] = field(default_factory=dict)
    #: fast path: (column, prefix) per space-separated token, used when every row has exactly
    #: these tokens with these prefixes and matches the first pattern, whose groups are then these
    #: tokens (the patterns decide anything else)
    split: tuple[tuple[str, str], ...] = ()


_PREEMPTIRQ = EventSpec(
    patterns=(rf"^caller=(?P<caller>{_SYMOFF}) parent=(?P<parent>{_SYMOFF})$",),
    types={"caller": "symoff", "parent": "symoff"},
    split=(("caller", "caller="), ("parent", "parent=")),
)
_SOFTIRQ = EventSpec(patterns=(r"^vec=(?P<vec>\d+) \[action=(?P<action>[^\]]*)\]$",),
                     types={"vec": "int", "action": "cat"})
_RCU_NESTING = EventSpec(
    patterns=(rf"^(?P<polarity>\S+) (?P<oldnesting>-?(?:0x)?{_HEX}) (?P<newnesting>-?(?:0x)?{_HEX})(?:\s+(?P<counter>0x{_HEX}|\d+))?$",),
    types={"polarity": "cat", "oldnesting": "shex", "newnesting": "shex", "counter": "int"},
    split=(("polarity", ""), ("oldnesting", ""), ("newnesting", ""), ("counter", "")),
)
_HRTIMER_PTR = EventSpec(keys=("hrtimer",), types={"hrtimer": "ptr"})
_WAKEUP = EventSpec(
    patterns=(
        r"^comm=(?P<wakee_comm>.*) pid=(?P<wakee_pid>-?\d+) prio=(?P<prio>-?\d+)(?: success=(?P<success>\d+))? target_cpu=(?P<target_cpu>\d+)$",
        # trace-cmd sched plugin
        r"^(?P<wakee_comm>.+):(?P<wakee_pid>-?\d+) \[(?P<prio>-?\d+)\](?: success=(?P<success>\d+))? CPU:(?P<target_cpu>\d+)$",
    ),
    types={"wakee_comm": "cat", "wakee_pid": "int", "prio": "int", "success": "int", "target_cpu": "int"},
)
_X86_EXIT_TYPES = {"vcpu": "int", "reason": "cat", "reason_flags": "cat", "rip": "hex", "info1": "hex",
                   "info2": "hex", "intr_info": "hex", "error_code": "hex"}

SPECS: dict[str, EventSpec] = {
    "kvm_entry": EventSpec(
        patterns=(
            rf"^{_PLUGIN_MISS}PC: 0x(?P<vcpu_pc>{_HEX})$",  # arm64 (%08lx ≤5.9, %016lx ≥5.10), riscv
            rf"^vcpu (?P<vcpu>\d+)(?:, rip 0x(?P<rip>{_HEX}))?(?P<immediate_exit> ?\[immediate exit\])?.*$",  # x86 all forms
            rf"^ ?vcpu (?P<vcpu>\d+) rip 0x(?P<rip>{_HEX})$",  # trace-cmd kvm plugin
        ),
        types={"vcpu_pc": "hex", "vcpu": "int", "rip": "hex", "immediate_exit": "flag"},
    ),
    "kvm_exit": EventSpec(
        patterns=(
            # arm64: "%s: HSR_EC: 0x%04x (%s), PC: 0x%08lx" (ESR_EC in vendor trees)
            rf"^{_PLUGIN_MISS}(?P<exit_type>[A-Z_]+|0x{_HEX}|\d+): (?:HSR|ESR)_EC: 0x(?P<esr_ec>{_HEX}) \((?P<esr_ec_class>[^)]*)\), PC: 0x(?P<vcpu_pc>{_HEX})$",
            # x86 v5.10+ (TRACE_EVENT_KVM_EXIT), trailing additions tolerated
            rf"^vcpu (?P<vcpu>\d+) reason (?P<reason>\S+)(?: \((?P<reason_flags>[^)]*)\))? rip 0x(?P<rip>{_HEX}) info1 0x(?P<info1>{_HEX}) info2 0x(?P<info2>{_HEX}) intr_info 0x(?P<intr_info>{_HEX}) error_code 0x(?P<error_code>{_HEX}).*$",
            # x86 late 2019: "vcpu %u reason %s rip 0x%lx info %llx %llx"
            rf"^vcpu (?P<vcpu>\d+) reason (?P<reason>\S+) rip 0x(?P<rip>{_HEX}) info (?P<info1>{_HEX}) (?P<info2>{_HEX}).*$",
            # x86 oldest, and trace-cmd's kvm plugin: "reason %s rip 0x%lx info %llx %llx"
            rf"^reason (?P<reason>\S+) rip 0x(?P<rip>{_HEX}) info (?P<info1>{_HEX}) (?P<info2>{_HEX})(?: vcpu (?P<vcpu>\d+))?.*$",
        ),
        types={"exit_type": "cat", "esr_ec": "xint", "esr_ec_class": "cat", "vcpu_pc": "hex", **_X86_EXIT_TYPES},
    ),
    "kvm_userspace_exit": EventSpec(patterns=(r"^reason (?P<reason>\S+) \((?P<code>-?\d+)\)$",),
                                    types={"reason": "cat", "code": "int"}),
    "irq_disable": _PREEMPTIRQ,
    "irq_enable": _PREEMPTIRQ,
    "preempt_disable": _PREEMPTIRQ,
    "preempt_enable": _PREEMPTIRQ,
    "rcu_dyntick": _RCU_NESTING,
    "rcu_watching": _RCU_NESTING,
    "rcu_utilization": EventSpec(patterns=(r"^(?P<s>.*)$",), types={"s": "cat"}),
    "irq_handler_entry": EventSpec(patterns=(r"^irq=(?P<irq>-?\d+) (?:name|handler)=(?P<name>.*)$",),
                                   types={"irq": "int", "name": "cat"}),
    "irq_handler_exit": EventSpec(patterns=(r"^irq=(?P<irq>-?\d+) ret=(?P<ret>\S+)$",),
                                  types={"irq": "int", "ret": "cat"}),
    "softirq_entry": _SOFTIRQ,
    "softirq_exit": _SOFTIRQ,
    "softirq_raise": _SOFTIRQ,
    "ipi_raise": EventSpec(patterns=(r"^target_mask=(?P<target_mask>\S+) \((?P<reason>.*)\)$",),
                           types={"target_mask": "cat", "reason": "cat"}),
    "ipi_entry": EventSpec(patterns=(r"^\((?P<reason>.*)\)$",), types={"reason": "cat"}),
    "ipi_exit": EventSpec(patterns=(r"^\((?P<reason>.*)\)$",), types={"reason": "cat"}),
    "hrtimer_start": EventSpec(keys=("hrtimer", "function", "expires", "softexpires", "mode"),
                               types={"hrtimer": "ptr", "function": "sym", "expires": "int",
                                      "softexpires": "int", "mode": "cat"}),
    "hrtimer_expire_entry": EventSpec(keys=("hrtimer", "function", "now"),
                                      types={"hrtimer": "ptr", "function": "sym", "now": "int"}),
    "hrtimer_expire_exit": _HRTIMER_PTR,
    "hrtimer_cancel": _HRTIMER_PTR,
    "tick_stop": EventSpec(patterns=(r"^success=(?P<success>-?\d+) dependency=(?P<dependency>\S+)$",),
                           types={"success": "int", "dependency": "cat"}),
    "local_timer_entry": EventSpec(patterns=(r"^vector=(?P<vector>\d+)$",), types={"vector": "int"}),
    "local_timer_exit": EventSpec(patterns=(r"^vector=(?P<vector>\d+)$",), types={"vector": "int"}),
    "sched_switch": EventSpec(
        patterns=(
            r"^prev_comm=(?P<prev_comm>.*) prev_pid=(?P<prev_pid>-?\d+) prev_prio=(?P<prev_prio>-?\d+) prev_state=(?P<prev_state>\S+)(?: ==>)? next_comm=(?P<next_comm>.*) next_pid=(?P<next_pid>-?\d+) next_prio=(?P<next_prio>-?\d+)$",
            # trace-cmd sched plugin: "prev:pid [prio] S ==> next:pid [prio]"
            r"^(?P<prev_comm>.+):(?P<prev_pid>-?\d+) \[(?P<prev_prio>-?\d+)\] (?P<prev_state>\S+) ==> (?P<next_comm>.+):(?P<next_pid>-?\d+) \[(?P<next_prio>-?\d+)\]$",
        ),
        types={"prev_comm": "cat", "prev_pid": "int", "prev_prio": "int", "prev_state": "cat",
               "next_comm": "cat", "next_pid": "int", "next_prio": "int"},
    ),
    "sched_wakeup": _WAKEUP,
    "sched_waking": _WAKEUP,
    "sched_wakeup_new": _WAKEUP,
    "user_enter": EventSpec(),
    "user_exit": EventSpec(),
}
