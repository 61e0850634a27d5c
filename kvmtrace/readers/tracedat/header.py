"""trace.dat containers (v6 and v7, see ``man 5 trace-cmd.dat.v6/v7``): header, sections, options.

Produces a ``DatFile`` with the metadata blobs (header_page, header_event, format
files, kallsyms, printk formats, cmdlines) and, per buffer (instance), per CPU,
where the ring-buffer pages are. Every declared size is checked against the
file before anything is read or allocated; decompression is bounded.
"""
from __future__ import annotations

from collections.abc import Callable

import struct
import threading
from typing import Any
import zlib
from dataclasses import dataclass, field

import zstandard

from ...errors import TraceFormatError, TraceTooLargeError

MAGIC = b"\x17\x08\x44tracing"
MAX_META_SECTION = 1 << 30        # metadata sections (formats, kallsyms) above 1 GiB are refused
#: what a CPU's compressed data may expand to, at most, times its size
MAX_RATIO = 1000
MAX_CHUNK = 64 << 20  # trace-cmd writes chunks of 10 pages (40 KiB); larger is damage or a bomb

OPT_DONE, OPT_DATE, OPT_CPUSTAT, OPT_BUFFER, OPT_TRACECLOCK, OPT_UNAME = 0, 1, 2, 3, 4, 5
OPT_OFFSET, OPT_CPUCOUNT, OPT_VERSION, OPT_TRACEID, OPT_TIME_SHIFT, OPT_GUEST, OPT_TSC2NSEC = 7, 8, 9, 11, 12, 13, 14
OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS, OPT_KALLSYMS, OPT_PRINTK, OPT_CMDLINES = 16, 17, 18, 19, 20, 21
OPT_BUFFER_TEXT = 22
SECTION_COMPRESSED = 1


@dataclass
class CpuData:
    cpu: int
    offset: int
    size: int
    #: v7 compressed flyrecord: decompressed lazily from chunks starting at ``offset``
    compressed: bool = False


@dataclass
class Buffer:
    """One trace instance's flyrecord data ("" is the top instance)."""

    name: str
    clock: str
    page_size: int
    cpus: list[CpuData] = field(default_factory=list)


@dataclass
class DatFile:
    path: str
    version: int
    big_endian: bool
    long_size: int
    page_size: int
    compression: str = "none"
    header_page: str = ""
    header_event: str = ""
    ftrace_formats: list[str] = field(default_factory=list)
    event_formats: list[tuple[str, str]] = field(default_factory=list)  # (system, format text)
    kallsyms: str = ""
    printk: str = ""
    cmdlines: str = ""
    cpu_count: int = 0
    clock: str = "local"
    buffers: list[Buffer] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def endian(self) -> str:
        return ">" if self.big_endian else "<"


class _Reader:
    """Bounds-checked reads from the file image (``memoryview`` of the whole file)."""

    def __init__(self, path: str, data: memoryview, big_endian: bool = False) -> None:
        self.path = path
        self.data = data
        self.e = ">" if big_endian else "<"

    def need(self, off: int, n: int, what: str) -> None:
        if n < 0 or off < 0 or off + n > len(self.data):
            raise TraceFormatError(self.path, f"byte {off}",
                                   f"{what}: needs {n} bytes but the file has {max(len(self.data) - off, 0)} left (truncated or corrupt)")

    def u(self, off: int, size: int, what: str) -> int:
        self.need(off, size, what)
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
        return struct.unpack_from(self.e + fmt, self.data, off)[0]

    def cstr(self, off: int, what: str, limit: int = 4096) -> tuple[str, int]:
        end = bytes(self.data[off: off + limit]).find(b"\0")
        if end < 0:
            raise TraceFormatError(self.path, f"byte {off}", f"{what}: unterminated string")
        return bytes(self.data[off: off + end]).decode("utf-8", "replace"), off + end + 1

    def blob(self, off: int, n: int, what: str) -> bytes:
        if n > MAX_META_SECTION:
            raise TraceTooLargeError(self.path, f"byte {off}", f"{what}: declared size {n} is absurd")
        self.need(off, n, what)
        return bytes(self.data[off: off + n])


_local = threading.local()


def _zstd(b: memoryview, n: int) -> bytes:
    """One chunk: a decompressor per thread is reused, as a new one per chunk costs as much as the
    decompression (thousands of chunks per CPU)."""
    d = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor()
    return d.decompress(b, max_output_size=n)


def _decompressor(kind: str) -> "Callable[[memoryview, int], bytes] | None":
    if kind == "zstd":
        return _zstd
    if kind == "zlib":
        def inflate(b: memoryview, n: int) -> bytes:
            d = zlib.decompressobj()
            out = d.decompress(b, n)
            return out
        return inflate
    return None


def parse(path: str, data: memoryview) -> DatFile:
    """Parse a trace.dat image (the whole file, mapped)."""
    if bytes(data[:10]) != MAGIC:
        raise TraceFormatError(path, "byte 0", "not a trace.dat file (bad magic)")
    r = _Reader(path, data)
    vstr, off = r.cstr(10, "version string", 16)
    if not vstr.isdigit():
        raise TraceFormatError(path, "byte 10", f"trace.dat version {vstr!r} is not a number")
    version = int(vstr)
    if version not in (6, 7):
        raise TraceFormatError(path, "byte 10", f"trace.dat version {version} is not supported (6 and 7 are)")
    r.need(off, 6, "file header")
    big = data[off] == 1
    long_size = data[off + 1]
    if long_size not in (4, 8) or data[off] not in (0, 1):
        raise TraceFormatError(path, f"byte {off}", f"corrupt header: endian flag {data[off]}, long size {long_size}")
    r.e = ">" if big else "<"
    page_size = r.u(off + 2, 4, "page size")
    if page_size < 64 or page_size > (1 << 24) or page_size & (page_size - 1):
        raise TraceFormatError(path, f"byte {off + 2}", f"implausible page size {page_size}")
    dat = DatFile(path, version, big, long_size, page_size)
    off += 6
    if version == 6:
        _parse_v6(r, dat, off)
    else:
        _parse_v7(r, dat, off)
    return dat


# ---------------------------------------------------------------- v6

def _parse_v6(r: _Reader, dat: DatFile, off: int) -> None:
    off = _header_info(r, dat, off)
    n = r.u(off, 4, "ftrace format count")
    off += 4
    for _ in range(n):
        size = r.u(off, 8, "ftrace format size")
        dat.ftrace_formats.append(r.blob(off + 8, size, "ftrace format").decode("utf-8", "replace"))
        off += 8 + size
    off = _event_formats(r, dat, off)
    size = r.u(off, 4, "kallsyms size")
    dat.kallsyms = r.blob(off + 4, size, "kallsyms").decode("utf-8", "replace")
    off += 4 + size
    size = r.u(off, 4, "printk formats size")
    dat.printk = r.blob(off + 4, size, "printk formats").decode("utf-8", "replace")
    off += 4 + size
    size = r.u(off, 8, "saved cmdlines size")
    dat.cmdlines = r.blob(off + 8, size, "saved cmdlines").decode("utf-8", "replace")
    off += 8 + size
    cpus = r.u(off, 4, "cpu count")
    if cpus > 4096:
        raise TraceFormatError(r.path, f"byte {off}", f"implausible CPU count {cpus}")
    dat.cpu_count = cpus
    off += 4
    buf = Buffer("", dat.clock, dat.page_size)
    dat.buffers.append(buf)
    while True:
        r.need(off, 10, "section label")
        label = bytes(r.data[off: off + 10])
        off += 10
        if label == b"options  \0":
            while True:
                opt = r.u(off, 2, "option id")
                off += 2
                if opt == 0:
                    break
                size = r.u(off, 4, "option size")
                _option(r, dat, opt, off + 4, size)
                off += 4 + size
            continue
        if label == b"latency  \0":
            raise TraceFormatError(r.path, f"byte {off}", "latency-tracer trace.dat (ASCII trace inside) is not supported; use trace-cmd report")
        if label != b"flyrecord\0":
            raise TraceFormatError(r.path, f"byte {off - 10}", f"unknown section label {label!r}")
        break
    buf.clock = dat.clock
    for cpu in range(cpus):
        o = r.u(off, 8, "cpu data offset")
        s = r.u(off + 8, 8, "cpu data size")
        off += 16
        buf.cpus.append(CpuData(cpu, o, s))
    for extra in [b for b in dat.buffers[1:]]:
        extra.clock = extra.clock or dat.clock


def _header_info(r: _Reader, dat: DatFile, off: int) -> int:
    name, off = r.cstr(off, "header_page label", 16)
    if name != "header_page":
        raise TraceFormatError(r.path, f"byte {off}", f"expected header_page, found {name!r}")
    size = r.u(off, 8, "header_page size")
    dat.header_page = r.blob(off + 8, size, "header_page").decode("utf-8", "replace")
    off += 8 + size
    name, off = r.cstr(off, "header_event label", 16)
    if name != "header_event":
        raise TraceFormatError(r.path, f"byte {off}", f"expected header_event, found {name!r}")
    size = r.u(off, 8, "header_event size")
    dat.header_event = r.blob(off + 8, size, "header_event").decode("utf-8", "replace")
    return off + 8 + size


def _event_formats(r: _Reader, dat: DatFile, off: int) -> int:
    nsys = r.u(off, 4, "event system count")
    off += 4
    if nsys > 100_000:
        raise TraceFormatError(r.path, f"byte {off - 4}", f"implausible event system count {nsys}")
    for _ in range(nsys):
        system, off = r.cstr(off, "event system name")
        nev = r.u(off, 4, "event count")
        off += 4
        if nev > 1_000_000:
            raise TraceFormatError(r.path, f"byte {off - 4}", f"implausible event count {nev}")
        for _ in range(nev):
            size = r.u(off, 8, "event format size")
            dat.event_formats.append((system, r.blob(off + 8, size, "event format").decode("utf-8", "replace")))
            off += 8 + size
    return off


def _option(r: _Reader, dat: DatFile, opt: int, off: int, size: int) -> int | None:
    """Record an option; returns the next options-section offset for DONE (v7)."""
    r.need(off, size, f"option {opt}")
    if opt == OPT_BUFFER:
        if dat.version == 6:
            boff = r.u(off, 8, "buffer offset")
            name, _ = r.cstr(off + 8, "buffer name")
            dat.options.setdefault("v6_buffers", []).append((name, boff))
            return None
        boff = r.u(off, 8, "buffer section offset")
        name, p = r.cstr(off + 8, "buffer name")
        clock, p = r.cstr(p, "buffer clock")
        psize = r.u(p, 4, "buffer page size")
        ncpu = r.u(p + 4, 4, "buffer cpu count")
        if psize and (psize < 64 or psize > (1 << 24) or psize & (psize - 1)):
            raise TraceFormatError(r.path, f"byte {p}", f"implausible buffer page size {psize}")
        if ncpu > 4096:
            raise TraceFormatError(r.path, f"byte {p + 4}", f"implausible CPU count {ncpu}")
        p += 8
        buf = Buffer(name, clock, psize)
        buf.cpus_section = boff  # type: ignore[attr-defined]
        for _ in range(ncpu):
            buf.cpus.append(CpuData(r.u(p, 4, "cpu id"), r.u(p + 4, 8, "cpu offset"), r.u(p + 12, 8, "cpu size")))
            p += 20
        dat.buffers.append(buf)
    elif opt == OPT_TRACECLOCK:
        text = bytes(r.data[off: off + size]).split(b"\0")[0].decode("utf-8", "replace")
        sel = [w.strip("[]") for w in text.split() if w.startswith("[")]
        dat.clock = sel[0] if sel else text.strip() or dat.clock
    elif opt == OPT_CPUCOUNT:
        dat.cpu_count = r.u(off, 4, "cpu count")
    elif opt == OPT_OFFSET:
        text = bytes(r.data[off: off + size]).split(b"\0")[0].decode("utf-8", "replace").strip()
        try:
            dat.options["offset"] = int(text)
        except ValueError:
            dat.options["offset_text"] = text
    elif opt == OPT_TSC2NSEC:
        mult, shift, offs = r.u(off, 4, "tsc2nsec"), r.u(off + 4, 4, "tsc2nsec"), r.u(off + 8, 8, "tsc2nsec")
        dat.options["tsc2nsec"] = (mult, shift, offs)
    elif opt in (OPT_UNAME, OPT_VERSION, OPT_DATE):
        key = {OPT_UNAME: "uname", OPT_VERSION: "trace_cmd_version", OPT_DATE: "date"}[opt]
        dat.options[key] = bytes(r.data[off: off + size]).split(b"\0")[0].decode("utf-8", "replace")
    elif opt == OPT_CPUSTAT:
        dat.options.setdefault("cpustat", []).append(bytes(r.data[off: off + size]).split(b"\0")[0].decode("utf-8", "replace"))
    elif opt == OPT_TIME_SHIFT:
        dat.options["time_shift"] = True
    elif opt == OPT_DONE and dat.version == 7:
        return r.u(off, 8, "next options offset")
    elif opt in (OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS, OPT_KALLSYMS, OPT_PRINTK, OPT_CMDLINES):
        dat.options.setdefault("sections", {})[opt] = r.u(off, 8, "section offset")
    elif opt == OPT_BUFFER_TEXT:
        dat.options["latency_buffer"] = True
    return None


# ---------------------------------------------------------------- v7

def _parse_v7(r: _Reader, dat: DatFile, off: int) -> None:
    comp, off = r.cstr(off, "compression name", 64)
    _cver, off = r.cstr(off, "compression version", 64)
    dat.compression = comp
    if comp not in ("none", "zstd", "zlib"):
        raise TraceFormatError(r.path, f"byte {off}", f"unsupported compression {comp!r}")
    opts_off = r.u(off, 8, "options offset")
    seen: set[int] = set()
    while opts_off:
        if opts_off in seen:
            raise TraceFormatError(r.path, f"byte {opts_off}", "options sections form a loop")
        seen.add(opts_off)
        body, _ = _section(r, dat, opts_off, expect=0)
        sub = _Reader(r.path, memoryview(body), dat.big_endian)
        p = 0
        nxt = 0
        while p + 6 <= len(body):
            opt = sub.u(p, 2, "option id")
            size = sub.u(p + 2, 4, "option size")
            sub.need(p + 6, size, f"option {opt}")
            res = _option(sub, dat, opt, p + 6, size)
            p += 6 + size
            if opt == OPT_DONE:
                nxt = res or 0
                break
        opts_off = nxt
    secs = dat.options.get("sections", {})
    if OPT_HEADER_INFO in secs:
        body, _ = _section(r, dat, secs[OPT_HEADER_INFO], expect=16)
        _header_info(_Reader(r.path, memoryview(body), dat.big_endian), dat, 0)
    if OPT_FTRACE_EVENTS in secs:
        body, _ = _section(r, dat, secs[OPT_FTRACE_EVENTS], expect=17)
        s = _Reader(r.path, memoryview(body), dat.big_endian)
        n = s.u(0, 4, "ftrace format count")
        p = 4
        for _ in range(n):
            size = s.u(p, 8, "ftrace format size")
            dat.ftrace_formats.append(s.blob(p + 8, size, "ftrace format").decode("utf-8", "replace"))
            p += 8 + size
    if OPT_EVENT_FORMATS in secs:
        body, _ = _section(r, dat, secs[OPT_EVENT_FORMATS], expect=18)
        _event_formats(_Reader(r.path, memoryview(body), dat.big_endian), dat, 0)
    for opt, attr, width in ((OPT_KALLSYMS, "kallsyms", 4), (OPT_PRINTK, "printk", 4), (OPT_CMDLINES, "cmdlines", 8)):
        if opt in secs:
            body, _ = _section(r, dat, secs[opt], expect=opt)
            s = _Reader(r.path, memoryview(body), dat.big_endian)
            size = s.u(0, width, attr)
            setattr(dat, attr, s.blob(width, size, attr).decode("utf-8", "replace"))
    for buf in dat.buffers:
        sec = getattr(buf, "cpus_section", None)
        if sec is not None:
            flags = r.u(sec + 2, 2, "buffer section flags")
            for c in buf.cpus:
                c.compressed = bool(flags & SECTION_COMPRESSED) and dat.compression != "none"


def _section(r: _Reader, dat: DatFile, off: int, expect: int | None) -> tuple[bytes, int]:
    """Body of the v7 section at ``off`` (decompressed when flagged), and its id."""
    sid = r.u(off, 2, "section id")
    flags = r.u(off + 2, 2, "section flags")
    size = r.u(off + 8, 8, "section size")
    if expect is not None and sid != expect:
        raise TraceFormatError(r.path, f"byte {off}", f"expected section {expect}, found {sid}")
    body_off = off + 16
    if size > MAX_META_SECTION:
        raise TraceTooLargeError(r.path, f"byte {off + 8}", f"section {sid} declares {size} bytes: absurd")
    r.need(body_off, size, f"section {sid}")
    if flags & SECTION_COMPRESSED and dat.compression != "none":
        csize = r.u(body_off, 4, "compressed size")
        usize = r.u(body_off + 4, 4, "uncompressed size")
        if csize + 8 > size or usize > MAX_META_SECTION:
            raise TraceTooLargeError(r.path, f"byte {body_off}", f"section {sid}: compressed {csize} / uncompressed {usize} bytes is inconsistent")
        return decompress(r, dat.compression, body_off + 8, csize, usize, f"section {sid}"), sid
    return bytes(r.data[body_off: body_off + size]), sid


def decompress(r: _Reader, kind: str, off: int, csize: int, usize: int, what: str) -> bytes:
    r.need(off, csize, what)
    fn = _decompressor(kind)
    if fn is None:
        raise TraceFormatError(r.path, f"byte {off}", f"{what}: unknown compression {kind!r}")
    try:
        out = fn(r.data[off: off + csize], usize)
    except (zstandard.ZstdError, zlib.error) as exc:
        raise TraceFormatError(r.path, f"byte {off}", f"{what}: {kind} data is corrupt ({exc})") from exc
    if len(out) != usize:
        raise TraceFormatError(r.path, f"byte {off}", f"{what}: decompressed to {len(out)} bytes, header says {usize}")
    return out


def flyrecord_chunks(r: _Reader, kind: str, off: int, size: int, path: str) -> list[tuple[int, int, int]]:
    """(offset, csize, usize) of each compressed chunk of one CPU's v7 data."""
    count = r.u(off, 4, "chunk count")
    if count > size // 8 + 1:
        raise TraceFormatError(path, f"byte {off}", f"chunk count {count} does not fit in {size} bytes")
    p = off + 4
    chunks = []
    for _ in range(count):
        csize = r.u(p, 4, "chunk size")
        usize = r.u(p + 4, 4, "chunk uncompressed size")
        if usize > MAX_CHUNK or csize > size:
            raise TraceTooLargeError(path, f"byte {p}", f"chunk declares {csize} -> {usize} bytes: absurd")
        r.need(p + 8, csize, "compressed chunk")
        chunks.append((p + 8, csize, usize))
        p += 8 + csize
    return chunks
