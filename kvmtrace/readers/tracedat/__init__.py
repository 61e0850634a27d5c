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
from ...uname import parse as parse_release
from ..flags import FLAG_COLUMNS, masked
from . import header as hdr
from .formats import EventFormat, Field, FormatTable, header_page_layout
from .records import RecordStore
from .ringbuf import Records, page_damage, walk
from .symbols import Symbols, cmdlines, printk_strings
from ..select import Selection

# common_flags bits (kernel/trace/trace.h)
IRQS_OFF, IRQS_NOSUPPORT, NEED_RESCHED, HARDIRQ, SOFTIRQ, PREEMPT_RESCHED, NMI, BH_OFF = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)


class BinarySource:
    """What typed decoding of binary records needs: formats, symbols and the records.

    kallsyms and printk formats are parsed on first use: most loads never need them.
    """

    def __init__(self, formats: Mapping[int, EventFormat], store: RecordStore, type_id: np.ndarray,
                 dat: hdr.DatFile, seq: np.ndarray | None = None) -> None:
        self.seq = seq  # a selective read: the seq of each kept record (sorted); else seq is the row
        self.formats = formats
        self.store = store
        self.type_id = type_id
        self._kallsyms, self._printk_text = dat.kallsyms, dat.printk
        self._symbols: Symbols | None = None
        self._printk: dict[int, str] | None = None

    def seq_of(self, name: str) -> np.ndarray:
        """The seq numbers of event ``name``'s records, in table order."""
        ids = [i for i, fmt in self.formats.items() if fmt.name == name]
        rows = np.flatnonzero(np.isin(self.type_id, ids)) if ids else np.zeros(0, np.int64)
        return rows if self.seq is None else self.seq[rows]

    def rows(self, seq: np.ndarray) -> np.ndarray:
        """Record rows of events ``seq``."""
        seq = np.asarray(seq, dtype=np.int64)
        return seq if self.seq is None else np.searchsorted(self.seq, seq)

    @property
    def symbols(self) -> Symbols:
        if self._symbols is None:
            self._symbols = Symbols(self._kallsyms)
        return self._symbols

    @property
    def stext(self) -> int:
        return self.symbols.address("_stext") or 0

    @property
    def printk(self) -> dict[int, str]:
        if self._printk is None:
            self._printk = printk_strings(self._printk_text)
        return self._printk


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


def _bh_flag_known(uname: str | None) -> bool:
    release = parse_release(uname)
    return release is not None and release.version >= (5, 18)


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` by counting when the values are small non-negative
    integers (event ids, pids): one pass instead of a sort of every record."""
    if not len(values) or values.min() < 0 or values.max() >= 1 << 23:
        return np.unique(values, return_inverse=True)
    present = np.flatnonzero(np.bincount(values))
    code = np.zeros(int(present[-1]) + 1, np.int32)  # int32: the inverse is one per record
    code[present] = np.arange(len(present))
    return present.astype(values.dtype), code[values]


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
        return np.isin(one.number(np.arange(len(recs.ts)), self.common["common_type"], signed=False), self.keep_ids)


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
    got = numbered(o, RecordStore(bufs, bid, off, length, dat.big_endian), ts_ns, cpu, bufidx, seq)
    del bufs, bid, off, length, ts_ns, cpu, bufidx, seq  # ``got`` holds them alone
    source: BinarySource | None = got.source(o)
    fields: dict[str, pd.DataFrame] = {}
    if decode is not None:  # the fields read now, and the pages let go before the table is built
        fields = decode(source)  # type: ignore[arg-type]
        source = got.store = None
    events = table(o, got)
    cpu = got.cpu
    del got  # its flag bytes and type ids (the source keeps those it needs)
    add_gaps(o, gaps)
    meta.events = len(events)
    meta.lines = len(events)
    meta.cpus = dat.cpu_count or (int(cpu.max()) + 1 if len(cpu) else None)
    return events, meta, source, fields


def layout_damage(meta: TraceMeta, fmts: list[EventFormat], code: np.ndarray, length: np.ndarray, seq: np.ndarray,
                  cpu: np.ndarray) -> None:
    """Records whose format is impossible, or too short for its fields, are damage (counted, with
    the reason): what their fields say is unknown."""
    extent = np.array([max((f.offset + f.size for f in fm.fields.values()), default=0) for fm in fmts] + [0], np.int64)
    broken = np.array([fm.damaged is not None for fm in fmts] + [False])
    # a format without dynamic fields makes records of one size: the struct, aligned to 8 at most;
    # a longer record swallowed what followed it (a damaged event header)
    fixed = np.array([not any(f.data_loc or f.rel_loc or not f.size for f in fm.fields.values()) for fm in fmts] + [False])
    longest = np.where(fixed, (extent + 7) // 8 * 8, np.iinfo(np.int32).max)
    # one int32 per record at a time: these compares run over every record of the file
    bad = length < np.minimum(extent, np.iinfo(np.int32).max).astype(np.int32)[code]
    bad |= length > np.minimum(longest, np.iinfo(np.int32).max).astype(np.int32)[code]
    bad |= broken[code]
    if not bad.any():
        return
    for k in np.unique(code[bad]):
        fm = fmts[int(k)]
        n = int((bad & (code == k)).sum())
        why = f"its format is damaged: {fm.damaged}" if fm.damaged else \
            f"shorter or longer than its fields' {int(extent[k])} bytes (a damaged event header)"
        meta.warnings.append(f"{n:,} {fm.name} records are damage: {why}")
    damaged(meta, seq[bad], cpu[bad])


def damaged(meta: TraceMeta, seq: np.ndarray, cpu: np.ndarray) -> None:
    """Records the reader found damaged (misplaced pages, clashing CPUs, unknown or impossible formats)
    go into ``meta.damaged`` on their CPU: findings spanning one are not proven."""
    meta.damaged.extend([int(q), int(c)] for q, c in zip(seq, cpu))


def add_gaps(o: Opened, gaps: list[tuple[int, int, int | None]]) -> None:
    """Lost events per page → per CPU in ``meta``, with the gap's time."""
    meta = o.meta
    for c, count, raw_ts in gaps:
        meta.lost_markers += 1
        meta.lost[c] = meta.lost.get(c, 0) + max(count, 0)
        meta.lost_gaps.append({"cpu": c, "ts": None if raw_ts is None else int(to_ns(np.array([raw_ts], np.uint64), o.dat)[0]),
                               "count": count if count >= 0 else None})


@dataclass
class Numbered:
    """The records of a read in merged order, their common fields read, those of unknown ids dropped."""

    store: RecordStore | None
    ts_ns: np.ndarray
    cpu: np.ndarray
    bufidx: np.ndarray
    seq: np.ndarray
    type_id: np.ndarray
    flags: np.ndarray
    pc: np.ndarray
    pid: np.ndarray
    types: np.ndarray   # the type ids present
    type_code: np.ndarray  # each record's index into ``types``

    def source(self, o: Opened) -> BinarySource:
        contiguous = not len(self.seq) or int(self.seq[-1]) == len(self.seq) - 1  # seq is the row unless records were left out
        return BinarySource(o.formats, self.store, self.type_id, o.dat, None if contiguous else self.seq)  # type: ignore[arg-type]


def numbered(o: Opened, store: RecordStore, ts_ns: np.ndarray, cpu: np.ndarray, bufidx: np.ndarray, seq: np.ndarray
             ) -> Numbered:
    """The records in ``store`` (merged order) with their common fields; records with ids the file
    has no format for are counted and dropped, those whose layout cannot be their format's are damage."""
    dat, meta, formats, cf = o.dat, o.meta, o.formats, o.common
    head = store.common(max(f.offset + f.size for f in cf.values() if f.name.startswith("common_")))
    type_id = _column(head, cf["common_type"], dat.endian + "u").astype(np.int32)
    flags = _column(head, cf["common_flags"], dat.endian + "u").astype(np.uint8, copy=False)
    pc = _column(head, cf["common_preempt_count"], dat.endian + "u").astype(np.uint8, copy=False)
    pid = _column(head, cf["common_pid"], dat.endian + "i").astype(np.int32)
    del head
    known = np.isin(type_id, np.fromiter(formats.keys(), dtype=np.int64))
    if (~known).any():
        meta.skip("unknown-event-id", int((~known).sum()))
        meta.warnings.append(f"{int((~known).sum())} records have event ids missing from the file's formats; skipped")
        damaged(meta, seq[~known], cpu[~known])  # an event there is unknown: findings spanning one are not proven
        keep = known
        ts_ns, cpu, bufidx, seq = ts_ns[keep], cpu[keep], bufidx[keep], seq[keep]
        type_id, flags, pc, pid = type_id[keep], flags[keep], pc[keep], pid[keep]
        store = RecordStore(store.bufs, store.buf_id[keep], store.offset[keep], store.length[keep], dat.big_endian)
    types, type_code = _unique(type_id)
    layout_damage(meta, [formats[int(t)] for t in types], type_code, store.length, seq, cpu)
    return Numbered(store, ts_ns, cpu, bufidx, seq, type_id, flags, pc, pid, types, type_code)


def table(o: Opened, got: Numbered) -> pd.DataFrame:
    """The events table of ``got``'s records (its arrays become the table's columns)."""
    dat, meta, formats = o.dat, o.meta, o.formats
    ts_ns, cpu, bufidx, seq, flags, pc, pid = got.ts_ns, got.cpu, got.bufidx, got.seq, got.flags, got.pc, got.pid
    uniq_t, tinv = got.types, got.type_code
    n = len(ts_ns)
    comms = cmdlines(dat.cmdlines)
    comms.setdefault(0, "<idle>")
    uniq_pid, inv = _unique(pid)
    pid_names = np.asarray([comms.get(int(p), "<...>") for p in uniq_pid], dtype=object)
    uniq_names, name_code = np.unique(pid_names, return_inverse=True) if n else (np.zeros(0, object), np.zeros(0, int))
    comm = pd.Categorical.from_codes(name_code.astype(np.int32)[inv], categories=pd.Index(uniq_names, dtype=object)) \
        if n else pd.Categorical([])
    event = _categorical([formats.names[int(t)][0] for t in uniq_t], tinv)
    system = _categorical([formats.names[int(t)][1] for t in uniq_t], tinv)
    data: dict[str, object] = {
        "ts": ts_ns, "seq": seq, "cpu": cpu, "pid": pid,
        "tgid": pd.arrays.IntegerArray(np.zeros(n, np.int32), np.ones(n, bool)),
        "comm": comm, "event": event, "system": system,
    }
    nosup = (flags & IRQS_NOSUPPORT) != 0
    yes = np.ones(n, bool)
    # built one column at a time so only one set of temporaries exists at once
    cols = {
        "irqs_off": lambda: ((flags & IRQS_OFF) != 0, ~nosup),
        # TRACE_FLAG_BH_OFF (0x80) exists from 5.18 (289e7b0f7eb47), as the kernel's text shows it ('D',
        # 'b'); before, the bit meant nothing: known only where the UNAME says 5.18 or later
        "bh_off": lambda: ((flags & BH_OFF) != 0, np.full(n, _bh_flag_known(meta.kernel.get("uname")))),
        "need_resched": lambda: ((flags & NEED_RESCHED) != 0, yes),
        "hardirq": lambda: ((flags & HARDIRQ) != 0, yes),
        "softirq": lambda: ((flags & SOFTIRQ) != 0, yes),
        "nmi": lambda: ((flags & NMI) != 0, yes),
        "preempt_depth": lambda: (pc & 0xF, yes),
        "migrate_disable": lambda: ((pc >> 4) & 0xF, yes),
    }
    for name in FLAG_COLUMNS:
        data[name] = masked(name, *cols[name]())
    del flags, pc, nosup
    # no ``payload`` or ``line`` columns: the payload is rendered on request
    # (Trace.payload) and ``seq`` is already the record's position
    if len(dat.buffers) > 1:
        data["buffer"] = pd.Categorical(np.asarray([b.name for b in dat.buffers], dtype=object)[bufidx],
                                        categories=sorted({b.name for b in dat.buffers}))
    return pd.DataFrame(data, copy=False)



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


def _column(head: np.ndarray, f: Field, kind: str) -> np.ndarray:
    """One common field out of the (records, bytes) matrix of record heads."""
    return head[:, f.offset: f.offset + f.size].copy().view(kind + str(f.size)).ravel()


def _categorical(names: list[str], codes: np.ndarray) -> pd.Categorical:
    """Categorical of ``names[codes]`` without materialising one string per row."""
    uniq, remap = np.unique(np.asarray(names, dtype=object), return_inverse=True) if names else (np.zeros(0, object), np.zeros(0, int))
    return pd.Categorical.from_codes(remap.astype(np.int32)[codes] if len(codes) else np.zeros(0, np.int32),
                                     categories=pd.Index(uniq, dtype=object))


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
