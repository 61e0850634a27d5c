"""trace.dat records in merged order → the events table: their common fields read, records of
unknown ids dropped, impossible layouts made damage, the flag columns built."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...meta import TraceMeta
from ...uname import parse as parse_release
from ..flags import FLAG_COLUMNS, masked
from . import header as hdr
from .formats import EventFormat, Field, FormatTable
from .records import RecordStore, of_ids
from .source import BinarySource, SharedSymbols
from .symbols import cmdlines

# common_flags bits (kernel/trace/trace.h)
IRQS_OFF, IRQS_NOSUPPORT, NEED_RESCHED, HARDIRQ, SOFTIRQ, PREEMPT_RESCHED, NMI, BH_OFF = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)


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


@dataclass
class Numbered:
    """The records of a read in merged order, their common fields read, those of unknown ids dropped."""

    dat: hdr.DatFile
    formats: FormatTable
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

    def source(self, symbols: SharedSymbols | None = None) -> BinarySource:
        """The records as a ``BinarySource`` (while ``store`` holds them), with ``symbols`` parsed
        once for several (a stream's windows)."""
        contiguous = not len(self.seq) or int(self.seq[-1]) == len(self.seq) - 1  # seq is the row unless records were left out
        return BinarySource(self.formats, self.store, self.type_id, self.dat, None if contiguous else self.seq,  # type: ignore[arg-type]  # store is set while records are held
                            symbols)


def numbered(dat: hdr.DatFile, meta: TraceMeta, formats: FormatTable, cf: Mapping[str, Field], store: RecordStore,
             ts_ns: np.ndarray, cpu: np.ndarray, bufidx: np.ndarray, seq: np.ndarray) -> Numbered:
    """The records in ``store`` (merged order) with their common fields; records with ids the file
    has no format for are counted and dropped, those whose layout cannot be their format's are damage.
    ``cf``: the common fields' layout."""
    head = store.common(max(f.offset + f.size for f in cf.values() if f.name.startswith("common_")))
    type_id = _column(head, cf["common_type"], dat.endian + "u").astype(np.int32)
    flags = _column(head, cf["common_flags"], dat.endian + "u").astype(np.uint8, copy=False)
    pc = _column(head, cf["common_preempt_count"], dat.endian + "u").astype(np.uint8, copy=False)
    pid = _column(head, cf["common_pid"], dat.endian + "i").astype(np.int32, copy=False)
    del head
    known = of_ids(type_id, np.fromiter(formats.keys(), dtype=np.int64))
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
    return Numbered(dat, formats, store, ts_ns, cpu, bufidx, seq, type_id, flags, pc, pid, types, type_code)


def table(got: Numbered, meta: TraceMeta) -> pd.DataFrame:
    """The events table of ``got``'s records (its arrays become the table's columns)."""
    dat, formats = got.dat, got.formats
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


def _column(head: np.ndarray, f: Field, kind: str) -> np.ndarray:
    """One common field out of the (records, bytes) matrix of record heads."""
    return head[:, f.offset: f.offset + f.size].copy().view(kind + str(f.size)).ravel()


def _categorical(names: list[str], codes: np.ndarray) -> pd.Categorical:
    """Categorical of ``names[codes]`` without materialising one string per row."""
    uniq, remap = np.unique(np.asarray(names, dtype=object), return_inverse=True) if names else (np.zeros(0, object), np.zeros(0, int))
    return pd.Categorical.from_codes(remap.astype(np.int32)[codes] if len(codes) else np.zeros(0, np.int32),
                                     categories=pd.Index(uniq, dtype=object))
