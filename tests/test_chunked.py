"""Chunked analysis (the model built a few thousand events at a time) equals the whole-trace analysis."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import kvmtrace
import kvmtrace.analyzers as analyzers
from conftest import ARM64, SAMPLES, VARIANTS, X86_SVM, reference
from kvmtrace.analyzers import chunked, selection
from kvmtrace.synth import Scenario, synth

CHUNK = 10_000  # the real traces have ~160k events: 16 chunks, each cutting every CPU inside runs, windows, EQS


def _frames(a: analyzers.Analysis) -> dict:
    return {f"{n}.{k}": f.astype(str).reset_index(drop=True) for n, r in a.results.items() for k, f in r.frames.items()}


def _assert_same(whole: analyzers.Analysis, chunked: analyzers.Analysis) -> None:
    """The JSON document (verdict, every finding with its evidence, every metric) and every frame."""
    assert json.dumps(chunked.to_json(), sort_keys=True, default=str) == json.dumps(whole.to_json(), sort_keys=True, default=str)
    fw, fc = _frames(whole), _frames(chunked)
    assert fw.keys() == fc.keys()
    for k in fw:
        assert fw[k].equals(fc[k]), k


@pytest.fixture
def owned(monkeypatch) -> list[np.ndarray]:
    """The seq numbers each chunk's timeline owned."""
    seen: list[np.ndarray] = []
    collect = analyzers.pipeline.collect

    def spy(ctx, report=True):
        seen.append(ctx.tl.seq[ctx.tl.owns(np.arange(len(ctx.tl)))])
        return collect(ctx, report)
    monkeypatch.setattr(analyzers.pipeline, "collect", spy)
    return seen


def _check(tr: kvmtrace.Trace, owned: list[np.ndarray], chunk: int = CHUNK) -> analyzers.Analysis:
    whole = analyzers.analyze(tr)
    owned.clear()
    chunked = analyzers.analyze(tr, chunk_events=chunk)
    _assert_same(whole, chunked)
    # really chunked, and every event answered for by exactly one chunk
    assert len(owned) >= len(tr.events) // chunk
    seqs = np.concatenate(owned)
    assert len(seqs) == len(tr.events) and np.array_equal(np.sort(seqs), np.sort(tr.events["seq"].to_numpy(np.int64)))
    return chunked


@pytest.mark.parametrize("variant", VARIANTS)
def test_real_arm64_traces_chunked_equal_whole_and_reproduce_the_reference(variant, owned):
    a = _check(kvmtrace.load(ARM64 / f"arm64-6.1-{variant}.dat"), owned, 4000 if variant == "prefix-nohzfull" else CHUNK)
    ref = reference()[variant]
    c = a.counts()
    assert (a.results["exits"].metrics["runs"], c["rcu_not_watching"]["proven"], c["apparent_irqsoff"]["proven"],
            a.verdict["verdict"]) == (ref["runs"], ref["bug1"], ref["bug2"], ref["verdict"])


@pytest.mark.parametrize("path", [X86_SVM / "x86-6.1-tick.dat", X86_SVM / "x86-6.1-nohzfull.dat",
                                  ARM64 / "arm64-6.1-prefix-nohzfull.tracefs.txt.xz"], ids=lambda p: p.name)
def test_real_x86_and_text_traces(path, owned):
    _check(kvmtrace.load(path), owned)


STREAMED = [ARM64 / "arm64-6.1-prefix-nohzfull.dat", ARM64 / "arm64-6.1-fixed-tick.tracefs.txt.xz",
            X86_SVM / "x86-6.1-tick.dat", X86_SVM.parent / "real-x86-6.18" / "host-idle.v7-zstd.dat"]


@pytest.mark.parametrize("path", STREAMED, ids=lambda p: p.name)
def test_streamed_analysis_equals_whole(path, monkeypatch):
    """--low-memory streams: the reader hands pieces straight to the chunked analysis. The result
    equals the whole-trace analysis (host-idle has no preemptirq events: its irqs-off windows come
    from every event's flags, which a stream keeps), and no chunk ever holds the whole trace."""
    sizes: list[int] = []
    collect = chunked._Chunks.collect
    monkeypatch.setattr(chunked._Chunks, "collect",
                        lambda self, chunk, key, last: sizes.append(len(chunk.events)) or collect(self, chunk, key, last))
    whole = analyzers.analyze(kvmtrace.load(path))
    streamed = analyzers.load_and_analyze(str(path), analyzers.Options(low_memory=True, chunk_events=CHUNK))
    strip = lambda a: {k: v for k, v in a.to_json().items() if k != "meta"}  # noqa: E731 (meta says it streamed)
    assert json.dumps(strip(streamed), sort_keys=True, default=str) == json.dumps(strip(whole), sort_keys=True, default=str)
    assert streamed.fingerprint == whole.fingerprint
    m = streamed.trace.meta
    assert m.kernel["streamed"] and (m.events, m.lost_total, m.skipped) == (whole.trace.meta.events, whole.trace.meta.lost_total, whole.trace.meta.skipped)
    assert len(sizes) >= len(whole.trace.events) // (2 * CHUNK) and max(sizes) < len(whole.trace.events) // 4


def test_auto_streaming_when_memory_is_short():
    """A trace too big for half the memory available is streamed without --low-memory."""
    big = str(X86_SVM.parent / "real-x86-6.18" / "emulator-flood.v7-zstd.dat")
    assert analyzers.streams(big, available=24 << 30) is False
    assert analyzers.streams(big, available=512 << 20) is True
    assert analyzers.streams(str(ARM64 / "arm64-6.1-fixed-tick.tracefs.txt.xz"), available=512 << 20) is False


def test_selective_load_chunked(owned):
    """A selective load (``select=selection()``): events kept by the selection, model built per chunk."""
    _check(kvmtrace.load(ARM64 / "arm64-6.1-prefix-tick.dat", select=selection()), owned)


@pytest.mark.parametrize("drop", [("irq_disable", "irq_enable"), ("rcu_dyntick",), ("kvm_exit",)], ids="-".join)
def test_traces_missing_events(drop, owned):
    """Irqs-off windows from the flag (no preemptirq), RCU exposure (no RCU events), no runs at all."""
    _check(kvmtrace.load(ARM64 / "arm64-6.1-prefix-nohzfull.dat").without(*drop), owned)


@pytest.mark.parametrize("chunk", [1000, 25_000])
def test_lost_events_and_tiny_chunks(tmp_path, chunk, owned):
    """A synthesized trace with a lost-events gap: runs broken there stay inferred findings when chunked."""
    synth(Scenario(duration_ns=40_000_000, seed=11, lost_gap=True), tmp_path, name="syn", formats=("dat7",))
    tr = kvmtrace.load(next(tmp_path.glob("syn*.dat")))
    assert tr.meta.lost_gaps
    a = _check(tr, owned, chunk)
    assert a.results["exits"].metrics["runs_broken_by_lost_events"] > 0


def test_cli_chunk_events_gives_the_same_json(tmp_path):
    path = str(SAMPLES / "arm64-6.1-synth-prefix-tick.v7.dat")
    run = [sys.executable, "-m", "kvmtrace", "analyze", "--json", "--no-cache", path]
    whole = subprocess.run(run, capture_output=True, check=True, text=True).stdout
    chunked = subprocess.run([*run, "--chunk-events", "3000"], capture_output=True, check=True, text=True).stdout
    low = subprocess.run([*run, "--low-memory"], capture_output=True, check=True, text=True).stdout
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "meta"}  # noqa: E731 (low-memory meta says what was kept)
    assert strip(chunked) == strip(whole) == strip(low)
    assert json.loads(whole)["counts"]["misaccounted_tick"]["proven"] > 0


def test_text_out_of_time_order(tmp_path, owned):
    """perf-style text where CPUs' lines interleave out of time order: the table is sorted by ts, so
    seq is not monotonic; chunks follow table rows and still equal the whole analysis."""
    import lzma

    lines = lzma.open(SAMPLES / "arm64-6.1-prefix-nohzfull.tracefs.txt.xz", "rt").read().splitlines(True)
    cpu = [re.search(r"\[(\d+)\]", line) for line in lines]
    for i in range(0, len(lines) - 1, 2):
        if cpu[i] and cpu[i + 1] and cpu[i].group(1) != cpu[i + 1].group(1):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
    (tmp_path / "unsorted.txt").write_text("".join(lines))
    tr = kvmtrace.load(tmp_path / "unsorted.txt")
    assert (np.diff(tr.events["seq"].to_numpy()) < 0).any()
    a = _check(tr, owned)
    assert a.counts()["rcu_not_watching"]["proven"] == reference()["prefix-nohzfull"]["bug1"]
    # each run's exit reason is its own kvm_exit's, found by seq (not by position in the table)
    ex = tr.df("kvm_exit").set_index("seq").loc[a.runs["exit_seq"].to_numpy()]
    want = np.where(ex["exit_type"] == "TRAP", ex["esr_ec_class"].astype(str), ex["exit_type"].astype(str))
    assert (a.runs["reason"].to_numpy() == want).all()


def test_shuffled_text_gives_the_runs_of_the_original(tmp_path, owned):
    """Lines in random order: the table is put back in time order and seq says the line; each run's
    exit reason must still come from its own kvm_exit (looked up by seq), chunked or not."""
    import lzma
    import random

    lines = lzma.open(SAMPLES / "arm64-6.1-prefix-nohzfull.tracefs.txt.xz", "rt").read().splitlines(True)
    head = [line for line in lines[:20] if line.startswith("#")]
    body = lines[len(head):len(head) + 30_000]
    (tmp_path / "in-order.txt").write_text("".join(head + body))
    random.Random(7).shuffle(body)
    (tmp_path / "shuffled.txt").write_text("".join(head + body))
    orig = analyzers.analyze(kvmtrace.load(tmp_path / "in-order.txt"))
    a = _check(kvmtrace.load(tmp_path / "shuffled.txt"), owned, 2000)
    cols = ["cpu", "pid", "entry_ns", "return_ns", "exit_ns", "reason", "irqs", "ticks"]
    assert len(a.runs) > 100 and a.runs[cols].astype(str).equals(orig.runs[cols].astype(str))


def test_low_memory_reaches_compare_report_and_batches(tmp_path):
    """--low-memory is one analysis option of every command: the same verdicts, rows and report."""
    before, after = (str(SAMPLES / f"arm64-6.1-synth-{v}-tick.v7.dat") for v in ("prefix", "fixed"))
    run = [sys.executable, "-m", "kvmtrace"]

    def out(*args: str) -> str:
        return subprocess.run([*run, *args], capture_output=True, check=True, text=True).stdout
    plain_cmp, lean_cmp = (json.loads(out("compare", "--json", "--serial", "--no-cache", *extra, before, after))
                           for extra in ((), ("--low-memory",)))
    assert lean_cmp == plain_cmp and plain_cmp["verdicts"]
    rows = [json.loads(out("analyze", "--json", "--serial", "--no-cache", *extra, f"{before},{after}"))["traces"]
            for extra in ((), ("--low-memory",))]
    keep = ("events", "verdict", "guest_runs", "apparent_irqsoff_proven", "misaccounted_tick_proven", "error")
    assert [{k: r[k] for k in keep} for r in rows[1]] == [{k: r[k] for k in keep} for r in rows[0]]
    assert rows[1][0]["verdict"] == "pre-fix" and rows[1][1]["verdict"] == "fixed"
    for extra, name in (((), "full"), (("--low-memory",), "lean")):
        out("report", "--no-cache", *extra, "--vs", before, after, "-o", str(tmp_path / name))
    text = {n: [re.sub(r" \([\d,]+ kept\)", "", line) for line in (tmp_path / n / "report.md").read_text().splitlines()
                if "kvmtrace report" not in line] for n in ("full", "lean")}  # all but the command line that made it
    assert text["full"] == text["lean"] and any("fixed" in line for line in text["lean"])
    assert "26,731 events over" in (tmp_path / "lean" / "report.md").read_text()  # streamed: every event, no payloads


def test_idle_quiescent_state_spanning_the_trace_is_not_carried(tmp_path, monkeypatch):
    """A housekeeping CPU idle in one RCU quiescent state from its first event to its last (the
    synthesized nohz_full host) must not make every chunk carry all its events: pieces stay the
    size asked for, and the answer (idle handlers, EQS rows, edges) equals the whole analysis."""
    synth(Scenario(duration_ns=600_000_000, seed=3), tmp_path, name="idle", formats=("dat",))
    path = next(tmp_path.glob("idle*.dat"))
    sizes: list[int] = []
    collect = chunked._Chunks.collect
    monkeypatch.setattr(chunked._Chunks, "collect",
                        lambda self, chunk, key, last: sizes.append(len(chunk.events)) or collect(self, chunk, key, last))
    whole = analyzers.analyze(kvmtrace.load(path))
    eqs = whole.results["rcu"].frames["eqs"]
    idle_cpu = eqs.loc[eqs["idle"], "cpu"]
    assert whole.results["rcu"].metrics["handlers_in_idle_eqs_legitimate"] > 100 and whole.results["rcu"].metrics["open_at_trace_edge"] >= 1
    piece = 5000
    streamed = analyzers.load_and_analyze(str(path), analyzers.Options(low_memory=True, chunk_events=piece))
    strip = lambda a: {k: v for k, v in a.to_json().items() if k != "meta"}  # noqa: E731
    assert json.dumps(strip(streamed), sort_keys=True, default=str) == json.dumps(strip(whole), sort_keys=True, default=str)
    assert len(sizes) > len(whole.trace.events) // piece and max(sizes[:-1]) < piece * 1.2, (idle_cpu.unique(), sizes[-5:])


def _quiet_cuts_everywhere(tl, key, start, flags_matter):
    """The chunk cuts by their definition, over every position at once: per CPU, the last event
    (key at or after ``start``) before which no guest run, task irqs-off window or task RCU quiescent
    state is open."""
    from kvmtrace.model.timeline import Cls

    n = len(tl)
    first = np.searchsorted(tl.cpu, tl.cpu, side="left")

    def last_before(mask):
        idx = np.maximum.accumulate(np.where(mask, np.arange(n), -1))
        prev = np.r_[-1, idx[:-1]]
        return np.where(prev >= first, prev, -1)
    open_ = np.zeros(n, bool)
    for opener, closer in ((Cls.ENTRY, Cls.EXIT), (Cls.IRQ_OFF, Cls.IRQ_ON), (Cls.RCU_STOP, Cls.RCU_START)):
        prev = last_before((tl.cls == opener) | (tl.cls == closer))
        at = np.maximum(prev, 0)
        is_open = (prev >= 0) & (tl.cls[at] == opener)
        open_ |= is_open & (tl.pid[at] != 0) if opener == Cls.RCU_STOP else is_open
    if flags_matter:
        prev = last_before(~tl.hardirq & ~tl.nmi)
        open_ |= (prev >= 0) & tl.irqs_off[np.maximum(prev, 0)]
    out = {}
    for c, (s, e) in tl.cpu_bounds.items():
        quiet = np.flatnonzero(~open_[s:e] & (key[s:e] >= start.get(c, -1)))
        out[c] = int(key[s + quiet[-1]]) if len(quiet) else start.get(c, -1)
    return out


@pytest.mark.parametrize("path", [ARM64 / f"arm64-6.1-{VARIANTS[0]}.tracefs.txt.xz", X86_SVM / "x86-6.1-prefixtick-tick.dat"])
def test_chunk_cuts_found_from_each_cpus_end_equal_their_definition(path):
    """The cuts are looked for backwards in growing windows; whatever the window, they are the ones
    the definition gives over the whole timeline, with and without flag windows, from any start."""
    from kvmtrace.model import carry, timeline

    tl = timeline.build(kvmtrace.load(path))
    key = np.arange(len(tl), dtype=np.int64)
    rng = np.random.default_rng(3)
    for flags_matter in (False, True):
        for start in ({}, {int(c): int(rng.integers(s, e)) for c, (s, e) in tl.cpu_bounds.items()}):
            want = _quiet_cuts_everywhere(tl, key, start, flags_matter)
            for step in (7, 64, 4096, 1 << 30):
                assert carry.quiet_cuts(tl, key, start, flags_matter, step) == want, (flags_matter, step)
