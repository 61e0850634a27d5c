"""Columnar access to trace.dat record fields: gather bytes for many records at once."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from .formats import EventFormat, Field


#: the largest event id a lookup table is built for (ids are 16 bits in every kernel's format)
_ID_TABLE = 1 << 20


def of_ids(type_id: np.ndarray, ids: Iterable[int] | np.ndarray) -> np.ndarray:
    """``np.isin(type_id, ids)``: by a lookup table when the ids are small, as every kernel's
    are; np.isin sorts the millions of records' ids (and twice their memory) to find a few."""
    wanted = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), np.int64)
    if not len(type_id) or not len(wanted):
        return np.zeros(len(type_id), bool)
    low, top = int(type_id.min()), int(type_id.max())
    if low < 0 or top >= _ID_TABLE:  # a damaged or strange layout: the general way
        return np.isin(type_id, wanted)
    table = np.zeros(top + 1, bool)
    table[wanted[(wanted >= 0) & (wanted <= top)]] = True
    return table[type_id]


class RecordStore:
    """The decompressed per-CPU buffers and, per event row, where its record is."""

    def __init__(self, bufs: list[np.ndarray], buf_id: np.ndarray, offset: np.ndarray, length: np.ndarray,
                 big_endian: bool) -> None:
        self.bufs = bufs
        self.buf_id = buf_id
        self.offset = offset
        self.length = length
        self.e = ">" if big_endian else "<"
        self._views: dict[tuple[int, int], np.ndarray] = {}
        self._last: tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray, int, int]]] | None = None

    def _groups(self, rows: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray, int, int]]:
        """Per buffer: (buffer, positions in ``rows``, record offsets, shortest record, the
        largest power of two ≤ 4 all offsets are multiples of). Kept for the last ``rows``
        because an event's fields are read one after another for the same rows."""
        last = self._last  # one read: several threads may decode different events at once
        if last is not None and last[0] is rows:
            return last[1]
        bid = self.buf_id[rows]
        seen = np.zeros(len(self.bufs), bool)
        seen[bid] = True  # which buffers these rows use (a scatter: no int64 copy of ``bid``)
        present = np.flatnonzero(seen)
        out = []
        for b in present:
            m = np.flatnonzero(bid == b) if len(present) > 1 else np.arange(len(rows))
            base = self.offset[rows[m]].astype(np.int64)
            low = int(np.bitwise_or.reduce(base & 3)) if len(base) else 0
            align = 4 if low == 0 else 2 if low & 1 == 0 else 1
            out.append((int(b), m, base, int(self.length[rows[m]].min()) if len(m) else 0, align))
        self._last = (rows, out)
        return out

    def _words(self, b: int, size: int) -> np.ndarray:
        """Buffer ``b`` viewed as ``size``-byte unsigned words (made once per buffer and width)."""
        key = (b, size)
        if key not in self._views:
            buf = self.bufs[b]
            self._views[key] = buf[: len(buf) // size * size].view(f"{self.e}u{size}")
        return self._views[key]

    def _aligned(self, rows: np.ndarray, at: int, size: int) -> np.ndarray | None:
        """A fixed-offset field read as whole words, or None unless every record holds it aligned.

        Ring-buffer payloads are 4-byte aligned on every kernel we read, so this is the
        normal path; the byte-column gather below stays for odd layouts and short records.
        """
        step = min(size, 4)
        out = np.zeros(len(rows), dtype=np.uint64)
        for b, m, base, shortest, align in self._groups(rows):
            if at % step or align < step or shortest < at + size:
                return None
            p = base + at
            words = self._words(b, step)
            if size <= 4:
                out[m] = words[p // step]
                continue
            q = p >> 2
            lo, hi = words[q].astype(np.uint64), words[q + 1].astype(np.uint64)
            out[m] = (hi << np.uint64(32) | lo) if self.e == "<" else (lo << np.uint64(32) | hi)
        return out

    def common(self, size: int = 8, step: int = 1 << 20) -> np.ndarray:
        """The first ``size`` bytes of every record (the common fields), as an (n, size) array.

        Read as whole native-order words where a buffer's records are 4-byte aligned (always, in
        real pages), one buffer at a time under a mask: no index array of int64 per record, which
        made the temporaries of this step several times the table it builds."""
        words = -(-size // 4)
        out = np.zeros((len(self.offset), words), dtype=np.uint32)
        for a in range(0, len(out), step):  # a million records at a time bounds the temporaries
            self._heads(out[a:a + step], slice(a, a + step), size)
        return out.view(np.uint8).reshape(len(out), 4 * words)[:, :size]

    def _heads(self, out: np.ndarray, rows: slice, size: int) -> None:
        """``common`` for the records ``rows``, into ``out`` (their words)."""
        one = len(self.bufs) == 1
        bid = self.buf_id[rows]
        for b in range(len(self.bufs)) if not one else (0,):
            buf = self.bufs[b]
            sel = slice(None) if one else bid == b
            start = self.offset[rows][sel]
            if not len(start):
                continue
            if len(buf) % 4 == 0 and not np.bitwise_or.reduce(start & 3) and int(start.max()) + 4 * out.shape[1] <= len(buf):
                w = buf.view(np.uint32)
                q = start >> 2
                for k in range(out.shape[1]):
                    out[sel, k] = w[q + k] if k else w[q]
                continue
            # one byte column at a time: an (n, size) int64 index matrix would be the load's peak
            flat = out.view(np.uint8)
            for k in range(size):
                flat[sel, k] = buf[np.minimum(start.astype(np.int64) + k, len(buf) - 1)]

    def _bytes(self, rows: np.ndarray, start: np.ndarray, size: int) -> np.ndarray:
        """(len(rows), size) bytes at ``start`` (relative to each record), zero past the record."""
        out = np.zeros((len(rows), size), dtype=np.uint8)
        for b, m, base, _short, _align in self._groups(rows):
            buf = self.bufs[b]
            first = base + start[m]
            end = np.minimum(base + self.length[rows[m]], len(buf))
            for k in range(size):  # one byte column at a time: no (rows × size) index matrix
                p = first + k
                out[m, k] = np.where(p < end, buf[np.minimum(p, len(buf) - 1)], 0)
        return out

    def number(self, rows: np.ndarray, f: Field, signed: bool | None = None) -> np.ndarray:
        """A numeric field as int64 (or uint64 for unsigned 8-byte values)."""
        size = f.size if f.size in (1, 2, 4, 8) else 8
        sgn = f.signed if signed is None else signed
        if f.size == size and (fast := self._aligned(rows, f.offset, size)) is not None:
            if not sgn:
                return fast if size == 8 else fast.astype(np.int64)
            return fast.astype(f"u{size}").view(f"i{size}").astype(np.int64)
        raw = self._bytes(rows, np.full(len(rows), f.offset), size)
        kind = ("i" if sgn else "u") + str(size)
        vals = raw.view(self.e + kind).ravel() if len(rows) else np.zeros(0, kind)
        if not sgn and size == 8:
            return vals.astype(np.uint64)
        return vals.astype(np.int64)

    def string(self, rows: np.ndarray, f: Field) -> pa.Array:
        """A ``char[N]`` or ``__data_loc``/``__rel_loc`` string field."""
        if f.data_loc or f.rel_loc:
            loc = self.number(rows, f, signed=False).astype(np.int64) & 0xFFFFFFFF
            start = loc & 0xFFFF
            if f.rel_loc:
                start = start + f.offset + f.size
            length = loc >> 16
        else:
            start = np.full(len(rows), f.offset, dtype=np.int64)
            # a flexible ``char buf[]`` runs to the record's end (the clip below)
            length = np.full(len(rows), f.array_len or f.size or np.iinfo(np.int64).max, dtype=np.int64)
        # never past the record: a damaged length or location cannot make the read wider than it
        length = np.minimum(length, np.maximum(self.length[rows].astype(np.int64) - start, 0))
        width = int(length.max()) if len(rows) else 0
        raw = self._bytes(rows, start, max(width, 1))
        raw[np.arange(max(width, 1))[None, :] >= length[:, None]] = 0
        nul = np.where((raw == 0).any(axis=1), (raw == 0).argmax(axis=1), raw.shape[1])
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(nul, out=offsets[1:])
        keep = np.arange(raw.shape[1])[None, :] < nul[:, None]
        data = raw[keep].tobytes()
        arr = pa.LargeStringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(data))
        return arr

    def bitmask(self, rows: np.ndarray, f: Field) -> list[str]:
        """``__get_bitmask``: 32-bit words, most significant first, comma separated."""
        loc = self.number(rows, f, signed=False).astype(np.int64) & 0xFFFFFFFF
        start, length = loc & 0xFFFF, loc >> 16
        length = np.minimum(length, np.maximum(self.length[rows].astype(np.int64) - start, 0))
        width = int(length.max()) if len(rows) else 0
        raw = self._bytes(rows, start, max(width, 4))
        out = []
        for i in range(len(rows)):
            n = int(length[i]) // 4
            words = raw[i, : n * 4].view(self.e + "u4") if n else np.zeros(0, np.uint32)
            out.append(",".join(f"{int(w):08x}" for w in words[::-1]))
        return out


def field_of(fmt: EventFormat, *names: str) -> Field | None:
    for n in names:
        if n in fmt.fields:
            return fmt.fields[n]
    return None
