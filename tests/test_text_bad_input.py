"""Bad input ends in one line naming the file and place (exit 2) or a partial load with counts."""
from __future__ import annotations

import lzma
import subprocess
import sys

import pytest

import kvmtrace
from kvmtrace.errors import TraceFormatError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvmtrace", *args], capture_output=True, text=True, timeout=120)


GOOD = "           vcpu0-32      [001] d....     0.528885: rcu_dyntick: ++= 4000000000000000 4000000000000002 0x2ec\n"


@pytest.mark.parametrize("content,where", [
    (b"", None),
    (bytes(range(256)) * 40, "byte 0"),
    (b"a,b,c\n1,2,3\n4,5,6\n", "line 1"),
    (b'{"traceEvents": []}\n', "line 1"),
    (b"\n\n\n", None),
])
def test_unreadable_input_is_one_line_exit_2(tmp_path, content, where):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(TraceFormatError) as ei:
        kvmtrace.load(p)
    assert str(p) in str(ei.value)
    if where:
        assert where in str(ei.value)
    r = run_cli("events", str(p))
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and str(p) in r.stderr and "Traceback" not in r.stderr


def test_missing_file_and_directory(tmp_path):
    for p in (tmp_path / "nope.txt", tmp_path):
        r = run_cli("events", str(p))
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_truncated_last_line_is_counted_and_warned(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(GOOD * 10 + GOOD[:40])
    tr = kvmtrace.load(p)
    assert tr.meta.events == 10
    assert tr.meta.skipped == {"unparsable": 1}
    assert any("incomplete" in w for w in tr.meta.warnings)


def test_mixed_valid_and_invalid_lines_partial_load(tmp_path):
    junk = ["> quoted reply", "Sent from my phone", "0.528885: kvm_entry: PC: 0x0", "\x00\x01garbage", "ab-12 [x] 1.0: foo: bar"]
    lines = []
    for i in range(50):
        lines.append(GOOD.replace("0.528885", f"0.{528885 + i:06d}").rstrip("\n"))
        lines.append(junk[i % len(junk)])
    p = tmp_path / "mixed.txt"
    p.write_text("\n".join(lines) + "\n")
    tr = kvmtrace.load(p)
    assert tr.meta.events == 50
    assert tr.meta.skipped["unparsable"] == 50
    assert tr.meta.events + tr.meta.skipped_total == tr.meta.lines == 100
    assert len(tr.meta.skipped_examples) == 5 and tr.meta.skipped_examples[0]["line"] == 2
    r = run_cli("events", str(p))
    assert r.returncode == 0 and "unparsable 50" in r.stdout and "skipped line 2" in r.stdout


def test_truncated_xz_gives_partial_load_with_warning(tmp_path, shared):
    data = (shared / "real-arm64-6.1-qemu" / "arm64-6.1-fixed-tick.tracefs.txt.xz").read_bytes()
    p = tmp_path / "cut.xz"
    p.write_bytes(data[: len(data) // 2])
    tr = kvmtrace.load(p)
    full = kvmtrace.load(shared / "real-arm64-6.1-qemu" / "arm64-6.1-fixed-tick.tracefs.txt.xz")
    assert 0 < tr.meta.events < full.meta.events
    assert tr.meta.skipped.get("truncated-stream") == 1
    assert any("ends early" in w for w in tr.meta.warnings)


def test_decompression_is_bounded(tmp_path, monkeypatch):
    from kvmtrace.readers import compression
    monkeypatch.setattr(compression, "MAX_RATIO", 10)
    p = tmp_path / "bomb.xz"
    p.write_bytes(lzma.compress((GOOD * 200_000).encode()))
    with pytest.raises(kvmtrace.TraceError, match="decompression bomb"):
        kvmtrace.load(p)


@pytest.mark.parametrize("text", [
    b"a\nbb\nccc\n", b"a\nbb\nccc", b"x" * 50, b"x" * 300, b"a\n" + b"y" * 300 + b"\nb\n", b"a\n" + b"y" * 300,
    b"short\n" + b"z" * 70 + b"\nend\n", b"\n\n\n", b"q" * 64 + b"\n" + b"r" * 63, b"s\n" * 400,
    b"%d pages behind are let go\n" * 6000,
])
def test_a_mapped_file_cuts_into_the_lines_a_read_cuts(text, tmp_path, monkeypatch):
    """Plain text is read through a mapping, other input by reads: the same lines in the same order,
    the same partial last line, and the same overlong stretches (at their offsets), for blocks
    smaller than a line, lines longer than the bound, files that end without a newline, and one
    long enough that the pages behind the blocks leave the mapping as it goes."""
    from kvmtrace.readers import text as T

    path = tmp_path / "t.txt"
    path.write_bytes(text)
    assert T.mapped_plain(str(path)) is not None  # plain text: the mapped path is the one taken

    def cut(mapped: bool) -> tuple[list[tuple[bytes, bool]], list[int]]:
        with monkeypatch.context() as m:
            m.setattr(T, "MAX_LINE", 100)
            m.setattr(T, "MAX_LINES", 150)
            if not mapped:
                m.setattr(T, "mapped_plain", lambda p: None)
            overlong: list[int] = []
            return [(bytes(b), final) for b, final in T._lines_of(str(path), 32, overlong)], overlong

    (mapped, mapped_long), (read, read_long) = cut(True), cut(False)
    assert b"".join(p for p, _ in mapped) == b"".join(p for p, _ in read)
    assert [p for p, f in mapped if f] == [p for p, f in read if f]  # the partial last line
    assert mapped_long == read_long
    assert all(p.endswith(b"\n") and p.count(b"\n") <= 150 for p, f in mapped if not f)


def test_a_file_that_shrinks_while_it_is_read_ends_with_a_warning_not_a_crash(tmp_path):
    """A plain file is read through a mapping, and a page a rewrite truncated away kills the
    process (SIGBUS) when touched: the blocks handed to the parsers are copies taken after the
    file's size is checked, so a block already out survives the truncation, and the read ends
    where the file now does, with a warning, and what was read is kept."""
    from kvmtrace.meta import TraceMeta
    from kvmtrace.readers import text as T
    from kvmtrace.readers.sniff import sniff_text

    line = b"          <idle>-0       [000] d.h1.   100.000001: irq_enable: caller=do_idle+0x1c/0x40 parent=0x0\n"
    path = tmp_path / "t.txt"
    path.write_bytes(b"# tracer: nop\n" + line * 4000)
    blocks = T._lines_of(str(path), 64 << 10, [])
    first, _final = next(blocks)
    with open(path, "r+b") as fh:  # a rewrite: truncated, then written anew, shorter
        fh.truncate(0)
    assert bytes(first[:14]) == b"# tracer: nop\n" and bytes(first).count(b"\n") > 100  # still readable
    with pytest.raises(T._Truncated, match="shrank to 0 bytes"):
        next(blocks)
    # through the reader: the lines before the truncation load, and a warning says where it ended
    path.write_bytes(b"# tracer: nop\n" + line * 4000)
    meta = TraceMeta(path=str(path), source_format="tracefs")
    fmt = sniff_text(str(path), path.read_bytes()[:4096])
    chunks = T.text_chunks(str(path), fmt, meta, block_size=64 << 10, chunk_events=100)
    got = len(next(chunks))
    with open(path, "r+b") as fh:
        fh.truncate(len(line) * 10)
    got += sum(len(c) for c in chunks)
    assert 100 <= got < 4000
    assert any("shrank" in w and "ends early" in w for w in meta.warnings)
