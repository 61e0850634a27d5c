"""A trace.dat read a window of time at a time: memory for one window, not for the file.

Ring-buffer pages are independent, so each CPU's pages are walked a batch at a time. The
records of every CPU are merged as a whole read merges them (earliest first, the lower CPU
on ties) up to a horizon that every unfinished CPU has reached, so each window's events,
and their seq numbers, are exactly that stretch of a whole read.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ... import progress
from ...meta import TraceMeta
from ..select import Selection
from . import Opened, add_gaps, cpu_chunks, cpu_present, decoded_fields, decompressed, open_dat, page_records, to_ns
from .events import damaged, numbered, table
from . import header as hdr
from .records import RecordStore
from .source import SharedSymbols

#: most bytes of one CPU's pages walked at a time, and the bytes a record takes, about, for
#: sizing batches to the chunk: a window then holds about ``chunk_events`` records
BATCH_BYTES = 4 << 20
RECORD_BYTES = 32


@dataclass
class _Batch:
    """Walked records of one batch of a CPU's pages that are not yet handed out."""

    data: np.ndarray
    ts: np.ndarray      # ns
    kept: np.ndarray    # bool: a selective read keeps it
    offset: np.ndarray
    length: np.ndarray
    suspect: np.ndarray  # bool: in a misplaced page (damage)

    def part(self, s: slice) -> "_Batch":
        return _Batch(self.data, self.ts[s], self.kept[s], self.offset[s], self.length[s], self.suspect[s])


class _Cpu:
    """One CPU's records, loaded a batch of pages at a time."""

    def __init__(self, o: Opened, buffer: int, c: hdr.CpuData, page: int, gaps: list, batch: int) -> None:
        self.o, self.buffer, self.cpu, self.page, self.gaps, self.batch = o, buffer, c.cpu, page, gaps, batch
        self.batches: list[_Batch] = []
        self.last = np.iinfo(np.int64).min  # the latest time loaded
        self.last_raw: int | None = None      # the raw clock of the last record walked
        self.done = False
        self.read = 0  # bytes of the file consumed
        self._pages = self._page_bytes(c)

    def _page_bytes(self, c: hdr.CpuData) -> Iterator[np.ndarray]:
        """The CPU's data as batches of whole pages (decompressed chunk by chunk for v7)."""
        o, page = self.o, self.page
        step = max(self.batch // page, 1) * page
        if not c.compressed:
            avail = cpu_present(o, c)
            # read, not mapped: mapped pages once touched count as the process's memory
            with open(o.path, "rb") as fh:
                for at in range(0, avail, step):
                    n = min(step, avail - at)
                    self.read += n
                    yield np.frombuffer(os.pread(fh.fileno(), n, c.offset + at), dtype=np.uint8)
            return
        chunks = cpu_chunks(o, c)
        held: list[np.ndarray] = []  # chunks since the last batch, joined once per batch
        size = 0
        for got, csize in decompressed(o, c, chunks):
            self.read += csize
            held.append(got)
            size += len(got)
            whole = size // page * page
            if whole >= step:
                joined = np.concatenate(held)
                yield joined[:whole]
                held, size = ([joined[whole:]] if whole < size else []), size - whole
        if size:
            yield np.concatenate(held)

    def load(self) -> int:
        """Walk the next batch of pages; the number of records it held."""
        data = next(self._pages, None)
        if data is None:
            self.done = True
            if self.cpu in self.o.cut_cpus:  # what followed its last record is lost
                self.gaps.append((self.cpu, -1, self.last_raw))
            return 0
        recs = page_records(self.o, self.cpu, data, self.page, self.gaps, self.last_raw)
        if not len(recs.ts):
            return 0
        self.last_raw = int(recs.ts[-1])
        ts = to_ns(recs.ts, self.o.dat)
        self.batches.append(_Batch(data, ts, self.o.kept(data, recs), recs.offset, recs.length, recs.suspect))
        self.last = max(self.last, int(ts.max()))
        return len(ts)

    def pending(self) -> int:
        return sum(len(b.ts) for b in self.batches)

    def take(self, horizon: int | None) -> list[_Batch]:
        """The loaded records before ``horizon`` (all with None), removed from the CPU."""
        out, keep = [], []
        for b in self.batches:
            cut = len(b.ts) if horizon is None else int(np.searchsorted(b.ts, horizon, side="left")) \
                if (np.diff(b.ts) >= 0).all() else int(np.argmax(np.r_[b.ts >= horizon, True]))
            if cut:
                out.append(b.part(slice(None, cut)))
            if cut < len(b.ts):
                keep.append(b.part(slice(cut, None)))
        self.batches = keep
        return out


def stream_dat(path: str, compression: str | None, select: Selection, chunk_events: int
               ) -> Iterator[tuple[pd.DataFrame, dict[str, pd.DataFrame], TraceMeta]]:
    """(events, fields decoded while reading, meta) of about ``chunk_events`` records at a time.

    Only ``select``'s events are kept, their ``select.fields`` decoded (the record bytes are
    not kept past the window); seq numbers every record as a whole read does.
    """
    o = open_dat(path, compression, select)
    dat, meta = o.dat, o.meta
    gaps: list[tuple[int, int, int | None]] = []
    n_cpus = max(sum(len(buf.cpus) for buf in dat.buffers), 1)
    batch = min(BATCH_BYTES, chunk_events * RECORD_BYTES // n_cpus)
    cpus = [_Cpu(o, b_index, c, buf.page_size or dat.page_size, gaps, batch)
            for b_index, buf in enumerate(dat.buffers) for c in buf.cpus]
    total = max(sum(c.size for buf in dat.buffers for c in buf.cpus), 1)
    seq_base = kept_total = 0
    symbols = SharedSymbols(dat.kallsyms)  # parsed once for all the windows, if a field needs it
    while True:
        active = [c for c in cpus if not c.done]
        while active and sum(c.pending() for c in cpus) < chunk_events:
            min(active, key=lambda c: c.last).load()
            active = [c for c in active if not c.done]
        horizon = min(c.last for c in active) if active else None
        parts = [(c, b) for c in cpus for b in c.take(horizon)]
        if not parts and active:
            min(active, key=lambda c: c.last).load()  # the CPU holding the horizon back
            continue
        n = sum(len(b.ts) for _, b in parts)
        ts = np.concatenate([b.ts for _, b in parts]) if parts else np.zeros(0, np.int64)
        order = np.argsort(ts, kind="stable")  # parts are in CPU order: ties go to the lower CPU
        seq = np.empty(n, np.int64)
        seq[order] = np.arange(seq_base, seq_base + n)
        seq_base += n
        kept = np.concatenate([b.kept for _, b in parts]) if parts else np.zeros(0, bool)
        cpu = np.concatenate([np.full(len(b.ts), c.cpu, np.int32) for c, b in parts]) if parts else np.zeros(0, np.int32)
        bad = np.concatenate([b.suspect for _, b in parts]) if parts else np.zeros(0, bool)
        if bad.any():
            damaged(meta, seq[bad], cpu[bad])
        meta.not_kept += int((~kept).sum())
        order = order[kept[order]]
        bufs = [b.data for _, b in parts]
        store = RecordStore(bufs, np.concatenate([np.full(len(b.ts), i, np.uint16) for i, (_, b) in enumerate(parts)])[order]
                            if parts else np.zeros(0, np.uint16),
                            np.concatenate([b.offset for _, b in parts])[order] if parts else np.zeros(0, np.int64),
                            np.concatenate([b.length for _, b in parts])[order] if parts else np.zeros(0, np.int32),
                            dat.big_endian)
        cpu = cpu[order]
        bufidx = np.concatenate([np.full(len(b.ts), c.buffer, np.uint16) for c, b in parts])[order] if parts else np.zeros(0, np.uint16)
        got = numbered(dat, meta, o.formats, o.common, store, ts[order], cpu, bufidx, seq[order])
        del store
        fields = decoded_fields(got.source(symbols), select.fields, select.decoder("binary")) if select.fields else {}
        events = table(got, meta)
        kept_total += len(events)
        add_gaps(o, gaps)  # known once their pages are walked: before the events after them are analyzed
        gaps.clear()
        meta.events, meta.lines = kept_total, seq_base
        last = not active and not any(c.batches for c in cpus)
        if last:
            meta.cpus = dat.cpu_count or (max(c.cpu for c in cpus) + 1 if cpus else None)
        progress.step(f"reading {os.path.basename(path)}", min(sum(c.read for c in cpus) / total, 1.0))
        yield events, fields, meta
        if last:
            return
