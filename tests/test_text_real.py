"""Text readers on real traces: counts equal trace-cmd's, fields equal what was printed."""
from __future__ import annotations

import re

import numpy as np
import pytest

import kvmtrace
from conftest import ARM64, X86_618, X86_SVM, oracle_counts, oracle_latency_rows, table_counts, trace_cmd_report

HOST_IDLE_DAT = str(X86_618 / "host-idle.v7-zstd.dat")
REAL_TEXT = ["host-idle.report.txt", "host-idle.report-latency.txt", "host-idle.report-ns.txt", "host-idle.tracefs.txt"]


@pytest.mark.parametrize("name", REAL_TEXT)
def test_x86_618_text_counts_match_trace_cmd(name):
    tr = kvmtrace.load(X86_618 / name)
    expected = oracle_counts(trace_cmd_report(HOST_IDLE_DAT, "-N"))
    assert sum(expected.values()) == 60657
    assert table_counts(tr.events) == expected
    assert tr.meta.events == 60657
    # every line accounted for: events + skipped (prologue, header comments)
    assert tr.meta.events + tr.meta.skipped_total == tr.meta.lines
    assert tr.meta.cpus == 2


def test_x86_618_formats_detected_with_their_properties():
    fmt = {n: kvmtrace.load(X86_618 / n).meta for n in REAL_TEXT}
    assert fmt["host-idle.report.txt"].source_format == "trace-cmd-report"
    assert fmt["host-idle.report.txt"].ts_resolution_ns == 1000
    assert fmt["host-idle.report-ns.txt"].ts_resolution_ns == 1
    assert fmt["host-idle.report-latency.txt"].source_format == "trace-cmd-report-latency"
    assert fmt["host-idle.report-latency.txt"].flag_width == 5
    assert fmt["host-idle.tracefs.txt"].source_format == "tracefs"
    assert fmt["host-idle.tracefs.txt"].flag_width == 5
    assert fmt["host-idle.tracefs.txt"].kernel["bh_flag"] is True  # "irqs-off/BH-disabled" header


def test_ns_text_timestamps_equal_latency_text_and_flags_match():
    ns = kvmtrace.load(X86_618 / "host-idle.report-ns.txt").events
    rows = oracle_latency_rows(trace_cmd_report(HOST_IDLE_DAT, "-N", "-t", "-l"))
    assert len(rows) == len(ns)
    assert np.array_equal(ns["ts"].to_numpy(), np.array([r[4] for r in rows]))
    lat = kvmtrace.load(X86_618 / "host-idle.report-latency.txt").events
    # µs text rounds what ns text says to the µs
    assert np.all(np.abs(lat["ts"].to_numpy() - ns["ts"].to_numpy()) < 1000)
    flags = [r[3] for r in rows]
    assert list(lat["irqs_off"].to_numpy()) == [f[0] == "d" for f in flags]
    assert list(lat["hardirq"].to_numpy()) == [f[2] in "hH" for f in flags]
    assert list(lat["preempt_depth"].astype(int)) == [0 if f[3] == "." else int(f[3], 16) for f in flags]


def test_tracefs_flags_and_fields_spot_checked_against_the_text():
    tr = kvmtrace.load(X86_618 / "host-idle.tracefs.txt")
    lines = (X86_618 / "host-idle.tracefs.txt").read_text().splitlines()
    ev = tr.events
    for i in [0, 1, 3, 5, 1000, 30000, len(ev) - 1]:
        row = ev.iloc[i]
        line = lines[row["line"] - 1]
        m = re.match(r"^\s*(.*)-(\d+)\s+\[(\d+)\] (\S{5})\s+(\d+)\.(\d+): (\w+): (.*)$", line)
        assert m, line
        assert (row["comm"], row["pid"], row["cpu"]) == (m.group(1), int(m.group(2)), int(m.group(3)))
        assert row["ts"] == int(m.group(5)) * 10**9 + int(m.group(6)) * 1000
        assert row["event"] == m.group(7) and row["payload"] == m.group(8).rstrip()
        assert bool(row["irqs_off"]) == (m.group(4)[0] in "dD")
        assert bool(row["bh_off"]) == (m.group(4)[0] in "Db")
    hr = tr.df("hrtimer_expire_entry")
    first = next(l for l in lines if "hrtimer_expire_entry" in l)
    now = int(re.search(r"now=(\d+)", first).group(1))
    assert hr["now"].iloc[0] == now and hr["function"].iloc[0] == re.search(r"function=(\w+)", first).group(1)


def test_perf_script_counts_equal_its_own_lines_and_colon_comm():
    path = X86_618 / "host-perf.perf-script.txt"
    tr = kvmtrace.load(path)
    own = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+[\d.]+:\s+(\w+):(\w+):", line)
        own[(m.group(5), int(m.group(3)))] = own.get((m.group(5), int(m.group(3))), 0) + 1
    assert table_counts(tr.events) == own
    assert tr.meta.source_format == "perf-script"
    assert set(tr.events["system"].astype(str)) == {"timer", "sched", "irq"}
    ss = tr.df("sched_switch")
    assert "memfd:sealed-91" in set(ss["next_comm"].astype(str))


def _arm_pairs():
    return [(ARM64 / f"arm64-6.1-{v}.tracefs.txt.xz", ARM64 / f"arm64-6.1-{v}.dat")
            for v in ("prefix-nohzfull", "prefix-tick", "fixed-nohzfull", "fixed-tick")] + \
           [(X86_SVM / f"x86-6.1-{v}.tracefs.txt.xz", X86_SVM / f"x86-6.1-{v}.dat") for v in ("nohzfull", "tick")]


@pytest.mark.parametrize("txt,dat", _arm_pairs(), ids=lambda p: p.name)
def test_real_kernel_text_counts_and_fields_match_trace_cmd(txt, dat):
    tr = kvmtrace.load(txt)
    assert tr.meta.compression == "xz" and tr.meta.source_format == "tracefs"
    report = trace_cmd_report(str(dat), "-N")
    assert table_counts(tr.events) == oracle_counts(report)
    rows = oracle_latency_rows(trace_cmd_report(str(dat), "-N", "-t", "-l"))
    by_event: dict[str, list] = {}
    for r in rows:
        by_event.setdefault(r[5], []).append(r[6])

    def column(name, field):
        return [None if v is None or v is pd_na else v for v in tr.df(name)[field].tolist()]

    from pandas import NA as pd_na
    if tr.has("kvm_exit") and "HSR_EC" in by_event["kvm_exit"][0]:
        exp = [re.match(r"(\w+): HSR_EC: 0x(\w+) \((\w+)\), PC: 0x(\w+)", p).groups() for p in by_event["kvm_exit"]]
        assert column("kvm_exit", "exit_type") == [e[0] for e in exp]
        assert column("kvm_exit", "esr_ec") == [int(e[1], 16) for e in exp]
        assert column("kvm_exit", "esr_ec_class") == [e[2] for e in exp]
        assert column("kvm_exit", "vcpu_pc") == [int(e[3], 16) for e in exp]
        assert column("kvm_entry", "vcpu_pc") == [int(p.split("0x")[1], 16) for p in by_event["kvm_entry"]]
    else:
        exp = [re.match(r"vcpu (\d+) reason (\S+) rip 0x(\w+) info1 0x(\w+) info2 0x(\w+) intr_info 0x(\w+) error_code 0x(\w+)", p).groups()
               for p in by_event["kvm_exit"]]
        assert column("kvm_exit", "reason") == [e[1] for e in exp]
        assert column("kvm_exit", "info1") == [int(e[3], 16) for e in exp]
        assert column("kvm_exit", "intr_info") == [int(e[5], 16) for e in exp]
        assert column("kvm_entry", "rip") == [int(re.search(r"rip 0x(\w+)", p).group(1), 16) for p in by_event["kvm_entry"]]
    for ev in ("irq_disable", "irq_enable"):
        exp = [re.match(r"caller=([^+\s]+)\+0x(\w+) parent=([^+\s]+)(?:\+0x(\w+))?$", p).groups() for p in by_event[ev]]
        assert column(ev, "caller") == [e[0] for e in exp]
        assert column(ev, "caller_off") == [int(e[1], 16) for e in exp]
        assert column(ev, "parent") == [e[2] for e in exp]
        assert column(ev, "parent_off") == [None if e[3] is None else int(e[3], 16) for e in exp]
    exp = [p.split() for p in by_event["rcu_dyntick"]]
    assert column("rcu_dyntick", "polarity") == [e[0] for e in exp]
    assert column("rcu_dyntick", "newnesting") == [int(e[2], 16) for e in exp]
    assert column("rcu_dyntick", "counter") == [int(e[3], 16) for e in exp]
    # the kernel prints µs; trace-cmd -t prints ns: same instants to within rounding
    ts = tr.events["ts"].to_numpy()
    assert np.all(np.abs(np.sort(ts) - np.sort([r[4] for r in rows])) <= 1000)
