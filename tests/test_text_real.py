"""Text readers on real traces: counts equal trace-cmd's, fields equal what was printed."""
from __future__ import annotations

import collections
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import kvmtrace
from conftest import ARM64, ROOT, X86_618, X86_SVM, oracle_counts, oracle_latency_rows, table_counts, trace_cmd_report

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


SYSCALLS = ROOT / "tests" / "data"


def test_kernel_syscall_text_is_events_with_fields_like_trace_cmds():
    """The kernel prints syscalls as ``sys_openat(dfd: 0xffffff9c, ...)`` and ``sys_openat -> 0x3``:
    those are sys_enter_openat/sys_exit_openat events, with trace-cmd's counts and the same fields."""
    import lzma

    report = lzma.open(SYSCALLS / "syscalls-x86-6.18.report.txt.xz").read().decode()
    kernel = kvmtrace.load(str(SYSCALLS / "syscalls-x86-6.18.tracefs.txt.xz"), cache=False)
    tcmd = kvmtrace.load(str(SYSCALLS / "syscalls-x86-6.18.report.txt.xz"), cache=False)
    oracle = oracle_counts(report)
    assert sum(n for (e, _c), n in oracle.items() if e == "sys_enter_openat") == 1188 and oracle[("sys_exit_write", 0)] > 0
    assert table_counts(kernel.events) == oracle == table_counts(tcmd.events)
    assert "unparsable" not in kernel.meta.skipped and "unparsable" not in tcmd.meta.skipped
    for name, columns in [("sys_enter_openat", ["dfd", "filename", "flags", "mode"]),
                          ("sys_enter_ioctl", ["fd", "cmd", "arg"]), ("sys_exit_ioctl", ["ret"]),
                          ("sys_enter_write", ["fd", "buf", "count"]), ("sys_exit_write", ["ret"])]:
        a, b = kernel.df(name), tcmd.df(name)
        for c in columns:  # the kernel prints "fd: 3" and "cmd: 0x5401", trace-cmd "fd: 0x00000003"
            assert a[c].notna().all() and a[c].tolist() == b[c].tolist(), (name, c)
    enter, ioctl_ret, write_ret = kernel.df("sys_enter_openat"), kernel.df("sys_exit_ioctl"), kernel.df("sys_exit_write")
    assert (enter["dfd"] == 0xffffff9c).all()  # AT_FDCWD as the 32-bit int the kernel saved
    assert (ioctl_ret["ret"] == -25).all()      # ENOTTY: a C long, sign restored from 0xffffffffffffffe7
    assert {0x1c, 0xd} <= set(write_ret["ret"])  # the two marker writes, 28 and 13 bytes


def test_multi_line_messages_keep_their_lines():
    """A trace_marker message with embedded newlines goes on over the next lines, in the kernel's text
    and trace-cmd's: they are its payload, counted as continuations, not unparsable damage."""
    kernel = kvmtrace.load(str(SYSCALLS / "syscalls-x86-6.18.tracefs.txt.xz"), cache=False)
    tcmd = kvmtrace.load(str(SYSCALLS / "syscalls-x86-6.18.report.txt.xz"), cache=False)
    for t, prefix in ((kernel, ""), (tcmd, "tracing_mark_write: ")):
        marks = t.events[t.events["event"] == "print"]["payload"].astype(str).tolist()
        assert marks == [prefix + "first line\nsecond line\nthird", prefix + "single marker"]
        assert t.meta.skipped["message-continuation"] == 2 and not t.meta.damaged
        assert t.meta.lines == t.meta.events + t.meta.skipped_total


def test_events_dropped_without_a_count_is_a_gap_of_unknown_size():
    """trace-cmd writes ``CPU:0 [EVENTS DROPPED]`` when the kernel could not say how many."""
    t = kvmtrace.load(str(SYSCALLS / "syscalls-x86-6.18.report.txt.xz"), cache=False)
    gaps = {g["cpu"]: g["count"] for g in t.meta.lost_gaps}
    assert gaps == {1: 396, 0: None} and t.meta.skipped["lost-events-marker"] == 2


_SAMPLE_LINE = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+[\d.]+:\s+(\d+)\s+([\w-]+)(?::\w+)*:\s*(?:([0-9a-f]+) (.*?)(?:\+0x[0-9a-f]+)? \((.*)\))?$")


@pytest.mark.parametrize("name", ["samples-x86-6.18.perf-script.txt.xz", "samples-callchain-x86-6.18.perf-script.txt.xz"])
def test_perf_script_samples_are_events_with_period_symbol_and_object(name):
    """perf script of sampling events (no tracepoints): each sample is an event named by its event,
    with its period, IP, symbol and object; callchain frames are counted lines of their own."""
    import lzma

    text = lzma.open(SYSCALLS / name).read().decode()
    rows = [m.groups() for m in map(_SAMPLE_LINE.match, text.splitlines()) if m]
    t = kvmtrace.load(str(SYSCALLS / name), cache=False)
    assert len(rows) > 300 and len(t.events) == len(rows) and t.meta.source_format == "perf-script"
    assert table_counts(t.events) == collections.Counter((r[4], int(r[2])) for r in rows)
    got = pd.concat([t.df(e) for e in sorted(set(r[4] for r in rows))]).sort_values("seq")

    def column(name: str) -> list:  # a column no sample has (all callchains) is left out
        return [None if pd.isna(v) else v for v in got[name]] if name in got.columns else [None] * len(got)
    assert got["period"].tolist() == [int(r[3]) for r in rows]
    assert column("sym") == [r[6] for r in rows] and column("dso") == [r[7] for r in rows]
    assert column("ip") == [None if r[5] is None else int(r[5], 16) for r in rows]
    frames = sum(1 for line in text.splitlines() if line.startswith("\t"))
    assert t.meta.skipped.get("callchain-frame", 0) == frames and "unparsable" not in t.meta.skipped
    assert t.meta.lines == t.meta.events + t.meta.skipped_total


def test_perf_script_samples_without_cpus_are_refused_saying_why():
    path = SYSCALLS / "samples-per-task-x86-6.18.perf-script.txt"
    r = subprocess.run([sys.executable, "-m", "kvmtrace", "events", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(path) in r.stderr and "without a CPU column" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _wrapped_forms(text: bytes) -> dict[str, bytes]:
    """The kernel's text as systrace, atrace and older systrace wrote it."""
    import zlib

    js = text.replace(b"\n", b"\\n\\\n")
    page = (b"<!DOCTYPE html>\n<html>\n<head><script>var viewer = 1;</script>\n" + b"<!-- viewer -->\n" * 100_000 +
            b"</head>\n<!-- BEGIN TRACE -->\n"
            b'  <script class="trace-data" type="application/text">\n{"traceEvents": []}\n  </script>\n'
            b'  <script class="trace-data" type="application/text">\n' + b"%s" + b"  </script>\n<!-- END TRACE -->\n</html>\n")
    return {"systrace-html": page.replace(b"%s", text), "systrace-html-js": page.replace(b"%s", js),
            "javascript": b'  var linuxPerfData = "\\\n' + js + b'  ";\n', "atrace-zlib": b"TRACE:\n" + zlib.compress(text)}


@pytest.mark.parametrize("form", ["systrace-html", "systrace-html-js", "javascript", "atrace-zlib"])
def test_systrace_and_atrace_files_load_as_the_text_they_hold(form, tmp_path):
    """Android's wrappers of the kernel's text give the events, fields and payloads of the text itself."""
    import lzma

    text = lzma.open(SYSCALLS / "syscalls-x86-6.18.tracefs.txt.xz").read()
    path = tmp_path / f"trace.{form}"
    path.write_bytes(_wrapped_forms(text)[form])
    plain = kvmtrace.load(str(SYSCALLS / "syscalls-x86-6.18.tracefs.txt.xz"), cache=False)
    t = kvmtrace.load(str(path), cache=False)
    assert t.meta.compression == form.replace("-js", "") and t.meta.source_format == "tracefs"
    assert len(t.events) == len(plain.events) > 3000 and table_counts(t.events) == table_counts(plain.events)
    assert t.events["payload"].tolist() == plain.events["payload"].tolist()
    assert t.df("sched_switch")["next_pid"].tolist() == plain.df("sched_switch")["next_pid"].tolist()
    assert "unparsable" not in t.meta.skipped


def test_a_systrace_section_split_anywhere_between_blocks_reads_the_same():
    from kvmtrace.readers import wrapped

    text = b"# tracer: nop\n" + b"".join(b"  a-1 [000] ..... %d.000001: sched_waking: comm=x pid=1\n" % i for i in range(50))
    for form, data in _wrapped_forms(text).items():
        if form == "atrace-zlib":
            continue
        for size in (1, 7, 64, 4096):
            blocks = (data[i:i + size] for i in range(0, len(data), size))
            assert b"".join(wrapped.unwrapped(blocks, wrapped.kind(data[:65536]))).strip() == text.strip(), (form, size)
