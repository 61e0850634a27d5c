"""Hostile and broken input: a derived corpus, property-based tests over every reader, damaged analyses."""
from __future__ import annotations

import ast
import collections
import gzip
import json
import lzma
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmtrace
from conftest import ARM64, ROOT, SHARED
from hostile import build
from kvmtrace.errors import TraceError
from kvmtrace.synth import Scenario, synth

SOURCES = {"tracefs": ARM64 / "arm64-6.1-prefix-nohzfull.tracefs.txt.xz",
           "report-l": SHARED / "real-x86-6.18" / "host-idle.report-latency.txt",
           "perf": SHARED / "real-x86-6.18" / "host-perf.perf-script.txt",
           "arm64-v7": ARM64 / "arm64-6.1-prefix-tick.dat",
           "x86-v6": SHARED / "real-x86-6.18" / "host-idle.v6.dat"}
HYPO = settings()  # the profile's budget (conftest: "ci" in the suite, "deep" for the campaign)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """Small synthesized trace.dat v6 and v7 (with a lost-events gap) and report text."""
    d = tmp_path_factory.mktemp("syn")
    synth(Scenario(duration_ns=20_000_000, seed=5, lost_gap=True), d, name="syn", formats=("dat", "dat7", "report-tl"))
    return d


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory, synthetic) -> tuple[list[Path], list[dict]]:
    corpus = tmp_path_factory.mktemp("corpus")
    files = build(corpus, SOURCES, synthetic)
    out = corpus.parent / "results.jsonl"
    subprocess.run([sys.executable, str(ROOT / "tests" / "hostile_runner.py"), str(corpus), str(out), "3072", "30"],
                   check=True, timeout=500)
    return files, [json.loads(line) for line in out.read_text().splitlines()]


def test_every_broken_input_ends_in_a_clean_error_or_a_partial_load(corpus_results):
    files, rows = corpus_results
    outcomes = collections.Counter(r["outcome"] for r in rows)
    print(f"\n{len(rows)} broken inputs tried (from {len(SOURCES)} real files and the synthesizer): "
          f"{outcomes['error']} one-line errors, {outcomes['partial']} partial loads with counts, "
          f"{outcomes['clean']} loads with nothing to report (damage in padding or values), "
          f"{outcomes['crash']} crashes, {outcomes['hang']} hangs")
    assert len(rows) == len(files) >= 250
    bad = [r for r in rows if r["outcome"] not in ("error", "partial", "clean")]
    assert not bad, bad[:5]
    errors = [r for r in rows if r["outcome"] == "error"]
    assert all(r["names_file"] and r["one_line"] for r in errors), [r for r in errors if not r["names_file"]][:3]
    assert outcomes["error"] > 50 and outcomes["partial"] > 50  # the corpus really is broken
    for r in rows:
        if r["outcome"] == "partial":
            assert r["skipped"] or r["lost"] or r["warnings"]
            assert r["json_meta_skipped"] == r["skipped"]  # the counts reach the JSON too
        assert r["seconds"] < 30


@pytest.mark.parametrize("name", ["tracefs.trunc3", "perf.non-utf8", "report-l.crlf", "arm64-v7.zero-page0",
                                  "arm64-v7.trunc10", "syn.v7.huge-sizes", "tracefs.10MB-line", "empty"])
def test_cli_on_broken_inputs(corpus_results, name):
    files, _rows = corpus_results
    f = next(p for p in files if p.name == name)
    r = subprocess.run([sys.executable, "-m", "kvmtrace", "analyze", str(f), "--json", "--no-cache"],
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr
    if r.returncode == 2:
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and str(f) in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        meta = json.loads(r.stdout)["meta"]
        assert {"skipped_total", "lost_total", "warnings", "events"} <= set(meta)
        assert meta["skipped_total"] or meta["lost_total"] or meta["warnings"] or name.endswith("crlf")


def _load_or_error(p: Path) -> kvmtrace.Trace | None:
    try:
        return kvmtrace.load(p)
    except TraceError as exc:
        assert str(p) in str(exc) and "\n" not in str(exc)
        return None


TRACEFS_LINES = lzma.open(SOURCES["tracefs"], "rb").read().splitlines(keepends=True)[:300]


@HYPO
@given(edits=st.lists(st.tuples(st.integers(0, 299), st.integers(0, 400), st.sampled_from(["del", "ins", "cut", "dup"]),
                                st.integers(0, 255)), max_size=30))
def test_text_lines_edited_anywhere(tmp_path_factory, edits):
    lines = TRACEFS_LINES[:]
    for j, pos, op, byte in edits:
        ln = bytearray(lines[j])
        pos = min(pos, len(ln))
        if op == "del" and pos < len(ln):
            del ln[pos]
        elif op == "ins":
            ln.insert(pos, byte)
        elif op == "cut":
            ln = ln[:pos]
        else:
            ln = ln + ln
        lines[j] = bytes(ln)
    p = tmp_path_factory.mktemp("h") / "t.txt"
    p.write_bytes(b"".join(lines))
    tr = _load_or_error(p)
    if tr is not None:
        m = tr.meta
        assert m.events + m.skipped_total == m.lines  # every line is an event or counted
        kvmtrace.analyze(tr)


@HYPO
@given(data=st.binary(max_size=3000), head=st.sampled_from([b"", b"# tracer: nop\n#\n", TRACEFS_LINES[40],
                                                            b"cpus=2\n", b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"]))
def test_any_bytes_after_any_prefix(tmp_path_factory, data, head):
    p = tmp_path_factory.mktemp("h") / "t.bin"
    p.write_bytes(head + data)
    tr = _load_or_error(p)
    if tr is not None:
        kvmtrace.analyze(tr)


@pytest.fixture(scope="module")
def small_dats(synthetic) -> list[bytes]:
    return [(synthetic / "syn.dat").read_bytes(), (synthetic / "syn.v7.dat").read_bytes()]


@HYPO
@given(which=st.integers(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=12),
       cut=st.floats(0.05, 1.0))
def test_trace_dat_bytes_changed_anywhere(tmp_path_factory, small_dats, which, flips, cut):
    b = bytearray(small_dats[which])
    for where, byte in flips:
        b[min(int(where * len(b)), len(b) - 1)] = byte
    p = tmp_path_factory.mktemp("h") / "t.dat"
    p.write_bytes(bytes(b[: max(int(cut * len(b)), 1)]))
    tr = _load_or_error(p)
    if tr is not None:
        kvmtrace.analyze(tr)


@HYPO
@given(payload=st.binary(max_size=2000), kind=st.sampled_from(["gz", "xz", "zst"]), cut=st.floats(0.1, 1.0))
def test_compressed_streams_cut_or_garbled(tmp_path_factory, payload, kind, cut):
    text = b"".join(TRACEFS_LINES[:50]) + payload
    comp = {"gz": gzip.compress, "xz": lzma.compress, "zst": zstandard.ZstdCompressor().compress}[kind](text)
    p = tmp_path_factory.mktemp("h") / f"t.{kind}"
    p.write_bytes(comp[: max(int(len(comp) * cut), 1)])
    tr = _load_or_error(p)
    if tr is not None:
        assert tr.meta.events + tr.meta.skipped_total == tr.meta.lines


def _proven(a) -> set[tuple]:
    f = a.findings
    return {(k, tuple(e)) for k, c, e in zip(f["kind"], f["confidence"], f["evidence_seq"]) if c == "proven"}


def test_lost_events_never_become_proven_findings(synthetic):
    a = kvmtrace.analyze(synthetic / "syn.v7.dat")
    gaps = a.trace.meta.lost_gaps
    assert gaps and a.results["exits"].metrics["runs_broken_by_lost_events"] > 0
    for r in a.findings.itertuples():
        spans_gap = any(g["cpu"] == r.cpu and g["ts"] is not None and r.start_ns <= g["ts"] <= r.end_ns for g in gaps)
        assert not (spans_gap and r.confidence == "proven"), r
    truth = json.loads((synthetic / "syn.truth.json").read_text())
    assert len(_proven(a)) <= sum(truth["counts"].values())
    near = a.findings[a.findings["confidence"] == "inferred"]
    assert len(near) and near["why"].str.contains("lost events").all()  # downgraded, and says why


def test_missing_cpu_data_and_unpaired_entries_add_no_proven_findings():
    full = kvmtrace.analyze(ARM64 / "arm64-6.1-prefix-nohzfull.dat")
    tr = full.trace
    ev = tr.events
    rng = np.random.default_rng(7)
    mid = ev["ts"].quantile(0.5)
    cut_cpu = (ev["cpu"] == 1).to_numpy() & (ev["ts"] > mid).to_numpy()  # CPU 1's buffer ends half-way
    exits = (ev["event"] == "kvm_exit").to_numpy() & (rng.random(len(ev)) < 0.03)  # 3% of exits unrecorded
    damaged = kvmtrace.Trace(ev[~(cut_cpu | exits)].reset_index(drop=True), tr.meta, tr.binary)
    a = kvmtrace.analyze(damaged)
    m = a.results["exits"].metrics
    assert m["entries_without_exit"] > 0 and len(a.runs) < len(full.runs)
    assert _proven(a) <= _proven(full)  # damage removes evidence; it never invents any


def test_a_lost_event_inside_its_rcu_bracket_is_damage_and_proves_nothing():
    """Both toggles of the reworked entry removed from every guest run of a fixed trace: irq_disable
    and irq_enable still alternate, and each run looks like the old entry. But the irq_disable sat
    inside an RCU nesting bracket, which the kernel opens only around an enabled tracepoint: the
    empty bracket is damage, so nothing is proven and the tick path is not called pre-fix."""
    full = kvmtrace.analyze(ARM64 / "arm64-6.1-fixed-tick.dat")
    assert full.results["damage"].metrics["empty_rcu_brackets"] == 0
    tr = full.trace
    helper = [tr.fields(n, ["caller"]) for n in ("irq_enable", "irq_disable")]
    gone = np.concatenate([h.loc[h["caller"].astype(str).str.split("+").str[0].isin(["kvm_arm_vcpu_enter_exit", "__kvm_vcpu_run"]),
                                 "seq"].to_numpy() for h in helper])
    ev = tr.events
    damaged = kvmtrace.Trace(ev[~ev["seq"].isin(gone)].reset_index(drop=True), tr.meta, tr.binary)
    a = kvmtrace.analyze(damaged)
    assert a.results["damage"].metrics["empty_rcu_brackets"] >= len(a.runs) // 2
    assert not _proven(a) and (a.findings["kind"] == "apparent_irqsoff").sum() > 100  # every run looks old now
    assert a.verdict["verdict"] != "pre-fix", a.verdict["summary"]


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("os", "system"), ("os", "popen"), ("marshal", "loads")}


def test_nothing_evaluates_trace_content():
    """No eval/exec/pickle/shell anywhere in the package (format constants are parsed, not evaluated)."""
    hits = []
    for f in (ROOT / "kvmtrace").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                if isinstance(fn, ast.Name) and fn.id in FORBIDDEN_CALLS:
                    hits.append(f"{f.name}:{node.lineno} {fn.id}")
                if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and (fn.value.id, fn.attr) in FORBIDDEN_ATTRS:
                    hits.append(f"{f.name}:{node.lineno} {fn.value.id}.{fn.attr}")
                if any(k.arg == "shell" and getattr(k.value, "value", False) is True for k in node.keywords):
                    hits.append(f"{f.name}:{node.lineno} shell=True")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n in ("pickle", "marshal", "shelve") for n in names if n):
                    hits.append(f"{f.name}:{node.lineno} import {names}")
    assert not hits, hits


@pytest.mark.parametrize("damage", ["empty", "cut", "zeroed", "no-printk"])
def test_lost_symbols_never_select_the_pre_fix_path(damage):
    """An empty, cut or all-zero kallsyms (what kptr_restrict writes) leaves callers unnamed: the
    caller-dependent classes become undecidable on the real fixed traces, never proven pre-fix.
    Without the printk strings (RCU polarity words, tick function names are pointers) nothing is
    proven either."""
    import re

    from kvmtrace.analyzers import analyze
    from kvmtrace.readers.tracedat import open_dat
    from kvmtrace.readers.tracedat.source import SharedSymbols

    for path in (ARM64 / "arm64-6.1-fixed-tick.dat", SHARED / "real-x86-6.1-qemu-svm" / "x86-6.1-tick.dat"):
        tr = kvmtrace.load(path)
        src = tr.binary
        k = open_dat(str(path), None, None).dat.kallsyms
        if damage == "no-printk":
            src._printk_text = ""
        else:
            src._shared = SharedSymbols({"empty": "", "cut": k[: len(k) // 2],
                                         "zeroed": re.sub(r"(?m)^[0-9a-f]+", lambda m: "0" * len(m.group(0)), k)}[damage])
        a = analyze(tr)
        c = a.counts()
        assert all(v["proven"] == 0 for v in c.values()), (path.name, c)
        if damage == "no-printk":
            continue
        assert c["apparent_irqsoff"]["inferred"] > 1000 and a.verdict["verdict"] == "unknown"
        assert a.verdict["classes"]["apparent_irqsoff"]["verdict"] == "unknown"


V6 = ARM64 / "arm64-6.1-prefix-nohzfull.v6.dat"


def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvmtrace", *args], capture_output=True, text=True, timeout=timeout)


def _one_line_error(r: subprocess.CompletedProcess, path: Path, says: str) -> None:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert str(path) in line and says in line, line


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    import os

    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    _one_line_error(_cli("analyze", str(fifo), timeout=30), fifo, "not a regular file")


def test_sparse_text_without_newlines_is_skipped_with_a_count(tmp_path):
    """An 2 GiB sparse file after a real head: the NUL stretch is one overlong line, skipped and
    counted; the events before it load, in bounded memory."""
    src = ARM64 / "arm64-6.1-fixed-tick.tracefs.txt.xz"
    path = tmp_path / "sparse.txt"
    with open(path, "wb") as fh:
        fh.write(lzma.open(src).read()[:200_000].rsplit(b"\n", 1)[0])
        fh.truncate(2 << 30)
    tr = kvmtrace.load(path)
    assert tr.meta.skipped.get("overlong-line") == 1 and any("without a newline" in w for w in tr.meta.warnings)
    assert tr.meta.events == 1_758


def test_damaged_ring_buffer_layout_is_one_line(tmp_path):
    """A header_page whose commit field is not where a page can hold it (was an IndexError)."""
    data = V6.read_bytes().replace(b"field: local_t commit;\toffset:8;", b"field: local_t commit;\toffset:9;", 1)
    path = tmp_path / "layout.dat"
    path.write_bytes(data)
    _one_line_error(_cli("analyze", str(path)), path, "header_page")


def test_absurd_clock_options_are_one_line():
    """TSC2NSEC and OFFSET that carry times past 64 bits (were OverflowError)."""
    from kvmtrace.readers.tracedat import header as hdr
    from kvmtrace.readers.tracedat import to_ns

    raw = V6.read_bytes()
    dat = hdr.parse(str(V6), memoryview(raw))
    ts = np.array([1 << 40], np.uint64)
    dat.clock = "x86-tsc"
    dat.options["tsc2nsec"] = (1 << 40, 0, 0)
    with pytest.raises(TraceError, match="TSC2NSEC"):
        to_ns(ts, dat)
    dat.options.pop("tsc2nsec")
    dat.options["offset"] = 1 << 63
    with pytest.raises(TraceError, match="OFFSET"):
        to_ns(ts, dat)


def test_out_of_range_numbers_are_damage_not_crashes():
    """A kallsyms address over 64 bits, a format id over 2^63, a decimal field below int64 (were
    OverflowError, ArrowInvalid): the value is left out, the rest reads."""
    import pyarrow as pa

    from kvmtrace.fields.convert import to_int64
    from kvmtrace.readers.tracedat.formats import FormatTable
    from kvmtrace.readers.tracedat.symbols import Symbols

    s = Symbols("1ffffffffffffffff T huge\nffffffc008010000 T _stext\nffffffc008010100 T f\nffffffc008320000 D _etext\n")
    names, offs = s.resolve(np.array([0xFFFFFFC008010104], np.uint64))
    assert (names[0], offs[0]) == ("f", 4) and s.address("huge") is None
    table = FormatTable([("kvm", "name: kvm_exit\nID: 99999999999999999999\nformat:\n")])
    assert len(table) == 0
    got = to_int64(pa.array(["-9223372036854775809", "-9223372036854775808", "7"]))
    assert got.isna().tolist() == [True, False, False] and int(got[2]) == 7


def test_v7_chunks_declaring_gigabytes_are_refused_before_allocating():
    from kvmtrace.errors import TraceTooLargeError
    from kvmtrace.readers.tracedat import header as hdr

    data = struct_pack_chunks([(16, 1 << 30), (16, 1 << 30)])
    r = hdr._Reader("x.dat", memoryview(data), False)
    with pytest.raises(TraceTooLargeError, match="absurd"):
        hdr.flyrecord_chunks(r, "zstd", 0, len(data), "x.dat")


def struct_pack_chunks(chunks: list[tuple[int, int]]) -> bytes:
    """v7 flyrecord chunk list: count, then (csize, usize, csize bytes) per chunk."""
    import struct

    out = struct.pack("<I", len(chunks))
    for csize, usize in chunks:
        out += struct.pack("<II", csize, usize) + b"\0" * csize
    return out


def test_damaged_gzip_head_is_one_line(tmp_path):
    """A gzip whose deflate data is garbage (was zlib.error, 'internal error')."""
    good = gzip.compress(lzma.open(ARM64 / "arm64-6.1-fixed-tick.tracefs.txt.xz").read()[:50_000])
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(good[:10] + bytes(b ^ 0x5A for b in good[10:200]) + good[200:])
    _one_line_error(_cli("analyze", str(path)), path, "")


def test_a_folder_of_one_junk_trace_names_it(tmp_path):
    (tmp_path / "x.dat").write_bytes(b"\x17\x08\x44tracing6\0" + b"\xff" * 100)
    r = _cli("analyze", str(tmp_path))
    assert r.returncode == 2 and str(tmp_path / "x.dat") in r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("seed", [1, 2])
def test_deleting_lines_of_a_fixed_trace_proves_nothing(seed, tmp_path):
    """Half the lines of the real fixed nohz_full text deleted at random: a missing irq_enable or RCU
    transition is not evidence. Apparent windows are contradicted by the trace's reworked runs, RCU
    findings by counters that skip, so nothing is proven and the verdict stays fixed."""
    import random

    from kvmtrace.analyzers import analyze

    lines = lzma.open(ARM64 / "arm64-6.1-fixed-nohzfull.tracefs.txt.xz").read().splitlines(keepends=True)
    rng = random.Random(seed)
    path = tmp_path / "half.txt"
    path.write_bytes(b"".join(ln for ln in lines if ln.startswith(b"#") or rng.random() < 0.5))
    a = analyze(kvmtrace.load(path))
    c = a.counts()
    assert all(v["proven"] == 0 for v in c.values()), c
    assert c["apparent_irqsoff"]["inferred"] > 0 and a.verdict["verdict"] == "fixed"


@pytest.mark.parametrize("how", ["garbled", "non-utf8", "absurd-cpu", "absurd-pid"])
def test_a_damaged_line_inside_a_finding_makes_it_inferred(how, tmp_path):
    """Unparsable lines and lines with bytes that are not UTF-8 are counted damage: a proven finding
    whose evidence spans one (an unparsable line's CPU is unknown: any CPU) becomes inferred with the
    reason; the others stay proven."""
    from kvmtrace.analyzers import analyze

    lines = lzma.open(ARM64 / "arm64-6.1-prefix-nohzfull.tracefs.txt.xz").read().splitlines(keepends=True)
    entries = [i for i, ln in enumerate(lines) if b" kvm_entry:" in ln]
    damaged = {i - 1 for i in entries[100:110]}  # the line before ten guest entries: inside their apparent windows

    def damage(ln: bytes) -> bytes:
        if how == "absurd-cpu":
            return re.sub(rb"\[\d+\]", b"[9999]", ln, count=1)
        if how == "absurd-pid":
            return re.sub(rb"-(\d+)(\s+\[)", rb"-99999999\2", ln, count=1)
        return b"\x07garbled\n" if how == "garbled" else ln[:-2] + b"\xff\n"

    path = tmp_path / "damaged.txt"
    path.write_bytes(b"".join(damage(ln) if i in damaged else ln for i, ln in enumerate(lines)))
    a = analyze(kvmtrace.load(path))
    impossible = a.results["damage"].metrics["impossible_cpu_or_pid"]
    assert len(a.trace.meta.damaged) + impossible == 10 and (impossible == 10) == how.startswith("absurd")
    assert a.trace.meta.skipped.get("unparsable", 0) == (10 if how == "garbled" else 0)
    f = a.findings[a.findings["kind"] == "apparent_irqsoff"]
    inferred = f[f["confidence"] == "inferred"]
    assert 1 <= len(inferred) <= 20 and inferred["why"].str.contains("could not be decoded").all()
    assert (f["confidence"] == "proven").sum() >= 1667 - 20


@pytest.mark.parametrize("name", ["real-arm64-6.1-qemu/arm64-6.1-fixed-tick.tracefs.txt.xz",
                                  "real-x86-6.1-qemu-svm/x86-6.1-tick.tracefs.txt.xz"])
def test_crops_of_a_fixed_trace_prove_nothing(name, tmp_path):
    """A stretch of a fixed kernel's trace cut at line boundaries: runs, windows and EQS cut open at
    the edges are not evidence, so no crop has a proven finding."""
    import random

    from kvmtrace.analyzers import analyze

    lines = lzma.open(SHARED / name).read().splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith(b"#")]
    body = [ln for ln in lines if not ln.startswith(b"#")]
    rng = random.Random(5)
    for k in range(15):
        a = rng.randrange(len(body))
        path = tmp_path / f"crop{k}.txt"
        path.write_bytes(b"".join(head + body[a:a + rng.randrange(200, 20_000)]))
        c = analyze(kvmtrace.load(path)).counts()
        assert all(v["proven"] == 0 for v in c.values()), (k, c)


@pytest.mark.parametrize("unit", [b"\n", b"#\n"], ids=["blank", "comment"])
def test_decompression_bombs_of_tiny_lines_stop_at_the_bound(unit, tmp_path):
    """A few KB of zstd that expand to 256 MiB of blank or comment lines: blocks hold at most
    MAX_LINES lines, so memory stays bounded until the 1000x ratio refuses the stream in one line."""
    head = b"# tracer: nop\n" + lzma.open(ARM64 / "arm64-6.1-fixed-tick.tracefs.txt.xz").read()[:2000].rsplit(b"\n", 1)[0] + b"\n"
    path = tmp_path / "bomb.txt.zst"
    with open(path, "wb") as fh:
        w = zstandard.ZstdCompressor(level=19).stream_writer(fh)
        w.write(head)
        for _ in range(32):
            w.write(unit * ((8 << 20) // len(unit)))
        w.flush(zstandard.FLUSH_FRAME)
    assert path.stat().st_size < 64 << 10
    _one_line_error(_cli("analyze", str(path)), path, "decompression bomb")


@pytest.mark.parametrize("lines", [1, 250_000, 250_001, 600_003])
def test_a_block_of_many_short_lines_is_cut_on_newlines_into_bounded_pieces(lines):
    """The reader cuts a block of more than MAX_LINES lines on line ends: every piece holds at
    most MAX_LINES whole lines, and the pieces put back together are the block."""
    from kvmtrace.readers.text import MAX_LINES, _by_lines

    data = b"".join(b"x" * (i % 7) + b"\n" for i in range(lines))
    buf = np.frombuffer(data, dtype=np.uint8)
    pieces = [piece for piece, partial in _by_lines(buf, data.count(b"\n"))]
    assert b"".join(p.tobytes() for p in pieces) == data
    assert all(p[-1] == 10 and 0 < int((p == 10).sum()) <= MAX_LINES for p in pieces)
    assert len(pieces) == -(-lines // MAX_LINES)


@pytest.mark.parametrize("how", ["zero", "copy", "stamp-zero", "swap"])
def test_a_damaged_page_is_counted_the_same_whole_and_streamed(how, tmp_path):
    """One page of the real host-idle.v6.dat zeroed (it lost 148 events with an empty meta), copied
    over, re-stamped or swapped: the whole read and the streamed read count the same damage, and
    the events lost or misplaced are damage at the same seqs."""
    import damage
    from kvmtrace.analyzers import Options

    src = SHARED / "real-x86-6.18" / "host-idle.v6.dat"
    data = src.read_bytes()
    whole = kvmtrace.load(src, cache=False)
    from kvmtrace.readers.tracedat import header as hdr
    cpu1 = hdr.parse(str(src), memoryview(data)).buffers[0].cpus[1]
    path = tmp_path / f"{how}.dat"
    path.write_bytes(damage.edit_pages(data, cpu1.offset, cpu1.size, 4096, how, 0.5, 0.55, 0))
    tr = kvmtrace.load(path, cache=False)
    kind = "empty-page" if how == "zero" else "misplaced-page"
    assert tr.meta.skipped.get(kind, 0) >= 1 and tr.meta.lost_gaps and tr.meta.warnings
    if how == "zero":
        assert 100 < len(whole.events) - len(tr.events) < 400 and not tr.meta.damaged  # a page's events
    else:
        assert tr.meta.damaged and all(c == 1 for _s, c in tr.meta.damaged)
    streamed = kvmtrace.analyze(str(path), Options(low_memory=True, chunk_events=5000)).trace.meta
    assert streamed.skipped == tr.meta.skipped and sorted(map(tuple, streamed.damaged)) == sorted(map(tuple, tr.meta.damaged))
    assert len(streamed.lost_gaps) == len(tr.meta.lost_gaps)


def test_symbolic_links_that_loop_are_one_line_and_folders_are_not_walked_into_them(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    _one_line_error(_cli("analyze", str(tmp_path / "a")), tmp_path / "a", "loops")
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "up").symlink_to(tmp_path)  # a link back to the folder's parent
    (folder / "t.dat").write_bytes((ROOT / "sample_traces" / "x86-6.1-synth-fixed-tick.v7.dat").read_bytes())
    r = _cli("analyze", str(folder), "--json", "--no-cache", timeout=120)
    assert r.returncode == 0 and [t["path"] for t in json.loads(r.stdout)["traces"]] == [str(folder / "t.dat")]
