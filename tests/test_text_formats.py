"""Every text format variant, built from the exact kernel/tool format strings (docs/kernel.md A, B)."""
from __future__ import annotations

import gzip
import lzma

import pandas as pd
import pytest
import zstandard

import kvmtrace


def load_text(tmp_path, text: str, name: str = "t.txt"):
    p = tmp_path / name
    p.write_text(text)
    return kvmtrace.load(p)


def tracefs_line(comm, pid, cpu, flags, ts, event, payload, tgid=None):
    """The kernel's trace_print_context(): "%16s-%-7d " [(%7d) ] "[%03d] " flags " %5lu.%06lu: " """
    tg = "" if tgid is None else (f"({tgid:>7}) " if tgid >= 0 else "(-------) ")
    fl = f"{flags} " if flags else ""
    return f"{comm:>16}-{pid:<7} {tg}[{cpu:03d}] {fl}{ts}: {event}: {payload}\n"


ARM64_EXITS = [
    ("TRAP: HSR_EC: 0x0024 (DABT_LOW), PC: 0xffff800010081234", "TRAP", 0x24, "DABT_LOW", 0xFFFF800010081234),
    ("IRQ: HSR_EC: 0x0000 (UNKNOWN), PC: 0x0000000040000010", "IRQ", 0, "UNKNOWN", 0x40000010),
    ("TRAP: ESR_EC: 0x0001 (WFx), PC: 0x40001000", "TRAP", 1, "WFx", 0x40001000),  # %08lx, vendor label
    ("HYP_GONE: HSR_EC: 0x0016 (HVC64), PC: 0x00000000", "HYP_GONE", 0x16, "HVC64", 0),
]


def test_arm64_kvm_exit_both_labels_and_pc_widths(tmp_path):
    text = "".join(tracefs_line("CPU 0/KVM", 4242, 2, "d..1.", f"100.{i:06d}", "kvm_exit", p)
                   for i, (p, *_r) in enumerate(ARM64_EXITS))
    text += tracefs_line("CPU 0/KVM", 4242, 2, "d..1.", "101.000000", "kvm_entry", "PC: 0x0000000040000010")
    text += tracefs_line("CPU 0/KVM", 4242, 2, "d..1.", "101.000001", "kvm_entry", "PC: 0x40000010")
    tr = load_text(tmp_path, text)
    d = tr.df("kvm_exit")
    assert list(d["exit_type"]) == [e[1] for e in ARM64_EXITS]
    assert list(d["esr_ec"]) == [e[2] for e in ARM64_EXITS]
    assert list(d["esr_ec_class"]) == [e[3] for e in ARM64_EXITS]
    assert list(d["vcpu_pc"]) == [e[4] for e in ARM64_EXITS]
    assert set(tr.events["comm"]) == {"CPU 0/KVM"} and set(tr.events["pid"]) == {4242}
    assert list(tr.df("kvm_entry")["vcpu_pc"]) == [0x40000010, 0x40000010]


X86_EXITS = [
    # v5.10+: "vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x"
    "vcpu 1 reason EXTERNAL_INTERRUPT rip 0xffffffff81000000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x800000ec error_code 0x00000000",
    # 2024 suffix
    "vcpu 1 reason HLT rip 0x1000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000",
    # VMX failed vmentry flag
    "vcpu 0 reason INVALID_STATE (FAILED_VMENTRY) rip 0x10 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000",
    # late 2019: "vcpu %u reason %s rip 0x%lx info %llx %llx"
    "vcpu 2 reason EPT_VIOLATION rip 0xfff0 info 181 0",
    # oldest and trace-cmd's plugin: "reason %s rip 0x%lx info %llx %llx"
    "reason MSR_WRITE rip 0xffffffff81063a94 info 0 0",
    # SVM lower-case names
    "vcpu 0 reason io rip 0x9 info1 0x0000000000100010 info2 0x000000000000000b intr_info 0x00000000 error_code 0x00000000",
]


def test_x86_kvm_exit_all_three_forms_and_suffixes(tmp_path):
    text = "".join(tracefs_line("CPU 1/KVM", 77, 3, "d....", f"5.{i:06d}", "kvm_exit", p) for i, p in enumerate(X86_EXITS))
    for i, p in enumerate(["vcpu 1", "vcpu 1, rip 0xffffffff81000000", "vcpu 1, rip 0x1000[immediate exit]"]):
        text += tracefs_line("CPU 1/KVM", 77, 3, "d....", f"6.{i:06d}", "kvm_entry", p)
    tr = load_text(tmp_path, text)
    d = tr.df("kvm_exit")
    assert d.attrs["unparsed"] == 0
    assert list(d["reason"]) == ["EXTERNAL_INTERRUPT", "HLT", "INVALID_STATE", "EPT_VIOLATION", "MSR_WRITE", "io"]
    assert list(d["vcpu"].astype("Int64")) == [1, 1, 0, 2, pd.NA, 0]
    assert list(d["rip"]) == [0xFFFFFFFF81000000, 0x1000, 0x10, 0xFFF0, 0xFFFFFFFF81063A94, 9]
    assert list(d["info1"]) == [0, 0, 0, 0x181, 0, 0x100010]
    assert d["intr_info"].iloc[0] == 0x800000EC
    assert d["reason_flags"].iloc[2] == "FAILED_VMENTRY"
    e = tr.df("kvm_entry")
    assert list(e["vcpu"]) == [1, 1, 1]
    assert pd.isna(e["rip"].iloc[0]) and e["rip"].iloc[2] == 0x1000
    assert list(e["immediate_exit"]) == [False, False, True]


def test_four_and_five_flag_columns_and_bh(tmp_path):
    text = "# tracer: nop\n#\n#                              _-----=> irqs-off\n"
    text += tracefs_line("bash", 1, 0, "dnh1", "1.000001", "irq_handler_entry", "irq=162 name=arch_timer")
    text += tracefs_line("bash", 1, 0, ".ns2", "1.000002", "softirq_entry", "vec=1 [action=TIMER]")
    tr4 = load_text(tmp_path, text, "four.txt")
    ev = tr4.events
    assert tr4.meta.flag_width == 4
    assert list(ev["irqs_off"]) == [True, False]
    assert list(ev["need_resched"]) == [True, True]
    assert list(ev["hardirq"]) == [True, False] and list(ev["softirq"]) == [False, True]
    assert list(ev["preempt_depth"]) == [1, 2]
    assert ev["migrate_disable"].isna().all()  # ≤5.14 kernels have no such column
    text5 = "#                                _-----=> irqs-off/BH-disabled\n"
    text5 += tracefs_line("a", 2, 1, "D.Z3f", "2.000001", "irq_handler_entry", "irq=1 name=x")
    text5 += tracefs_line("a", 2, 1, "b.z.1", "2.000002", "irq_handler_exit", "irq=1 ret=handled")
    ev5 = load_text(tmp_path, text5, "five.txt").events
    assert list(ev5["irqs_off"]) == [True, False] and list(ev5["bh_off"]) == [True, True]
    assert list(ev5["nmi"]) == [True, True] and list(ev5["hardirq"]) == [True, False]
    assert list(ev5["preempt_depth"]) == [3, 0] and list(ev5["migrate_disable"]) == [15, 1]


def test_rcu_dyntick_and_rcu_watching(tmp_path):
    text = tracefs_line("vcpu0", 32, 1, "d....", "0.529212", "rcu_dyntick", "Start 1 0 0x2ec")
    text += tracefs_line("vcpu0", 32, 1, "d....", "0.529215", "rcu_dyntick", "End 0 1 0x2f4")
    text += tracefs_line("vcpu0", 32, 1, "d....", "0.529216", "rcu_dyntick", "++= 4000000000000000 4000000000000002 0x2f4")
    text += tracefs_line("vcpu0", 32, 1, "d....", "0.529217", "rcu_dyntick", "Startirq 1 0   0")
    text += tracefs_line("vcpu0", 32, 1, "d....", "0.529218", "rcu_watching", "End 1 0 0x300")
    text += tracefs_line("vcpu0", 32, 1, "d....", "0.529219", "rcu_dyntick", "--= ffffffffffffffff 1 0x4")
    tr = load_text(tmp_path, text)
    d = tr.df("rcu_dyntick")
    assert list(d["polarity"]) == ["Start", "End", "++=", "Startirq", "--="]
    assert list(d["oldnesting"]) == [1, 0, 0x4000000000000000, 1, -1]
    assert list(d["newnesting"]) == [0, 1, 0x4000000000000002, 0, 1]
    assert list(d["counter"]) == [0x2EC, 0x2F4, 0x2F4, 0, 4]
    w = tr.df("rcu_watching")
    assert list(w["polarity"]) == ["End"] and list(w["counter"]) == [0x300]


def test_tgid_column_counter_clock_and_tricky_comms(tmp_path):
    text = tracefs_line("kworker/u16:2-events", 123, 0, "....", "1000", "sched_wakeup",
                        "comm=CPU 0/KVM pid=4242 prio=120 target_cpu=002", tgid=123)
    text += tracefs_line("memfd:sealed-91", 1452, 1, "d...", "1001", "irq_handler_entry", "irq=13 name=kvm guest vtimer", tgid=-1)
    text += f"{'CPU 0/KVM':>16}-4242    (   4200) [002] d... 1002: kvm_entry: PC: 0x0\n"
    tr = load_text(tmp_path, text)
    ev = tr.events
    assert list(ev["comm"]) == ["kworker/u16:2-events", "memfd:sealed-91", "CPU 0/KVM"]
    assert list(ev["pid"]) == [123, 1452, 4242]
    assert list(ev["tgid"].astype("Int64")) == [123, pd.NA, 4200]
    assert tr.meta.clock == "counter" and list(ev["ts"]) == [1000, 1001, 1002]
    w = tr.df("sched_wakeup")
    assert w["wakee_comm"].iloc[0] == "CPU 0/KVM" and w["wakee_pid"].iloc[0] == 4242 and w["target_cpu"].iloc[0] == 2
    assert tr.df("irq_handler_entry")["name"].iloc[0] == "kvm guest vtimer"


def test_trace_cmd_report_variants_prologue_empty_cpu_lost_and_plugins(tmp_path):
    # default: "%16s-%-5d [%03d] %6.1000d: %-20s payload"; plugins rewrite sched_switch and hrtimer
    text = "version = 6\ncpus=4\nCPU 3 is empty\n"
    text += f"{'bash':>16}-{5122:<5} [{0:03d}] {443.051401:12.6f}: {'sched_switch:':<20} bash:5122 [120] S ==> CPU 0/KVM:4242 [120]\n"
    text += f"{'ls':>16}-{5126:<5} [{1:03d}] {443.053453:12.6f}: {'hrtimer_expire_entry:':<20} hrtimer=0xffff888627d1c6f8 now=443024013535 function=tick_nohz_handler/0x0\n"
    text += "CPU:1 [LOST 42 EVENTS]\n"
    text += f"{'ls':>16}-{5126:<5} [{1:03d}] {443.053455:12.6f}: {'hrtimer_expire_exit:':<20} hrtimer=0xffff888627d1c6f8\n"
    text += "CPU:0 [5469184 EVENTS DROPPED]\n"
    tr = load_text(tmp_path, text)
    m = tr.meta
    assert m.source_format == "trace-cmd-report" and m.cpus == 4 and m.empty_cpus == [3]
    assert m.kernel["trace_cmd_file_version"] == 6
    assert m.lost == {1: 42, 0: 5469184} and m.lost_markers == 2
    assert m.lost_gaps[0]["cpu"] == 1 and m.lost_gaps[0]["ts"] == 443053453000
    assert any("lost" in w for w in m.warnings)
    assert m.events + m.skipped_total == m.lines == 8
    ss = tr.df("sched_switch")
    assert (ss["prev_comm"].iloc[0], ss["prev_pid"].iloc[0], ss["prev_state"].iloc[0]) == ("bash", 5122, "S")
    assert (ss["next_comm"].iloc[0], ss["next_pid"].iloc[0], ss["next_prio"].iloc[0]) == ("CPU 0/KVM", 4242, 120)
    hr = tr.df("hrtimer_expire_entry")
    assert (hr["function"].iloc[0], hr["now"].iloc[0], hr["hrtimer"].iloc[0]) == ("tick_nohz_handler", 443024013535, 0xFFFF888627D1C6F8)
    assert tr.events["irqs_off"].isna().all()  # no flags column in default trace-cmd output


def test_trace_cmd_latency_ns_format(tmp_path):
    # -l -t: "%8.8s-%-5d %3d" + flags, then " %9.1d:" ns
    text = "cpus=2\n"
    text += "   vcpu0-32      1d....     0.528884736: rcu_dyntick:          ++= 4000000000000000 4000000000000002 0x2ec\n"
    text += "rcu_sche-11      0d.h1.     0.529207808: irq_handler_entry:    irq=13 name=arch_timer\n"
    text += "   vcpu0-32     12.....     0.532753488: kvm_exit:             TRAP: HSR_EC: 0x0020 (IABT_LOW), PC: 0x0000000040000000\n"
    tr = load_text(tmp_path, text)
    ev = tr.events
    assert tr.meta.source_format == "trace-cmd-report-latency"
    assert list(ev["cpu"]) == [1, 0, 12] and list(ev["pid"]) == [32, 11, 32]
    assert list(ev["comm"]) == ["vcpu0", "rcu_sche", "vcpu0"]
    assert list(ev["ts"]) == [528884736, 529207808, 532753488]
    assert list(ev["irqs_off"]) == [True, True, False] and list(ev["hardirq"]) == [False, True, False]
    assert list(ev["preempt_depth"]) == [0, 1, 0]


def test_perf_script_with_and_without_ns(tmp_path):
    text = "            perf  5613 [000]   493.713355:         timer:hrtimer_expire_entry: hrtimer=0xffffc9000052bbe8 function=hrtimer_wakeup now=493713894289\n"
    text += "       CPU 0/KVM  4242 [002] 493.713411123:                 kvm:kvm_exit: vcpu 0 reason HLT rip 0x10 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n"
    text += " memfd:sealed-91  1452 [001]   493.713591:                 sched:sched_switch: prev_comm=memfd:sealed-91 prev_pid=1452 prev_prio=120 prev_state=R ==> next_comm=swapper/1 next_pid=0 next_prio=120\n"
    tr = load_text(tmp_path, text)
    ev = tr.events
    assert tr.meta.source_format == "perf-script"
    assert list(ev["comm"]) == ["perf", "CPU 0/KVM", "memfd:sealed-91"]
    assert list(ev["system"]) == ["timer", "kvm", "sched"]
    assert list(ev["event"]) == ["hrtimer_expire_entry", "kvm_exit", "sched_switch"]
    assert list(ev["ts"]) == [493713355000, 493713411123, 493713591000]
    assert tr.df("kvm_exit")["reason"].iloc[0] == "HLT"


def test_function_tracer_lines_and_stack_frames_are_accounted(shared):
    tr = kvmtrace.load(shared / "public" / "arm32_rpi_host_arch_timer_do_timer_stack.txt")
    ev = tr.events
    assert set(ev["event"]) >= {"irq_handler_entry", "function", "kernel_stack"}
    assert tr.meta.skipped["stack-frame"] > 10
    assert tr.meta.events + tr.meta.skipped_total == tr.meta.lines
    assert tr.meta.flag_width == 4


@pytest.mark.parametrize("kind", ["gzip", "xz", "zstd"])
def test_compressed_text_is_sniffed_from_bytes(tmp_path, shared, kind):
    raw = (shared / "real-x86-6.18" / "host-idle.report.txt").read_bytes()
    data = {"gzip": gzip.compress, "xz": lzma.compress, "zstd": zstandard.ZstdCompressor().compress}[kind](raw)
    p = tmp_path / "trace.bin"  # the name says nothing
    p.write_bytes(data)
    tr = kvmtrace.load(p)
    plain = kvmtrace.load(shared / "real-x86-6.18" / "host-idle.report.txt")
    assert tr.meta.compression == kind
    pd.testing.assert_frame_equal(tr.events, plain.events)


def test_unknown_events_load_with_a_generic_key_value_splitter(tmp_path):
    text = tracefs_line("qemu", 9, 0, "....", "3.000001", "kvm_mmio", "mmio write len 4 gpa 0xfee00000 val 0x0")
    text += tracefs_line("qemu", 9, 0, "....", "3.000002", "kvm_fpu", "load")
    text += tracefs_line("qemu", 9, 0, "....", "3.000003", "mm_page_alloc", "page=0xffffea0001 pfn=0x1234 order=0 migratetype=1 gfp_flags=GFP_KERNEL")
    tr = load_text(tmp_path, text)
    d = tr.df("mm_page_alloc")
    assert d["order"].iloc[0] == 0 and d["pfn"].iloc[0] == 0x1234 and d["gfp_flags"].iloc[0] == "GFP_KERNEL"
    assert tr.df("kvm_fpu").attrs["unparsed"] == 1  # no key=value: kept raw, counted
    assert tr.events["payload"].iloc[1] == "load"


@pytest.mark.parametrize("order", ["in order", "back inside a block", "back across blocks"])
def test_events_table_is_in_time_order_whatever_order_the_lines_come_in(tmp_path, order):
    """The kernel's per-CPU buffers merged by a tool, or text spliced by hand, can step back in time:
    the table is sorted by (ts, seq) with ``seq`` still the order of the lines, whether the step back
    is inside one block the reader decodes or between two (blocks of ~200 bytes here)."""
    from kvmtrace.meta import TraceMeta
    from kvmtrace.readers.sniff import TRACEFS
    from kvmtrace.readers.text import read_text

    stamps = list(range(100, 130))
    if order == "back inside a block":
        stamps[3], stamps[4] = stamps[4], stamps[3]
    elif order == "back across blocks":
        stamps = stamps[15:] + stamps[:15]
    p = tmp_path / "t.txt"
    p.write_text("".join(tracefs_line("vcpu", 7, 0, "d...", f"0.{t:06d}", "irq_disable", "caller=a+0x1/0x2 parent=b+0x3/0x4")
                         for t in stamps))
    meta = TraceMeta(path=str(p), source_format="tracefs")
    events = read_text(str(p), TRACEFS, meta, block_size=200).to_frame()
    assert events["ts"].tolist() == sorted(t * 1000 for t in stamps)
    assert events["seq"].tolist() == sorted(range(len(stamps)), key=lambda k: stamps[k])
    assert events["line"].tolist() == [s + 1 for s in events["seq"]]
