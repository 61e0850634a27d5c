"""Native trace.dat (v6, v7 with zstd/zlib) reader → the same events table as the text readers.

Record headers and common fields are decoded columnarly with numpy; the typed
per-event fields are decoded later, on request, from the kept record buffers
(``BinarySource``); the printable payload is never rendered unless asked for.
"""
from __future__ import annotations

import mmap
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ... import progress
from ...errors import TraceError, TraceFormatError
from ...meta import TraceMeta
from . import header as hdr
from .events import damaged, numbered, table
from .formats import Field, FormatTable, header_page_layout
from .records import RecordStore, of_ids
from .ringbuf import Records, page_damage, walk
from .source import BinarySource
from ..select import Selection

__all__ = ["BinarySource", "Decode", "Opened", "decoded_fields", "open_dat", "read_dat", "to_ns"]


def cpu_present(o: Opened, c: hdr.CpuData) -> int:
    """Bytes of an uncompressed CPU's data that the file holds; a truncation is counted."""
    avail = max(0, min(c.size, len(o.mm) - c.offset))
    if avail < c.size:
        o.meta.warnings.append(f"CPU {c.cpu} data truncated: {avail} of {c.size} bytes present")
        o.meta.skip("truncated-cpu-data", 1)
        o.cut_cpus.add(c.cpu)
    return avail


def cpu_chunks(o: Opened, c: hdr.CpuData) -> list[tuple[int, int, int]]:
    """(offset, csize, usize) of a compressed CPU's chunks; none, with the damage counted, when the
    list is broken or declares more than ``MAX_RATIO`` times the CPU's bytes (a likely bomb). Chunks
    that end short of the CPU's section (a damaged count) are counted and the CPU's end is lost."""
    meta = o.meta
    if c.size == 0:
        return []
    try:
        chunks = hdr.flyrecord_chunks(o.r, o.dat.compression, c.offset, c.size, o.dat.path)
    except TraceError as exc:  # malformed or absurd: that CPU's data is lost, the others are read
        meta.warnings.append(f"CPU {c.cpu}: {exc.message}; no data read for it")
        meta.skip("corrupt-cpu-data", 1)
        return []
    declared = sum(u for _o, _c, u in chunks)
    if declared > max(c.size, 1) * hdr.MAX_RATIO:
        meta.warnings.append(f"CPU {c.cpu}: chunks declare {declared:,} bytes from {c.size:,} (a likely decompression bomb); no data read for it")
        meta.skip("corrupt-cpu-data", 1)
        return []
    # trace-cmd's size leaves out the 4-byte chunk count (ours counts it): the chunks end at +4 or +0
    end = (chunks[-1][0] + chunks[-1][1] if chunks else c.offset + 4) - 4
    if end > c.offset + c.size:
        meta.warnings.append(f"CPU {c.cpu}: its chunks run {end - c.offset - c.size:,} bytes past the size the CPU table "
                             "gives (a damaged size)")
        meta.skip("cpu-size-mismatch", 1)
    elif c.offset + c.size - end >= 8:  # room for another chunk's header: the count was cut
        meta.warnings.append(f"CPU {c.cpu}: {c.offset + c.size - end:,} bytes after its last chunk are not read "
                             "(a damaged chunk count); events at its end are lost")
        meta.skip("unread-chunks", 1)
        o.cut_cpus.add(c.cpu)
    return chunks


def decompressed(o: Opened, c: hdr.CpuData, chunks: list[tuple[int, int, int]]) -> Iterator[tuple[np.ndarray, int]]:
    """Each chunk's data and compressed size, in order, up to the first that does not decompress
    (counted; later chunks are skipped, and the CPU's end is lost)."""
    for off, csize, usize in chunks:
        try:
            yield np.frombuffer(hdr.decompress(o.r, o.dat.compression, off, csize, usize, f"CPU {c.cpu} chunk"), np.uint8), csize
        except TraceFormatError as exc:
            o.meta.warnings.append(f"CPU {c.cpu}: {exc.message} at byte {off}; later chunks skipped")
            o.meta.skip("corrupt-chunk", 1)
            o.cut_cpus.add(c.cpu)
            return


def _cpu_bytes(o: Opened, c: hdr.CpuData) -> np.ndarray:
    if c.size == 0:
        return np.zeros(0, np.uint8)
    if not c.compressed:
        avail = cpu_present(o, c)
        return np.frombuffer(o.mm, dtype=np.uint8, count=avail, offset=c.offset) if avail else np.zeros(0, np.uint8)
    chunks = cpu_chunks(o, c)
    # decompress chunk by chunk into one preallocated buffer: one chunk in flight, not two copies
    out = np.empty(sum(u for _o, _c, u in chunks), dtype=np.uint8)
    pos = 0
    for got, _csize in decompressed(o, c, chunks):
        out[pos: pos + len(got)] = got
        pos += len(got)
    return out[:pos]


@dataclass
class Opened:
    """A mapped trace.dat with its header parsed: what reading its records needs."""

    path: str
    mm: mmap.mmap
    dat: hdr.DatFile
    r: hdr._Reader
    meta: TraceMeta
    formats: FormatTable
    common: Mapping[str, Field]          # the common_* fields
    ring: tuple[int, int, int]           # header_page: commit offset, commit size, data offset
    keep_ids: np.ndarray | None          # a selective read: the event ids kept
    suspect_cpus: frozenset[int] = frozenset()  # CPUs whose table entries clash: every record is damage
    #: CPUs whose data stops short (a cut size, a truncated file, a bad chunk): their end is lost
    cut_cpus: set[int] = field(default_factory=set)

    def walk(self, data: np.ndarray, page: int) -> Records:
        return walk(data, page, *self.ring, self.dat.big_endian)

    def kept(self, data: np.ndarray, recs: Records) -> np.ndarray:
        """Which of ``recs`` (records in ``data``) a selective read keeps (all without one)."""
        if self.keep_ids is None:
            return np.ones(len(recs.ts), bool)
        one = RecordStore([data], np.zeros(len(recs.ts), np.uint16), recs.offset, recs.length, self.dat.big_endian)
        return of_ids(one.number(np.arange(len(recs.ts)), self.common["common_type"], signed=False), self.keep_ids)


def open_dat(path: str, compression: str | None, select: Selection | None) -> Opened:
    """Map ``path`` and parse everything before the records: options, formats, ring-buffer layout."""
    if compression:
        raise TraceFormatError(path, "byte 0", f"{compression}-compressed trace.dat: decompress it first")
    with open(path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:  # empty, or larger than the address space allowed
            raise TraceFormatError(path, None, f"cannot map file: {exc}") from exc
    view = memoryview(mm)
    dat = hdr.parse(path, view)
    r = hdr._Reader(path, view, dat.big_endian)
    meta = TraceMeta(path=path, source_format=f"trace.dat-v{dat.version}",
                     compression=None if dat.compression == "none" else dat.compression)
    meta.kernel.update({k: v for k, v in dat.options.items() if k in ("uname", "trace_cmd_version", "offset")})
    meta.kernel["long_size"] = dat.long_size
    meta.kernel["payload"] = "lazy"
    formats = FormatTable([("ftrace", text) for text in dat.ftrace_formats] + list(dat.event_formats))
    hp = header_page_layout(dat.header_page)
    commit_off, commit_size = hp.get("commit", (8, dat.long_size))
    data_off = hp.get("data", (16, 0))[0]
    page = min([dat.page_size] + [b.page_size for b in dat.buffers if b.page_size])
    if commit_size not in (4, 8) or commit_off % 4 or not 8 <= commit_off <= page - commit_size \
            or not commit_off + commit_size <= data_off < page:
        raise TraceFormatError(path, "header_page", f"commit at {commit_off} ({commit_size} bytes), data at {data_off}: "
                               f"not a ring-buffer page of {page} bytes (damaged header)")
    bad_cpu = [c.cpu for b in dat.buffers for c in b.cpus if c.cpu >= 1 << 16]
    if bad_cpu:
        raise TraceFormatError(path, "CPU list", f"CPU id {bad_cpu[0]} is not a CPU (damaged header)")
    needed = ("common_type", "common_flags", "common_preempt_count", "common_pid")
    common = next((f for f in (formats[i] for i in formats) if all(n in f.fields for n in needed)), None)
    if common is None:
        raise TraceFormatError(path, "event formats", "no format declares the common fields "
                               f"{', '.join(needed)}" + (" (damaged format section)" if formats else ""))
    keep_ids = np.array(sorted(i for i, (name, _) in formats.names.items() if name in select.events), np.int64) \
        if select is not None and select.events is not None else None
    meta.clock = dat.clock
    meta.flag_width = 5
    meta.ts_resolution_ns = 1
    suspect, cut = cpu_table(dat, len(mm), meta)
    return Opened(path, mm, dat, r, meta, formats, common.fields, (commit_off, commit_size, data_off), keep_ids,
                  suspect, cut)


def cpu_table(dat: hdr.DatFile, file_size: int, meta: TraceMeta) -> tuple[frozenset[int], set[int]]:
    """(CPUs whose entries clash, CPUs whose data stops short) by the CPU table, counted.

    trace-cmd writes a buffer's CPUs' data back to back in CPU order, each (v7) aligned to a page,
    and a v6 file ends with the last CPU's data. So two entries naming one CPU, or ranges that
    overlap, are damage, and bytes after a CPU's data that no entry covers mean its size was cut.
    """
    suspect: set[int] = set()
    cut: set[int] = set()
    for buf in dat.buffers:
        page = buf.page_size or dat.page_size
        suspect |= {i for i, n in Counter(c.cpu for c in buf.cpus).items() if n > 1}
        placed = sorted(buf.cpus, key=lambda c: (c.offset, c.size))  # a CPU without data sits where the next begins
        for a, b in zip(placed, placed[1:]):
            if b.offset < a.offset + a.size:
                suspect |= {a.cpu, b.cpu}
            elif b.offset - (a.offset + a.size) >= page:
                cut.add(a.cpu)
        placed = [c for c in placed if c.size]
        if dat.version == 6 and len(dat.buffers) == 1 and placed and file_size - (placed[-1].offset + placed[-1].size) >= page:
            cut.add(placed[-1].cpu)
    if suspect:
        meta.warnings.append(f"CPU table: entries of CPUs {', '.join(map(str, sorted(suspect)))} name one CPU twice or "
                             "overlap (damaged header); their events are damage")
        meta.skip("cpu-table-clash", len(suspect))
    if cut:
        meta.warnings.append(f"CPU table: data after CPUs {', '.join(map(str, sorted(cut)))} belongs to no CPU "
                             "(a damaged size); events at their end are lost")
        meta.skip("cpu-table-cut", len(cut))
    return frozenset(suspect), cut


def page_records(o: Opened, cpu: int, data: np.ndarray, page: int, gaps: list[tuple[int, int, int | None]],
                 before: int | None = None) -> Records:
    """The records of whole pages ``data`` of ``cpu``; partial, corrupt, empty and misplaced pages
    counted, lost-event gaps (cpu, count, raw ts of the record before) appended to ``gaps``, and the
    records of misplaced pages marked ``suspect``. ``before``: the CPU's last raw time before ``data``."""
    meta = o.meta
    if len(data) % page:
        meta.warnings.append(f"CPU {cpu}: {len(data) % page} trailing bytes are not a whole page")
        meta.skip("partial-page", 1)
    recs = o.walk(data, page)
    if recs.corrupt_pages:
        meta.warnings.append(f"CPU {cpu}: {recs.corrupt_pages} pages with a broken event chain (corrupt data); their remaining events are skipped")
        meta.skip("corrupt-page", recs.corrupt_pages)
    empty, misplaced = page_damage(recs, len(data) // page, before)
    if len(empty):
        meta.warnings.append(f"CPU {cpu}: {len(empty)} pages hold no event (zeroed or cut data); events there are lost")
        meta.skip("empty-page", len(empty))
    if len(misplaced):
        meta.warnings.append(f"CPU {cpu}: {len(misplaced)} pages are out of time order (misplaced, copied or "
                             "re-stamped data); their events are damage")
        meta.skip("misplaced-page", len(misplaced))
    recs.suspect = np.full(len(recs.ts), True) if cpu in o.suspect_cpus else np.isin(recs.page, misplaced)

    def gap(k: int, count: int) -> None:  # events lost after record k - 1 (the page's last before)
        gaps.append((cpu, count, int(recs.ts[k - 1]) if k > 0 else before))

    for pg in np.flatnonzero(recs.lost != 0):  # where events were lost: after the last record before that page
        gap(int(np.searchsorted(recs.page, pg)), int(recs.lost[pg]))
    for pg in recs.broken:  # a broken chain loses the rest of its page: a gap of unknown size after its last record
        gap(int(np.searchsorted(recs.page, pg, side="right")), -1)
    for pg in np.r_[empty, misplaced]:  # what an empty or misplaced page held is unknown
        gap(int(np.searchsorted(recs.page, pg)), -1)
    return recs


#: fields decoded from the records while reading (``read_dat``'s ``decode``): event → seq + columns
Decode = Callable[[BinarySource], dict[str, pd.DataFrame]]


def decoded_fields(source: BinarySource, want: Mapping[str, tuple[str, ...]],
                   decoder: Callable[[str, np.ndarray, BinarySource, tuple[str, ...]], pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The fields ``want`` names (event → columns) of the events ``source`` holds, by ``decoder``
    (the layer above's): event → seq + columns, in table order."""
    out = {}
    for name, columns in want.items():
        seq = source.seq_of(name)
        if len(seq):
            got = decoder(name, seq, source, tuple(columns))
            got.insert(0, "seq", seq)
            out[name] = got
    return out


def read_dat(path: str, compression: str | None = None, select: Selection | None = None, decode: Decode | None = None
             ) -> tuple[pd.DataFrame, TraceMeta, BinarySource | None, dict[str, pd.DataFrame]]:
    """Read a trace.dat file: (events table, meta, BinarySource, fields decoded while reading).

    With ``select``, each CPU's records of other event types are dropped as soon as
    that CPU is read and the kept records' bytes are copied into a compact buffer,
    so memory follows the kept events (plus 8 bytes per record for numbering).
    With ``decode``, the fields it reads are decoded as soon as the records are numbered, and the
    records go before the rest of the table is built (no BinarySource is returned: a field
    wanted later is read from the file again): the decompressed pages and the table are never
    in memory together.
    """
    o = open_dat(path, compression, select)
    dat, meta = o.dat, o.meta
    bufs: list[np.ndarray] = []
    pieces: list[tuple[int, int, int, Records | _Kept]] = []
    gaps: list[tuple[int, int, int | None]] = []
    suspect: list[np.ndarray] = []      # per record: in a misplaced page
    all_ts: list[np.ndarray] = []       # selective: every record's time, to number kept ones as a full read
    kept_at: list[np.ndarray] = []      # selective: index of each kept record within its CPU
    total_cpus = max(sum(len(b.cpus) for b in dat.buffers), 1)
    for b_index, buf in enumerate(dat.buffers):
        for c in buf.cpus:
            progress.step(f"reading {os.path.basename(path)}", len(pieces) / total_cpus)
            data = _cpu_bytes(o, c)
            recs = page_records(o, c.cpu, data, buf.page_size or dat.page_size, gaps)
            if c.cpu in o.cut_cpus:  # what followed its last record is lost
                gaps.append((c.cpu, -1, int(recs.ts[-1]) if len(recs.ts) else None))
            piece: Records | _Kept = recs
            suspect.append(recs.suspect)
            if o.keep_ids is not None:
                m = o.kept(data, recs)
                suspect[-1] = suspect[-1][m]
                meta.not_kept += int((~m).sum())
                all_ts.append(recs.ts)
                kept_at.append(np.flatnonzero(m))
                data, new_off = _compact(data, recs.offset[m], recs.length[m])
                piece = _Kept(recs.ts[m], new_off, recs.length[m])
            bufs.append(data)
            pieces.append((b_index, c.cpu, len(bufs) - 1, piece))
    ts = np.concatenate([p[3].ts for p in pieces]) if pieces else np.zeros(0, np.uint64)
    cpu = np.concatenate([np.full(len(p[3].ts), p[1], np.int32) for p in pieces]) if pieces else np.zeros(0, np.int32)
    bid = np.concatenate([np.full(len(p[3].ts), p[2], np.uint16) for p in pieces]) if pieces else np.zeros(0, np.uint16)
    bufidx = np.concatenate([np.full(len(p[3].ts), p[0], np.uint16) for p in pieces]) if pieces else np.zeros(0, np.uint16)
    # offsets index one CPU's buffer: 4 bytes each unless a buffer passes 4 GiB
    off_type = np.uint32 if all(len(b) < 2**32 for b in bufs) else np.int64
    off = np.concatenate([p[3].offset.astype(off_type) for p in pieces]) if pieces else np.zeros(0, off_type)
    length = np.concatenate([p[3].length for p in pieces]) if pieces else np.zeros(0, np.int32)
    del pieces
    recs = piece = data = None  # type: ignore[assignment]  # the loop's last CPU (if any): its arrays go before the merge
    ts_ns = to_ns(ts, dat)
    del ts  # (a view of it, when no offset applies: it goes with the merge's copy below)
    # trace-cmd merges CPUs earliest first, the lower CPU on ties; pieces are in CPU order and
    # each is time-ordered, so a stable sort (a run merge) gives exactly that order
    seq_of = None
    if o.keep_ids is not None:  # the kept records' positions in that merge of every record
        rank = np.empty(sum(len(t) for t in all_ts), np.int64)
        rank[np.argsort(to_ns(np.concatenate(all_ts) if all_ts else np.zeros(0, np.uint64), dat), kind="stable")] = \
            np.arange(len(rank))
        starts = np.cumsum([0] + [len(t) for t in all_ts[:-1]])
        seq_of = rank[np.concatenate([k + s for k, s in zip(kept_at, starts)]) if kept_at else np.zeros(0, np.int64)]
        del rank, all_ts, kept_at
        order = np.argsort(seq_of, kind="stable")
        seq_of = seq_of[order]
    else:
        order = np.argsort(ts_ns, kind="stable")
    # permute one column at a time so only one extra copy exists at once
    ts_ns = ts_ns[order]
    cpu = cpu[order]
    bid = bid[order]
    bufidx = bufidx[order]
    off = off[order]
    length = length[order]
    bad = np.concatenate(suspect)[order] if any(s.any() for s in suspect) else None
    del order, suspect
    seq = seq_of if seq_of is not None else np.arange(len(ts_ns), dtype=np.int64)
    if bad is not None:
        damaged(meta, seq[bad], cpu[bad])
    got = numbered(dat, meta, o.formats, o.common, RecordStore(bufs, bid, off, length, dat.big_endian), ts_ns, cpu,
                   bufidx, seq)
    del bufs, bid, off, length, ts_ns, cpu, bufidx, seq  # ``got`` holds them alone
    source: BinarySource | None = got.source()
    fields: dict[str, pd.DataFrame] = {}
    if decode is not None:  # the fields read now, and the pages let go before the table is built
        fields = decode(source)  # type: ignore[arg-type]
        source = got.store = None
    events = table(got, meta)
    cpu = got.cpu
    del got  # its flag bytes and type ids (the source keeps those it needs)
    add_gaps(o, gaps)
    meta.events = len(events)
    meta.lines = len(events)
    meta.cpus = dat.cpu_count or (int(cpu.max()) + 1 if len(cpu) else None)
    return events, meta, source, fields


def add_gaps(o: Opened, gaps: list[tuple[int, int, int | None]]) -> None:
    """Lost events per page → per CPU in ``meta``, with the gap's time."""
    meta = o.meta
    for c, count, raw_ts in gaps:
        meta.lost_markers += 1
        meta.lost[c] = meta.lost.get(c, 0) + max(count, 0)
        meta.lost_gaps.append({"cpu": c, "ts": None if raw_ts is None else int(to_ns(np.array([raw_ts], np.uint64), o.dat)[0]),
                               "count": count if count >= 0 else None})


@dataclass
class _Kept:
    """The kept records of one CPU, offsets into its compact buffer."""

    ts: np.ndarray
    offset: np.ndarray
    length: np.ndarray


def _compact(data: np.ndarray, off: np.ndarray, length: np.ndarray, batch: int = 1 << 16
             ) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of the given records copied end to end, and their new offsets."""
    length = length.astype(np.int64)
    new_off = np.zeros(len(off), np.int64)
    np.cumsum(length[:-1], out=new_off[1:])
    out = np.empty(int(length.sum()), np.uint8)
    for i in range(0, len(off), batch):  # bounded index arrays: one batch of records at a time
        o, ln, n0 = off[i:i + batch].astype(np.int64), length[i:i + batch], new_off[i:i + batch]
        total = int(ln.sum())
        if total:
            src = np.repeat(o - n0, ln) + np.arange(n0[0], n0[0] + total)
            out[n0[0]: n0[0] + total] = data[np.minimum(src, len(data) - 1)]
    return out, new_off


def to_ns(ts: np.ndarray, dat: hdr.DatFile) -> np.ndarray:
    """Raw ring-buffer clock → ns: TSC2NSEC for counter clocks, then the file's OFFSET.
    Options that would carry a time past 64 bits are damage: a one-line error naming them."""
    out = ts.astype(np.uint64, copy=False)
    t2n = dat.options.get("tsc2nsec")
    offset = dat.options.get("offset")
    top = int(out.max()) if len(out) else 0
    if t2n and dat.clock in ("x86-tsc", "tsc", "counter"):
        mult, shift, offs = t2n
        if shift > 63 or ((top * mult) >> shift) + offs >= 1 << 63 or offs < 0:
            raise TraceFormatError(dat.path, "option TSC2NSEC", f"multiplier {mult}, shift {shift}, offset {offs} "
                                   "take the trace's times past 64 bits: damaged option")
        top = ((top * mult) >> shift) + offs
    if isinstance(offset, int) and not -(1 << 62) < offset < 1 << 62 or isinstance(offset, int) and top + offset >= 1 << 63:
        raise TraceFormatError(dat.path, "option OFFSET", f"offset {offset} takes the trace's times past 64 bits: damaged option")
    if t2n and dat.clock in ("x86-tsc", "tsc", "counter"):
        out = ((out.astype(object) * mult) >> shift).astype(np.uint64) + np.uint64(offs)
    offset = dat.options.get("offset")
    if isinstance(offset, int) and offset:
        return out.view(np.int64) + offset  # one new array; the checks above keep it within 63 bits
    return out.view(np.int64)  # the times as they are: below 2^63, checked above
