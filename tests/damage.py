"""Structured damage of real trace.dat files and text, for the metamorphic tests (``test_damage.py``).

Each edit is a small tuple drawn by hypothesis and applied here, so a failure prints the edit that
rebuilds its input. The trace.dat edits work on a v6 file without compression (``trace-cmd convert``
of a real v7 file), where every section is plain bytes: the header_page and event format texts,
kallsyms, printk, the options, the CPU table and each CPU's ring-buffer pages; and on the real v7
file for its chunk headers and recompressed chunks.
"""
from __future__ import annotations

import re
import signal
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import zstandard
from hypothesis import strategies as st

import kvmtrace
from kvmtrace.errors import TraceError
from kvmtrace.readers.tracedat import header as hdr

#: the event formats the analyses decode: damage there changes what they read
USED = ("kvm_entry", "kvm_exit", "irq_handler_entry", "irq_handler_exit", "irq_disable", "irq_enable",
        "rcu_dyntick", "hrtimer_expire_entry", "hrtimer_expire_exit", "sched_switch", "tick_stop")
TEXT_SECTIONS = ("header_page", "header_event", "kallsyms", "printk", "uname")


@dataclass(repr=False)
class Layout:
    """Where each part of a v6 trace.dat sits."""

    data: bytes
    page: int
    sections: dict[str, tuple[int, int]]       # text section → (offset, length)
    formats: dict[str, tuple[int, int]]        # event format text → (offset, length)
    cpu_entries: list[int]                     # offset of each CPU's (data offset, size) pair
    cpu_data: list[tuple[int, int]]            # each CPU's (offset, size)
    path: Path | None = None

    def __repr__(self) -> str:  # hypothesis prints the fixture with a falsifying example
        return f"Layout({self.path})"

    def _repr_pretty_(self, p: object, cycle: bool) -> None:  # hypothesis's printer, for dataclasses
        p.text(repr(self))  # type: ignore[attr-defined]


def layout(path: Path) -> Layout:
    data = path.read_bytes()
    dat = hdr.parse(str(path), memoryview(data))
    assert dat.version == 6 and dat.compression == "none"

    def where(text: str) -> tuple[int, int]:
        raw = text.encode()
        at = data.find(raw)
        assert at > 0 and raw, text[:40]
        return at, len(raw)

    sections = {"header_page": where(dat.header_page), "header_event": where(dat.header_event),
                "kallsyms": where(dat.kallsyms), "printk": where(dat.printk), "uname": where(dat.options["uname"])}
    formats = {}
    for _system, text in dat.event_formats:
        name = re.search(r"^name: (\S+)", text, re.M)
        if name and name.group(1) in USED:
            formats[name.group(1)] = where(text)
    cpus = [c for c in dat.buffers[0].cpus]
    entries = [data.find(struct.pack("<QQ", c.offset, c.size)) for c in cpus]
    assert all(e > 0 for e in entries)
    return Layout(data, dat.page_size, sections, formats, entries, [(c.offset, c.size) for c in cpus], path)


class Quiet(dict):
    """A fixture's dict that prints as its keys: hypothesis prints fixtures with a falsifying example."""

    def __repr__(self) -> str:
        return f"<{', '.join(map(str, self))}>"

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(repr(self))  # type: ignore[attr-defined]


# ------------------------------------------------------------------ edits of text inside a section

def _edit_text(text: bytes, how: str, at: float, value: int) -> bytes:
    """``text`` damaged in place, its length kept (so the section's size stays true)."""
    n = len(text)
    pos = min(int(at * n), n - 1)
    if how == "flip":
        return text[:pos] + bytes([value & 0xFF]) + text[pos + 1:]
    if how == "number":  # a number of the text made another of the same width: 0s, 9s, or a sign
        runs = [m.span() for m in re.finditer(rb"\d+", text)]
        if not runs:
            return text
        s, e = runs[min(int(at * len(runs)), len(runs) - 1)]
        new = [b"0" * (e - s), b"9" * (e - s), (b"-" + b"9" * (e - s))[: e - s], str(value).encode().rjust(e - s, b"0")[-(e - s):]]
        return text[:s] + new[value % 4] + text[e:]
    if how == "drop-line":  # a line removed; blank lines pad the section to its size
        lines = text.split(b"\n")
        k = min(int(at * len(lines)), len(lines) - 1)
        out = b"\n".join(lines[:k] + lines[k + 1:])
        return out + b"\n" * (n - len(out))
    if how == "cut":  # everything after a point lost (zeros)
        return text[:pos] + b"\0" * (n - pos)
    if how == "zero-addresses":  # what a kernel with kptr_restrict writes
        return re.sub(rb"(?m)^[0-9a-f]+", lambda m: b"0" * len(m.group(0)), text)
    if how == "shuffle":  # lines reordered
        lines = text.split(b"\n")
        k = (value % max(len(lines) - 1, 1)) + 1
        return b"\n".join(lines[k:] + lines[:k])
    raise ValueError(how)


TEXT_EDITS = ("flip", "number", "drop-line", "cut", "zero-addresses", "shuffle")


def edit_section(lay: Layout, target: str, how: str, at: float, value: int) -> bytes:
    """The file with section ``target`` (a text section or ``format:EVENT``) damaged."""
    off, size = lay.formats[target.split(":", 1)[1]] if target.startswith("format:") else lay.sections[target]
    return lay.data[:off] + _edit_text(lay.data[off: off + size], how, at, value) + lay.data[off + size:]


# ------------------------------------------------------------------ edits of the CPU table and pages

CPU_TABLE_EDITS = ("offset+page", "offset-page", "size/2", "size*2", "size-page", "size=0", "offset=huge")


def edit_cpu_table(lay: Layout, cpu: int, how: str) -> bytes:
    cpu %= len(lay.cpu_entries)
    at = lay.cpu_entries[cpu]
    off, size = lay.cpu_data[cpu]
    new = {"offset+page": (off + lay.page, size), "offset-page": (off - lay.page, size), "size/2": (off, size // 2),
           "size*2": (off, size * 2), "size-page": (off, max(size - lay.page, 0)), "size=0": (off, 0),
           "offset=huge": (1 << 62, size)}[how]
    return lay.data[:at] + struct.pack("<QQ", *new) + lay.data[at + 16:]


PAGE_EDITS = ("zero", "copy", "swap", "stamp-zero", "stamp-future", "stamp-back", "flip", "commit")


def edit_pages(data: bytes, start: int, size: int, page: int, how: str, at: float, other: float, value: int) -> bytes:
    """One page of a CPU's data (``start``, ``size`` bytes of whole pages) damaged."""
    n = size // page
    if n == 0:
        return data
    i, j = min(int(at * n), n - 1), min(int(other * n), n - 1)
    a, b = start + i * page, start + j * page
    buf = bytearray(data)
    if how == "zero":
        buf[a: a + page] = bytes(page)
    elif how == "copy":
        buf[a: a + page] = data[b: b + page]
    elif how == "swap":
        buf[a: a + page], buf[b: b + page] = data[b: b + page], data[a: a + page]
    elif how.startswith("stamp"):
        ts = struct.unpack_from("<Q", data, a)[0]
        new = {"stamp-zero": 0, "stamp-future": ts + (1 << 40), "stamp-back": max(ts - (value + 1) * 1000, 0)}[how]
        struct.pack_into("<Q", buf, a, new)
    elif how == "flip":
        for k in range(1 + value % 8):
            buf[a + 8 + (value * 2654435761 + k * 40503) % (page - 8)] ^= 1 << (k % 8)
    elif how == "commit":  # the page's data size
        struct.pack_into("<Q", buf, a + 8, [0, page, 1 << 26, value][value % 4])
    return bytes(buf)


def edit_cpu_pages(lay: Layout, cpu: int, how: str, at: float, other: float, value: int) -> bytes:
    off, size = lay.cpu_data[cpu % len(lay.cpu_data)]
    return edit_pages(lay.data, off, size, lay.page, how, at, other, value)


# ------------------------------------------------------------------ v7 chunks

CHUNK_EDITS = ("count-1", "count+1", "csize-1", "csize+1", "usize-page", "usize+page", "usize=huge", "recompress")


def edit_chunks(path: Path, cpu: int, chunk: float, how: str, page_edit: str, at: float, value: int) -> bytes | None:
    """A v7 file with one CPU's chunk list damaged; ``recompress`` damages a page inside one chunk
    and compresses it again (None when the result would not fit where the chunk was)."""
    data = path.read_bytes()
    dat = hdr.parse(str(path), memoryview(data))
    c = dat.buffers[0].cpus[cpu % len(dat.buffers[0].cpus)]
    r = hdr._Reader(str(path), memoryview(data))
    chunks = hdr.flyrecord_chunks(r, dat.compression, c.offset, c.size, str(path))
    k = min(int(chunk * len(chunks)), len(chunks) - 1)
    coff, csize, usize = chunks[k]
    head = coff - 8
    buf = bytearray(data)
    if how.startswith("count"):
        struct.pack_into("<I", buf, c.offset, len(chunks) + (1 if how == "count+1" else -1))
    elif how.startswith("csize"):
        struct.pack_into("<I", buf, head, csize + (1 if how == "csize+1" else -1))
    elif how.startswith("usize"):
        struct.pack_into("<I", buf, head + 4, {"usize-page": max(usize - dat.page_size, 0),
                                               "usize+page": usize + dat.page_size, "usize=huge": 0xFFFFFFFF}[how])
    else:
        plain = zstandard.ZstdDecompressor().decompress(data[coff: coff + csize], max_output_size=usize)
        damaged = edit_pages(plain, 0, len(plain), dat.page_size, page_edit, at, 1 - at, value)
        frame = zstandard.ZstdCompressor().compress(damaged)
        end = c.offset + 4 + sum(8 + s for _o, s, _u in chunks)
        rest = data[coff + csize: end]
        if len(frame) > csize:
            return None
        struct.pack_into("<I", buf, head, len(frame))
        buf[coff: end] = frame + rest + bytes(csize - len(frame))
    return bytes(buf)


# ------------------------------------------------------------------ text

TEXT_LINE_EDITS = ("delete", "duplicate", "swap", "absurd", "unpair", "merge", "garbage", "non-utf8")


def edit_lines(lines: list[bytes], how: str, at: float, amount: float, value: int) -> list[bytes]:
    """Event lines (a crop of a real trace) damaged: ``amount`` is the share of lines touched."""
    out = lines[:]
    n = len(out)
    if not n:
        return out
    k = min(int(at * n), n - 1)
    touched = range(k, min(n, k + max(1, int(amount * n))))
    if how == "delete":  # every few lines in the stretch
        step = 1 + value % 4
        return [ln for i, ln in enumerate(out) if not (i in touched and (i - k) % step == 0)]
    if how == "duplicate":
        return [x for i, ln in enumerate(out) for x in ((ln, ln) if i in touched else (ln,))]
    if how == "swap":
        for i in touched[:-1:2]:
            out[i], out[i + 1] = out[i + 1], out[i]
        return out
    if how == "absurd":  # a number of the line made one no kernel writes
        big = [b"99999999999999999999", b"-1", b"4294967296", b"18446744073709551616"][value % 4]
        for i in touched[:64]:
            runs = list(re.finditer(rb"\d+", out[i]))
            if runs:
                m = runs[value % len(runs)]
                out[i] = out[i][: m.start()] + big + out[i][m.end():]
        return out
    if how == "unpair":  # every event of one kind in the stretch removed (its partner left alone)
        names = [b" irq_enable:", b" irq_disable:", b" kvm_exit:", b" kvm_entry:", b" rcu_dyntick:",
                 b" irq_handler_exit:", b" hrtimer_expire_exit:", b" tick_stop:"]
        name = names[value % len(names)]
        return [ln for i, ln in enumerate(out) if not (i in touched and name in ln)]
    if how == "merge":  # a newline lost: a carriage return runs two lines together
        if n < 2:
            return out
        k = min(k, n - 2)  # (the last line has none after it: "\r\n" there is a CRLF line end)
        out[k] = out[k].rstrip(b"\n") + b"\r" + out[k + 1]
        return out[: k + 1] + out[k + 2:]
    if how == "garbage":  # never whitespace alone or '#': a blank or comment line, rightly
        byte = value & 0x7F
        byte = 0x07 if byte in (9, 10, 11, 12, 13, 32, 35) else byte
        return out[:k] + [bytes([byte]) * (1 + value % 50) + b"\n"] + out[k:]
    if how == "non-utf8":
        out[k] = out[k][:-2] + b"\xff\n" if len(out[k]) > 2 else out[k]
        return out
    raise ValueError(how)


# ------------------------------------------------------------------ the invariant

class Hang(Exception):
    pass


@contextmanager
def bounded(seconds: int = 60) -> Iterator[None]:
    """Fail an example that runs over ``seconds`` (a hang) instead of waiting forever."""
    def ring(_sig: int, _frame: object) -> None:
        raise Hang(f"over {seconds} s")
    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def proves_nothing(path: Path, intact_events: int | None = None) -> kvmtrace.Trace | None:
    """Load and analyze damaged ``path`` of a fixed kernel: a one-line error naming the file, or an
    analysis without a proven finding; with ``intact_events``, a load with fewer events says so."""
    from kvmtrace.analyzers import analyze

    try:
        tr = kvmtrace.load(path, cache=False)
    except TraceError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
        return None
    m = tr.meta
    if intact_events is not None and m.events < intact_events:
        assert m.skipped or m.lost_gaps or m.warnings or m.damaged, f"{intact_events - m.events} events lost silently"
    counts = analyze(tr).counts()
    assert all(v["proven"] == 0 for v in counts.values()), counts
    return tr


def ratio() -> st.SearchStrategy[float]:
    return st.floats(0, 1, allow_nan=False, exclude_max=True)
