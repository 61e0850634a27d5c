"""Analyzers on real kernels: the arm64 6.1 pair (with and without the fix) and x86 SVM.

Ground truth is the reference table in real-arm64-6.1-qemu/README.md, read from
the README itself, and an independent plain pass over the kernel's own text.
"""
from __future__ import annotations

import functools
import json
import lzma
import re
import subprocess
import sys

import numpy as np
import pytest

import kvmtrace
from conftest import ARM64, PUBLIC, VARIANTS, X86_618, X86_SVM, reference, trace_cmd_report

@functools.lru_cache(maxsize=None)
def analysis(path: str) -> kvmtrace.analyzers.Analysis:
    return kvmtrace.analyze(kvmtrace.load(path))


def _plain_pass(variant: str) -> tuple[int, int]:
    """Independent count from the kernel's text: (IRQ handlers of vcpu0 between its rcu
    ``Start`` and ``End`` inside a guest run, runs whose opening irq_disable precedes
    kvm_entry with no irq_enable before the guest's first post-entry event)."""
    text = lzma.open(ARM64 / f"arm64-6.1-{variant}.tracefs.txt.xz", "rt").read().splitlines()
    in_run = in_eqs = False
    bug1 = bug2 = 0
    last_irq = None  # last irq_disable/irq_enable on CPU 1: ("off"|"on", caller)
    pending_run = False
    for line in text:
        m = re.match(r"\s*(.+?)-(\d+)\s+\[001\]\s+\S+\s+[\d.]+: (\w+): (.*)$", line)
        if not m:
            continue
        comm, ev, payload = m.group(1).strip(), m.group(3), m.group(4)
        if ev == "kvm_entry":
            in_run = True
            pending_run = last_irq is not None and last_irq[0] == "off" and "kvm_arch_vcpu_ioctl_run" in last_irq[1]
        elif ev == "kvm_exit":
            in_run = in_eqs = False
        elif ev == "rcu_dyntick" and in_run and comm == "vcpu0":
            word = payload.split()[0]
            if word == "Start":
                in_eqs = True
            elif word == "End":
                in_eqs = False
        elif ev == "irq_handler_entry" and in_eqs:
            bug1 += 1
        if ev in ("irq_disable", "irq_enable"):
            if pending_run and in_run:  # first preemptirq event after kvm_entry
                bug2 += ev == "irq_disable" or "kvm_arm_vcpu_enter_exit" not in payload
                pending_run = False
            last_irq = ("off" if ev == "irq_disable" else "on", payload)
    return bug1, bug2


@pytest.mark.parametrize("variant", VARIANTS)
def test_real_arm64_reference_counts(variant):
    ref = reference()[variant]
    for path in (ARM64 / f"arm64-6.1-{variant}.dat", ARM64 / f"arm64-6.1-{variant}.tracefs.txt.xz"):
        a = analysis(str(path))
        c = a.counts()
        assert a.verdict["verdict"] == ref["verdict"], path
        assert len(a.runs) == ref["runs"]
        assert c["rcu_not_watching"]["proven"] == ref["bug1"]
        assert c["apparent_irqsoff"]["proven"] == ref["bug2"]
        assert a.results["irqsoff"].metrics["runs_in_apparent_windows"] == ref["bug2"]
        if ref["verdict"] == "fixed":
            assert not (a.findings["confidence"] == "proven").any(), a.findings.head()
            # the VHE __kvm_vcpu_run window spans every guest run, attributed to its caller
            assert a.results["irqsoff"].metrics["runs_in_guest_entry_windows"] == {"__kvm_vcpu_run": ref["runs"]}
    assert _plain_pass(variant) == (ref["bug1"], ref["bug2"])


def test_findings_point_at_their_evidence():
    tr = kvmtrace.load(ARM64 / "arm64-6.1-prefix-nohzfull.dat")
    a = kvmtrace.analyze(tr)
    ev = tr.events.set_index("seq")
    rcu = tr.df("rcu_dyntick").set_index("seq")
    for f in a.findings[a.findings["kind"] == "rcu_not_watching"].itertuples():
        stop, handler, start = f.evidence_seq
        assert rcu.loc[stop, "polarity"] == "Start" and rcu.loc[start, "polarity"] == "End"
        assert ev.loc[handler, "event"] == "irq_handler_entry" and ev.loc[handler, "comm"] == "vcpu0"
        assert ev.loc[stop, "ts"] == f.start_ns and ev.loc[start, "ts"] == f.end_ns
    dis = tr.df("irq_disable").set_index("seq")
    for f in a.findings[a.findings["kind"] == "apparent_irqsoff"].itertuples():
        opened, entry, ret, closed = f.evidence_seq
        assert opened < entry < ret <= closed
        assert dis.loc[opened, "caller"] == "kvm_arch_vcpu_ioctl_run" and ev.loc[entry, "event"] == "kvm_entry"
        assert ev.loc[closed, "event"] == "irq_enable"


def test_guest_runs_pair_with_exit_reasons():
    a = analysis(str(ARM64 / "arm64-6.1-prefix-nohzfull.dat"))
    runs = a.runs
    assert (runs["entry_ns"] <= runs["return_ns"]).all() and (runs["return_ns"] <= runs["exit_ns"]).all()
    tr = kvmtrace.load(ARM64 / "arm64-6.1-prefix-nohzfull.dat")
    exits = tr.df("kvm_exit")
    want = exits.assign(r=np.where(exits["exit_type"] == "TRAP", exits["esr_ec_class"].astype(object), exits["exit_type"].astype(object)))
    assert runs["reason"].value_counts().to_dict() == want["r"].value_counts().to_dict()
    er = a.frame("exits", "exit_reasons").set_index("reason")
    assert er["count"].sum() == len(runs) and abs(er["share"].sum() - 1) < 1e-9
    assert (er["host_p50_us"] <= er["host_p99_us"]).all() and (er["host_p99_us"] <= er["host_max_us"]).all()
    # IRQ exits carry the handlers: every bug-1 handler lies in an IRQ-exit run
    assert runs.loc[runs["reason"] == "IRQ", "irqs"].sum() >= a.counts()["rcu_not_watching"]["proven"]


@pytest.mark.parametrize("variant,runs,reasons", [
    ("nohzfull", 4428, {"io": 4422, "interrupt": 5, "npf": 1}),
    ("tick", 4468, {"io": 4262, "interrupt": 205, "npf": 1}),
])
def test_real_x86_svm_is_fixed_with_no_proven_findings(variant, runs, reasons):
    a = analysis(str(X86_SVM / f"x86-6.1-{variant}.dat"))
    assert a.verdict["verdict"] == "fixed" and "svm_vcpu_enter_exit" in a.verdict["evidence"][0]
    assert len(a.runs) == runs and a.runs["reason"].value_counts().to_dict() == reasons
    assert not (a.findings["confidence"] == "proven").any()
    if variant == "tick":
        assert a.results["ticks"].metrics["ticks_on_vcpu_cpus"] == 250


def _acct_guest_delta(meta: str) -> int:
    """The vCPU task's guest_time change over the capture, from the meta's ACCT lines (USER_HZ ticks)."""
    got = [int(re.search(r"guest_time=(\d+)", line).group(1)) for line in meta.splitlines() if line.startswith("ACCT ")]
    return got[1] - got[0]


def _ticks_on(a, cpu: int = 1):
    t = a.frame("ticks", "ticks")
    return t[t["cpu"] == cpu]


def test_tick_accounting_on_the_real_tick_traces():
    """Where each kernel ends guest timing, checked against the README counts and the kernels' own accounting."""
    stock = analysis(str(X86_SVM / "x86-6.1-tick.dat"))
    t = _ticks_on(stock)
    assert len(t) == 250 and int((t["place"] == "in the host-IRQ window").sum()) == 213  # README: 213 window ticks
    assert set(t.loc[t["place"] == "in the host-IRQ window", "charged"]) == {"guest"}
    m = stock.results["ticks"].metrics
    assert m["host_time_charged_to_guest_by_exit"] == {"io": 10}  # the 10 window ticks after io exits
    assert m["path"] == "fixed" and m["kernel_release"] == "6.1.192" and not len(stock.findings)
    # the pre-5.13 placement: the 199 ticks that forced interrupt exits were charged to the host
    meta = (X86_SVM / "x86-6.1-prefixtick-tick.meta.txt").read_text()
    old = kvmtrace.analyze(X86_SVM / "x86-6.1-prefixtick-tick.dat", kernel_release="5.10.40")
    f = old.findings[old.findings["kind"] == "misaccounted_tick"]
    assert len(f) == 199 and (f["confidence"] == "proven").all() and old.verdict["verdict"] == "pre-fix"
    assert old.results["ticks"].metrics["charged_guest_ticks"] == 0 == _acct_guest_delta(meta)  # guest_time +0
    assert set(old.runs.set_index("exit_seq").loc[[e[3] for e in f["evidence_seq"]], "reason"]) == {"interrupt"}
    same = analysis(str(X86_SVM / "x86-6.1-prefixtick-tick.dat"))  # its UNAME says 6.1.192: no finding
    assert not len(same.findings) and same.results["ticks"].metrics["charged_guest_ticks"] == 212
    # arm64 pre-fix: ticks taken after local_irq_enable(), before guest_exit(), are charged to the guest
    pre = analysis(str(ARM64 / "arm64-6.1-prefix-tick.dat"))
    t = _ticks_on(pre)
    window = t[t["place"] == "in the host-IRQ window"]
    assert len(window) > 200 and set(window["charged"]) == {"guest"}
    assert pre.results["ticks"].metrics["path"] == "pre-fix" and pre.verdict["classes"]["misaccounted_tick"]["verdict"] == "pre-fix"
    # arm64 6.1 fixed: after TRAP exits there is no window; a tick there is the host's, rightly
    fixed = analysis(str(ARM64 / "arm64-6.1-fixed-tick.dat"))
    t = _ticks_on(fixed)
    assert set(t.loc[t["place"] == "after the guest returned, no window", "charged"]) == {"host"}
    assert fixed.results["ticks"].metrics["path"] == "fixed" and not len(fixed.findings)
    for a in (stock, old, pre, fixed):
        assert a.results["ticks"].metrics["tick_period_ns"] == 4_000_000  # HZ=250
    # nohz_full CPUs account guest time by vtime: excluded, not misreported
    for nohz in (ARM64 / "arm64-6.1-prefix-nohzfull.dat", X86_SVM / "x86-6.1-prefixtick-nohzfull.dat"):
        nz = kvmtrace.analyze(nohz, kernel_release="5.10.40").results["ticks"].metrics
        assert nz["nohz_full_cpus_excluded"] == [1] and nz["misaccounted_ticks"] == 0


def test_missing_events_are_undecidable_or_inferred_never_proven():
    tr = kvmtrace.load(ARM64 / "arm64-6.1-prefix-nohzfull.dat")
    no_rcu = kvmtrace.analyze(tr.without("rcu_dyntick"))
    c = no_rcu.counts()
    assert c["rcu_not_watching"] == {"proven": 0, "inferred": 835}  # exposure only
    assert c["apparent_irqsoff"]["proven"] == 1667
    u = {x["analysis"]: x for x in no_rcu.undecidable}
    assert "rcu:rcu_dyntick" in u["rcu"]["record"]
    no_pi = kvmtrace.analyze(tr.without("irq_disable", "irq_enable"))
    assert no_pi.counts()["apparent_irqsoff"] == {"proven": 0, "inferred": 0}
    assert no_pi.counts()["rcu_not_watching"]["proven"] == 835
    assert {x["analysis"] for x in no_pi.undecidable} == {"irqsoff", "ticks"}
    assert "preemptirq:irq_disable" in next(x for x in no_pi.undecidable if x["analysis"] == "irqsoff")["record"]
    bare = kvmtrace.analyze(tr.without("irq_disable", "irq_enable", "rcu_dyntick"))
    assert bare.verdict["verdict"] == "unknown"
    assert not (bare.findings["confidence"] == "proven").any()
    fixed = kvmtrace.load(ARM64 / "arm64-6.1-fixed-nohzfull.dat")
    assert kvmtrace.analyze(fixed.without("rcu_dyntick")).counts()["rcu_not_watching"] == {"proven": 0, "inferred": 0}


@pytest.mark.parametrize("path", sorted(p for d in (X86_618, PUBLIC) for p in d.iterdir() if p.name != "README.md"),
                         ids=lambda p: p.name)
def test_other_real_traces_have_no_proven_findings(path):
    a = analysis(str(path))
    assert not (a.findings["confidence"] == "proven").any()
    json.dumps(a.to_json())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvmtrace", *args], capture_output=True, text=True)


def test_cli_analyze_json_schema_and_gating():
    pre = _cli("analyze", "--json", "--fail-on", "rcu_not_watching", str(ARM64 / "arm64-6.1-prefix-nohzfull.dat"))
    assert pre.returncode == 1 and "835 finding(s)" in pre.stderr
    d = json.loads(pre.stdout)
    assert {"schema", "verdict", "findings", "metrics", "undecidable", "meta", "counts"} <= set(d)
    assert d["verdict"] == "pre-fix" and d["meta"]["source_format"] == "trace.dat-v7"
    f = d["findings"][0]
    assert {"kind", "confidence", "cpu", "pid", "start_ns", "end_ns", "evidence_seq"} <= set(f)
    assert isinstance(f["evidence_seq"][0], int)
    fixed = _cli("analyze", "--fail-on", "apparent_irqsoff,rcu_not_watching,misaccounted_tick",
                 str(ARM64 / "arm64-6.1-fixed-nohzfull.dat"))
    assert fixed.returncode == 0 and "verdict: fixed: reworked-style entry" in fixed.stdout and "FIXED" not in fixed.stdout
    assert "__kvm_vcpu_run" in fixed.stdout
    bad = _cli("analyze", "--fail-on", "bogus", str(ARM64 / "arm64-6.1-fixed-nohzfull.dat"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_unpaired_and_lost_events_are_counted_never_mispaired():
    tr = kvmtrace.load(ARM64 / "arm64-6.1-prefix-nohzfull.dat")
    ev = tr.events
    exits = ev.index[ev["event"] == "kvm_exit"]
    # drop one kvm_exit in the middle: its entry must stay unpaired, not pair with the next exit
    cut = kvmtrace.Trace(ev.drop(index=exits[100]), tr.meta, tr.binary)
    a = kvmtrace.analyze(cut)
    m = a.results["exits"].metrics
    assert m["runs"] == 1666 and m["entries_without_exit"] == 1 and m["exits_without_entry"] == 0
    assert (a.runs["exit_ns"] > a.runs["entry_ns"]).all()
    assert not ((a.runs["entry_seq"].to_numpy()[1:]) < a.runs["exit_seq"].to_numpy()[:-1]).any()
    # a lost-events gap inside run 200: that run is not paired and its findings are gone
    import copy
    meta = copy.deepcopy(tr.meta)
    full = kvmtrace.analyze(tr)
    r = full.runs.iloc[200]
    meta.lost_gaps = [{"cpu": int(r["cpu"]), "ts": int(r["entry_ns"]) + 1, "count": 10}]
    b = kvmtrace.analyze(kvmtrace.Trace(ev, meta, tr.binary))
    assert b.results["exits"].metrics["runs_broken_by_lost_events"] == 1 and len(b.runs) == 1666
    assert b.counts()["apparent_irqsoff"]["proven"] == 1666  # the window around the gap is not trusted
    rcu_gap = b.findings[(b.findings["kind"] == "rcu_not_watching")]
    inside = rcu_gap[(rcu_gap["start_ns"] <= r["entry_ns"] + 1) & (rcu_gap["end_ns"] >= r["entry_ns"] + 1)]
    assert (inside["confidence"] != "proven").all()


def test_flag_windows_without_preemptirq():
    tr = kvmtrace.load(ARM64 / "arm64-6.1-fixed-tick.dat")
    a = kvmtrace.analyze(tr.without("irq_disable", "irq_enable"))
    io = a.results["irqsoff"]
    fw = io.frames["flag_windows"]
    assert io.metrics["source"] == "irqs-off flags" and len(fw) > 100
    assert (fw["duration_ns"] >= 0).all() and (fw["end_ns"] >= fw["start_ns"]).all()
    assert a.counts()["apparent_irqsoff"] == {"proven": 0, "inferred": 0}


def test_irqs_and_ticks_are_attributed_to_runs_or_exit_windows():
    tr = kvmtrace.load(ARM64 / "arm64-6.1-prefix-tick.dat")
    a = kvmtrace.analyze(tr)
    runs = a.runs
    h = tr.df("hrtimer_expire_entry")
    first = runs["entry_ns"].min()
    ticks = h[(h["cpu"] == 1) & (h["function"] == "tick_sched_timer") & (h["ts"] > first)]
    assert runs["ticks"].sum() + runs["window_ticks"].sum() == len(ticks) == 250
    irq = tr.df("irq_handler_entry")
    assert runs["irqs"].sum() + runs["window_irqs"].sum() == int(((irq["cpu"] == 1) & (irq["ts"] > first)).sum())


def test_cpu_and_time_window_restrict_every_command():
    """--cpu and --start/--end (trace-cmd's timestamps): `events` counts what `trace-cmd report --cpu`
    prints; the analysis of CPU 1 (the vCPU CPU) of the real pre-fix trace finds what the whole trace
    finds, and a time window finds only findings inside it, each as proven as in the whole trace."""
    from kvmtrace.analyzers import Options, analyze, load_and_analyze

    path = ARM64 / "arm64-6.1-prefix-nohzfull.dat"
    run = [sys.executable, "-m", "kvmtrace"]
    tc = trace_cmd_report(str(path), "-N", "--cpu", "1")
    tc_events = sum(1 for ln in tc.splitlines() if re.match(r"^\s*\S.*\[\d+\]\s", ln))
    got = json.loads(subprocess.run([*run, "events", "--json", "--cpu", "1", str(path)],
                                    capture_output=True, text=True, check=True).stdout)
    assert sum(v["total"] for v in got["events"].values()) == tc_events
    assert all(set(v["per_cpu"]) == {"1"} for v in got["events"].values())
    whole = analyze(kvmtrace.load(path))
    cpu1 = load_and_analyze(str(path), Options(cpus=(1,)))
    assert cpu1.counts() == whole.counts() and len(cpu1.runs) == len(whole.runs) == 1667
    assert any("restricted to CPUs 1" in w for w in cpu1.trace.meta.warnings)
    t0, t1 = int(whole.runs["entry_ns"].iloc[100]), int(whole.runs["entry_ns"].iloc[700])
    for opts in (Options(start_ns=t0, end_ns=t1), Options(start_ns=t0, end_ns=t1, low_memory=True, chunk_events=5000)):
        part = load_and_analyze(str(path), opts)
        f = part.findings
        assert len(f) and ((f["start_ns"] >= t0) & (f["end_ns"] <= t1)).all()
        assert 550 <= len(part.runs) <= 601
        same = lambda x: {(k, tuple(e), c) for k, e, c in zip(x["kind"], x["evidence_seq"], x["confidence"])}  # noqa: E731
        assert same(f) <= same(whole.findings)
    out = subprocess.run([*run, "analyze", "--findings", "0", "--cpu", "1", "--start", f"{t0 / 1e9:.6f}",
                          "--end", f"{t1 / 1e9:.6f}", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "restricted to CPUs 1 and" in out.stderr + out.stdout
