"""Ring-buffer pages → record positions and timestamps, all pages of a CPU at once.

Each page holds a header (timestamp, commit = data size + missed-events flags)
and a chain of 4-byte-aligned event headers (type_len:5, time_delta:27). Pages
are independent, so one numpy step advances every page by one event; the loop
runs as many times as the fullest page has events, not once per record.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30
COMMIT_MASK = (1 << 27) - 1
TS_MASK = (1 << 59) - 1


@dataclass
class Records:
    """Data records of one CPU's pages, in ring-buffer order."""

    ts: np.ndarray        # uint64 raw clock values
    offset: np.ndarray    # byte offset of the record's data in the CPU buffer (uint32 below 4 GiB, else int64)
    length: np.ndarray    # int32 data length
    page: np.ndarray      # int32 page index
    lost: np.ndarray      # per page: events lost before it (0 none, -1 unknown count)
    corrupt_pages: int    # pages whose chain broke before their commit size
    broken: np.ndarray    # their page indices
    #: per record: in a page out of time order or of a clashing CPU (``page_records`` marks them): damage
    suspect: np.ndarray


def walk(buf: np.ndarray, page_size: int, commit_off: int, commit_size: int, data_off: int,
         big_endian: bool = False) -> Records:
    """Find every data record in ``buf`` (whole pages of one CPU)."""
    e = ">" if big_endian else "<"
    npages = len(buf) // page_size
    if npages == 0:
        z = np.zeros(0, np.int64)
        return Records(z.astype(np.uint64), z, z, z, z, 0, z, np.zeros(0, bool))
    usable = npages * page_size
    u32 = np.frombuffer(buf[:usable], dtype=e + "u4")
    starts = np.arange(npages, dtype=np.int64) * page_size
    page_ts = np.frombuffer(buf[:usable], dtype=e + "u8")[starts // 8]
    if commit_size == 8:
        commit = np.frombuffer(buf[:usable], dtype=e + "u8")[(starts + commit_off) // 8]
    else:
        commit = u32[(starts + commit_off) // 4].astype(np.uint64)
    flags = commit & np.uint64(MISSED_EVENTS | MISSED_STORED)
    size = (commit & np.uint64(COMMIT_MASK)).astype(np.int64)
    size = np.minimum(size, page_size - data_off)
    lost = np.zeros(npages, dtype=np.int64)
    missed = (flags & np.uint64(MISSED_EVENTS)) != 0
    stored = missed & ((flags & np.uint64(MISSED_STORED)) != 0)
    lost[missed] = -1
    if stored.any():
        where = starts[stored] + data_off + size[stored]
        ok = where + commit_size <= starts[stored] + page_size
        vals = np.zeros(int(stored.sum()), dtype=np.int64)
        idx = where[ok]
        if commit_size == 8:
            raw = buf[(idx[:, None] + np.arange(8)).ravel()].reshape(-1, 8).copy().view(e + "u8").ravel()
        else:
            raw = buf[(idx[:, None] + np.arange(4)).ravel()].reshape(-1, 4).copy().view(e + "u4").ravel()
        vals[ok] = raw.astype(np.int64)
        lost[stored] = vals
    # the walk's state, one entry per page still being walked, compacted as pages finish
    page = np.flatnonzero(size > 0)
    p = starts[page] + data_off
    last = p + size[page]
    t = page_ts[page]
    out_ts, out_off, out_len, out_page = [], [], [], []
    off_type = np.uint32 if len(buf) < 1 << 32 else np.int64
    emitted = np.zeros(npages, dtype=np.int64)  # records found so far per page (rank in page)
    corrupt = np.zeros(npages, dtype=bool)
    while len(page):
        h = u32[p >> 2]
        tl = (h & 31).astype(np.int64)
        delta = (h >> 5).astype(np.uint64)
        t = t + delta
        data = (tl >= 1) & (tl <= 28)
        if data.all():  # the usual step: every page's next event is a small record (its length in tl)
            doff = p + 4
            nxt = doff + tl * 4
            rec = nxt <= last
            bad = None if rec.all() else ~rec
        else:  # padding, time extends and stamps, or records with a length word
            word = u32[np.minimum((p + 4) >> 2, len(u32) - 1)].astype(np.int64)
            big = tl == 0
            pad = tl == PADDING
            ext = tl == TIME_EXTEND
            stamp = tl == TIME_STAMP
            length = np.where(data, tl * 4, 0)
            length = np.where(big, ((word - 4) + 3) & ~3, length)
            doff = np.where(big, p + 8, p + 4)
            nxt = doff + length
            nxt[pad] = p[pad] + 4 + word[pad]
            nxt[ext | stamp] = p[ext | stamp] + 8
            t -= np.where(data | big | pad, np.uint64(0), delta)  # only events and padding add their delta here
            high = word.astype(np.uint64) << np.uint64(27)
            t = np.where(ext, t + high + delta, t)
            t = np.where(stamp, (t & ~np.uint64(TS_MASK)) | ((high + delta) & np.uint64(TS_MASK)), t)
            rec = (data | big) & (length > 0) & (doff + length <= last)
            bad = (nxt <= p) | ((data | big) & (doff + length > last))
            bad = bad if bad.any() else None
        if rec.any():
            kept = slice(None) if rec.all() else rec  # a slice keeps the usual step's arrays as they are
            pages = page[kept]
            out_ts.append(t[kept])
            out_off.append(doff[kept].astype(off_type))
            out_len.append((nxt - doff)[kept].astype(np.int32))
            out_page.append(pages.astype(np.int32))
            emitted[pages] += 1
        if bad is not None:
            corrupt[page[bad]] = True
            nxt = np.where(bad, last, nxt)
        going = nxt < last
        if going.all():
            p = nxt
        else:
            page, p, last, t = page[going], nxt[going], last[going], t[going]
    # records come out step by step across pages: scatter them back into buffer order (page by
    # page, rank within the page) without sorting. Each step holds a page at most once, in the
    # walk's order, so counting again gives each record's rank in its page
    base = np.zeros(npages, dtype=np.int64)
    np.cumsum(emitted[:-1], out=base[1:])
    total = int(emitted.sum())
    ts_out = np.empty(total, dtype=np.uint64)
    off_out = np.empty(total, dtype=off_type)
    len_out = np.empty(total, dtype=np.int32)
    page_out = np.empty(total, dtype=np.int32)
    while out_ts:
        pg = out_page.pop(0)
        where = base[pg]
        base[pg] += 1
        ts_out[where] = out_ts.pop(0)
        off_out[where] = out_off.pop(0)
        len_out[where] = out_len.pop(0)
        page_out[where] = pg
    return Records(ts_out, off_out, len_out, page_out, lost, int(corrupt.sum()), np.flatnonzero(corrupt),
                   np.zeros(total, bool))


def page_damage(recs: Records, npages: int, before: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pages holding no record, pages out of time order) of one CPU's ``npages`` walked pages.

    A kernel never hands out an empty page, and a CPU's pages follow each other in time, so an
    empty page is zeroed or cut data, and a page whose first record is earlier than the previous
    page's last one is a misplaced, copied or re-stamped page: both it and that previous page are
    suspect, as is a page stamped within one time delta of zero (no clock reads that low once a
    kernel is tracing). ``before``: the last record's raw time before these pages (a batch of a stream).
    """
    first = np.searchsorted(recs.page, np.arange(npages))
    count = np.diff(np.r_[first, len(recs.page)])
    empty = np.flatnonzero(count == 0)
    full = np.flatnonzero(count > 0)
    if not len(full):
        return empty, np.zeros(0, np.int64)
    start_ts = recs.ts[first[full]]
    end_ts = recs.ts[first[full] + count[full] - 1]
    prev_end = np.r_[np.uint64(0 if before is None else before), end_ts[:-1]]
    back = np.flatnonzero(start_ts < prev_end)
    if before is None:
        back = back[back > 0]
    stamped_zero = full[start_ts < np.uint64(1 << 27)]  # a zeroed page time: within one delta of 0
    suspect = np.unique(np.r_[full[back], full[back[back > 0] - 1], stamped_zero])
    return empty, suspect
