"""The synthesizer: real-kernel event order, readable output, and analyzers against its ground truth."""
from __future__ import annotations

import collections
import functools
import hashlib
import json
import subprocess
import sys

import pytest

import kvmtrace
from conftest import ARM64, X86_SVM
from kvmtrace.synth import Scenario, synth

SHORT = 80_000_000  # 80 ms: a few hundred guest runs


def _label(tr: kvmtrace.Trace) -> dict[int, str]:
    return dict(zip(tr.events["seq"].to_numpy(), tr.events["event"].astype(str).to_numpy()))


def mode_sequences(tr: kvmtrace.Trace, reasons: list[str]) -> dict[str, tuple[str, ...]]:
    """The most common event-name sequence from kvm_entry to kvm_exit on the vCPU's CPU, per exit reason."""
    a = kvmtrace.analyze(tr)
    ev = tr.events
    by_cpu = {int(c): (g["seq"].to_numpy(), g["event"].astype(str).to_numpy()) for c, g in ev.groupby("cpu")}
    out = {}
    for reason in reasons:
        c = collections.Counter()
        for r in a.runs[a.runs["reason"] == reason].itertuples():
            seq, names = by_cpu[int(r.cpu)]
            lo, hi = seq.searchsorted(r.entry_seq), seq.searchsorted(r.exit_seq, side="right")
            c[tuple(names[lo:hi])] += 1
        out[reason] = c.most_common(1)[0][0] if c else None
    return out


@functools.lru_cache(maxsize=None)
def made(tmp: str, formats: tuple[str, ...] = ("tracefs", "report-tl"), **kw) -> dict:
    name = hashlib.sha1(repr(sorted(kw.items())).encode()).hexdigest()[:12]
    return synth(Scenario(duration_ns=SHORT, **kw), tmp, name=name, formats=formats)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("synth"))


@pytest.mark.parametrize("variant,fixed,nohz", [
    ("prefix-nohzfull", False, (1,)), ("prefix-tick", False, ()), ("fixed-nohzfull", True, (1,)), ("fixed-tick", True, ())])
def test_arm64_sequences_match_the_real_kernels(variant, fixed, nohz, out):
    real = mode_sequences(kvmtrace.load(ARM64 / f"arm64-6.1-{variant}.tracefs.txt.xz"), ["IRQ", "DABT_LOW"])
    r = made(out, fixed=fixed, nohz_full=nohz)
    syn = mode_sequences(kvmtrace.load(r["paths"]["tracefs"]), ["IRQ", "DABT_LOW"])
    assert syn == real


@pytest.mark.parametrize("variant,nohz", [("nohzfull", (1,)), ("tick", ())])
def test_x86_sequences_match_the_real_kernel(variant, nohz, out):
    real = mode_sequences(kvmtrace.load(X86_SVM / f"x86-6.1-{variant}.tracefs.txt.xz"), ["interrupt", "io"])
    r = made(out, arch="x86", fixed=True, nohz_full=nohz)
    assert mode_sequences(kvmtrace.load(r["paths"]["tracefs"]), ["interrupt", "io"]) == real


def test_code_path_order_per_variant(out):
    """The kernel's order (docs/kernel.md C.2/C.3), asserted on each path's callers."""
    def callers(r: dict, reason: str) -> list[str]:
        tr = kvmtrace.load(r["paths"]["report-tl"])
        a = kvmtrace.analyze(tr)
        run = a.runs[a.runs["reason"] == reason].iloc[3]
        pi = tr.events[(tr.events["seq"] > run.entry_seq) & (tr.events["seq"] < run.exit_seq) & (tr.events["cpu"] == run.cpu)]
        pi = pi[pi["event"].isin(["irq_enable", "irq_disable", "kvm_exit"])]
        return [f"{e}:{c.split('=')[1].split('+')[0]}" for e, c in zip(pi["event"].astype(str), pi["payload"].astype(str))]
    pre = callers(made(out, fixed=False, nohz_full=(), late_irq_share=0.0), "IRQ")
    assert pre == ["irq_enable:kvm_arch_vcpu_ioctl_run", "irq_disable:enter_from_kernel_mode",
                   "irq_enable:exit_to_kernel_mode.isra.0", "irq_disable:kvm_arch_vcpu_ioctl_run",
                   "irq_enable:kvm_arch_vcpu_ioctl_run"]
    fixed = callers(made(out, fixed=True, nohz_full=()), "IRQ")
    assert fixed == ["irq_enable:kvm_arm_vcpu_enter_exit", "irq_disable:__kvm_vcpu_run",
                     "irq_enable:kvm_arch_vcpu_ioctl_run", "irq_disable:enter_from_kernel_mode",
                     "irq_enable:exit_to_kernel_mode.isra.0", "irq_disable:kvm_arch_vcpu_ioctl_run",
                     "irq_enable:kvm_arch_vcpu_ioctl_run"]
    trap = callers(made(out, fixed=True, nohz_full=()), "DABT_LOW")  # 6.1: no isb() window after a trap
    assert trap == ["irq_enable:kvm_arm_vcpu_enter_exit", "irq_disable:__kvm_vcpu_run", "irq_enable:kvm_arch_vcpu_ioctl_run"]


def test_every_format_loads_with_the_model_values(out):
    r = made(out, ("tracefs", "report-tl", "report", "report-t", "report-l", "perf", "perf-ns"), fixed=False, nohz_full=(1,), seed=11)
    g = r["ground_truth"]
    frames = {}
    for fmt, path in r["paths"].items():
        tr = kvmtrace.load(path)
        assert tr.meta.events == g["events"], fmt
        assert tr.meta.skipped_total == tr.meta.skipped.get("comment", 0) + tr.meta.skipped.get("prologue", 0)
        assert kvmtrace.analyze(tr).counts()["rcu_not_watching"]["proven"] == g["counts"]["rcu_not_watching"], fmt
        x = tr.df("kvm_exit")
        frames[fmt] = x
        runs = {r_["exit_seq"]: r_["reason"] for r_ in g["runs"]}
        got = dict(zip(x["seq"], x["exit_type"].astype(str).where(x["exit_type"] != "TRAP", x["esr_ec_class"].astype(str))))
        assert got == runs, fmt
    ns = frames["report-tl"]
    assert (ns["esr_ec"].to_numpy() == frames["tracefs"]["esr_ec"].to_numpy()).all()
    tr = kvmtrace.load(r["paths"]["report-tl"])
    rcu = tr.df("rcu_dyntick")
    assert set(rcu["polarity"].astype(str)) == {"Start", "End", "Endirq", "Startirq", "++=", "--="}
    assert tr.df("hrtimer_expire_entry")["function"].astype(str).unique().tolist() == ["tick_sched_timer"]


def test_same_seed_same_bytes(tmp_path):
    a = synth(Scenario(duration_ns=30_000_000, seed=7), tmp_path / "a", formats=("tracefs",))
    b = synth(Scenario(duration_ns=30_000_000, seed=7), tmp_path / "b", formats=("tracefs",))
    c = synth(Scenario(duration_ns=30_000_000, seed=8), tmp_path / "c", formats=("tracefs",))
    h = [hashlib.sha256(open(x["paths"]["tracefs"], "rb").read()).hexdigest() for x in (a, b, c)]
    assert h[0] == h[1] != h[2]
    assert open(a["truth"]).read() == open(b["truth"]).read()


CASES = [
    dict(fixed=False, nohz_full=(1,)), dict(fixed=False, nohz_full=()), dict(fixed=True, nohz_full=(1,)),
    dict(fixed=True, nohz_full=()), dict(arch="x86", fixed=True, nohz_full=(1,)), dict(arch="x86", fixed=True, nohz_full=()),
    dict(arch="x86", fixed=False, nohz_full=(), kernel=(5, 15)), dict(arch="x86", fixed=False, nohz_full=(1,), kernel=(5, 15)),
    dict(arch="x86", fixed=False, nohz_full=(), kernel=(5, 10)), dict(arch="x86", fixed=False, nohz_full=(1,), kernel=(5, 10)),
    dict(fixed=False, nohz_full=(1,), kernel=(5, 10)), dict(fixed=False, nohz_full=(), kernel=(5, 10)),
    dict(fixed=True, nohz_full=(), kernel=(5, 10)), dict(fixed=False, nohz_full=(), kernel=(5, 15)),
    dict(fixed=True, nohz_full=(), kernel=(5, 15)), dict(fixed=False, nohz_full=(), kernel=(5, 16)),
    dict(fixed=True, nohz_full=(), kernel=(5, 16)), dict(fixed=True, nohz_full=(), kernel=(5, 17)),
    dict(fixed=True, nohz_full=(1,), kernel=(5, 17)), dict(fixed=False, nohz_full=(1,), kernel=(6, 12)),
    dict(fixed=False, nohz_full=(), kernel=(6, 12)), dict(fixed=True, nohz_full=(), kernel=(6, 12)),
    dict(fixed=False, nohz_full=(1,), kernel=(6, 9)), dict(fixed=False, nohz_full=(1,), vcpu_cpus=(1, 2)),
    dict(fixed=False, nohz_full=(1,), seed=5), dict(fixed=False, nohz_full=(), seed=3, late_irq_share=0.6),
]


def check_against_truth(a: kvmtrace.analyzers.Analysis, g: dict) -> None:
    """Precision and recall 1.0 per class: the proven findings are exactly the bugs the trace proves
    (matched by evidence seq), and every bug that rests on an estimate is found, as inferred."""
    assert a.verdict["verdict"] == g["verdict"]
    assert len(a.runs) == len(g["runs"])
    key = {"apparent_irqsoff": lambda e: (e[0], e[1], e[2], e[3]), "rcu_not_watching": lambda e: (e[0], e[1]),
           "misaccounted_tick": lambda e: (e[2],)}
    for kind in ("apparent_irqsoff", "rcu_not_watching", "misaccounted_tick"):
        bugs = [b for b in g["bugs"] if b["kind"] == kind]
        want = sorted(tuple(b["evidence_seq"]) for b in bugs if b.get("confidence", "proven") == "proven")
        estimated = {tuple(b["evidence_seq"]) for b in bugs if b.get("confidence") == "inferred"}
        f = a.findings[a.findings["kind"] == kind]
        proven = f[f["confidence"] == "proven"]
        assert sorted(key[kind](e) for e in proven["evidence_seq"]) == want, kind
        inferred = {key[kind](e) for e in f.loc[f["confidence"] == "inferred", "evidence_seq"]}
        assert inferred == estimated, kind
    if g["verdict"] == "fixed":
        assert not (a.findings["confidence"] == "proven").any()
    ticks = a.frame("ticks", "ticks") if "ticks" in a.results["ticks"].frames else None
    for cpu, pc in g["per_cpu"].items():  # charged guest ticks per CPU, as the kernel model charged them
        if ticks is not None and pc["mode"] == "tick":
            assert int((ticks.loc[ticks["cpu"] == int(cpu), "charged"] == "guest").sum()) == pc["charged_guest_ticks"]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_analyzers_find_exactly_the_injected_bugs(kw, out):
    r = made(out, **kw)
    g = r["ground_truth"]
    # the kernel's text does not say its release; x86 tick accounting needs it
    check_against_truth(kvmtrace.analyze(r["paths"]["tracefs"], kernel_release=g["kernel_release"]), g)


def test_without_the_deciding_events_it_says_undecidable_or_inferred(out):
    r = made(out, fixed=False, nohz_full=(1,), rcu=False)
    a = kvmtrace.analyze(kvmtrace.load(r["paths"]["tracefs"]))
    c = a.counts()
    assert c["rcu_not_watching"]["proven"] == 0 and c["rcu_not_watching"]["inferred"] >= r["ground_truth"]["counts"]["rcu_not_watching"]
    assert any(u["analysis"] == "rcu" for u in a.undecidable)
    r = made(out, fixed=False, nohz_full=(), preemptirq=False)
    a = kvmtrace.analyze(kvmtrace.load(r["paths"]["tracefs"]))
    assert a.verdict["verdict"] == "unknown" and not (a.findings["confidence"] == "proven").any()
    assert {u["analysis"] for u in a.undecidable} >= {"irqsoff", "ticks"}
    assert r["ground_truth"]["counts"]["misaccounted_tick"] > 0  # there was something to find


def test_lost_events_gap_is_marked_and_never_proven(out):
    r = made(out, fixed=False, nohz_full=(1,), lost_gap=True)
    g = r["ground_truth"]
    tr = kvmtrace.load(r["paths"]["tracefs"])
    assert tr.meta.lost == {1: g["lost"][0]["count"]} and tr.meta.lost_gaps
    a = kvmtrace.analyze(tr)
    assert a.results["exits"].metrics["runs_broken_by_lost_events"] == 1
    decidable = sorted(tuple(b["evidence_seq"][:2]) for b in g["bugs"] if b["kind"] == "rcu_not_watching" and b["evidence_seq"])
    found = sorted((e[0], e[1]) for e in a.findings.loc[a.findings["kind"] == "rcu_not_watching", "evidence_seq"])
    assert set(found) <= set(decidable) and len(found) >= len(decidable) - 3


def test_cli_synth_writes_traces_and_truth(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kvmtrace", "synth", "--entry", "fixed", "--nohz-full", "", "--duration-ms", "30",
                        "-o", str(tmp_path), "--name", "t"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    truth = json.loads((tmp_path / "t.truth.json").read_text())
    assert truth["synthetic"] is True and truth["entry_logic"] == "fixed"
    assert kvmtrace.load(tmp_path / "t.tracefs.txt").meta.events == truth["events"]
    bad = subprocess.run([sys.executable, "-m", "kvmtrace", "synth", "--kernel", "six"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.parametrize("kw", [dict(fixed=False, nohz_full=(1,), lost_gap=True), dict(fixed=True, nohz_full=()),
                                dict(arch="x86", fixed=True, nohz_full=(1,)), dict(fixed=False, nohz_full=(1,), kernel=(6, 12)),
                                dict(arch="x86", fixed=False, nohz_full=(), kernel=(5, 15))],
                         ids=["arm64-prefix-lost", "arm64-fixed-tick", "x86-fixed", "arm64-6.12", "x86-5.15-vmx"])
def test_trace_cmd_reads_the_synthesized_dat_like_the_text_writer(kw, tmp_path):
    from conftest import trace_cmd_report
    r = synth(Scenario(duration_ns=40_000_000, **kw), tmp_path,
              formats=("report-plugins", "report", "report-t", "report-l", "report-tl", "tracefs", "dat", "dat7"))
    flags = {"report-plugins": (), "report": ("-N",), "report-t": ("-N", "-t"), "report-l": ("-N", "-l"),
             "report-tl": ("-N", "-t", "-l")}
    for fmt, fl in flags.items():  # every trace-cmd text writer, line for line, from both .dat versions
        text = open(r["paths"][fmt]).read()
        for f in ("dat", "dat7"):
            assert trace_cmd_report(r["paths"][f], *fl) == text, (fmt, f)
    # and kvmtrace reads the .dat into the same typed frames as the kernel-format text
    dat, txt = kvmtrace.load(r["paths"]["dat7"]), kvmtrace.load(r["paths"]["tracefs"])
    assert dat.meta.events == txt.meta.events == r["events"] and dat.meta.lost == txt.meta.lost
    for name in ("kvm_exit", "irq_disable", "rcu_dyntick" if kw.get("kernel") != (6, 12) else "rcu_watching", "hrtimer_expire_entry"):
        a, b = dat.df(name), txt.df(name)
        # bh_off: only the kernel's 5.18+ text shows the BH bit (README); hrtimer: the kernel hashes %p
        for col in [c for c in a.columns if c in b.columns and c not in ("hrtimer", "ts", "bh_off")]:
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), (name, col)
        assert ((a["ts"] // 1000) == (b["ts"] // 1000)).all()  # the kernel text has µs
    # the .dat records the release (UNAME); the text is told it
    release = json.loads(open(r["truth"]).read())["kernel_release"]
    assert kvmtrace.analyze(dat).counts() == kvmtrace.analyze(txt, kernel_release=release).counts()


def test_shipped_synthetic_samples_match_their_ground_truth():
    from conftest import SAMPLES
    dats = sorted(SAMPLES.glob("*-synth-*.v7.dat"))
    assert len(dats) == 7
    for dat in dats:
        truth = json.loads(dat.with_name(dat.name.replace(".v7.dat", ".truth.json")).read_text())
        assert truth["synthetic"] is True
        for path, release in ((dat, None), (dat.with_name(dat.name.replace(".v7.dat", ".report-tl.txt.xz")),
                                            truth["kernel_release"])):
            a = kvmtrace.analyze(kvmtrace.load(path), kernel_release=release)
            assert a.verdict["verdict"] == truth["verdict"], path
            assert {k: v["proven"] for k, v in a.counts().items()} == truth["counts"], path
