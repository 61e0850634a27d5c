"""Accumulate event columns block by block and turn them into the events table.

Every reader (text or trace.dat) fills an ``EventColumns``; ``to_frame`` makes
the one events table layout the rest of kvmtrace relies on (``schema.py``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import string_array
from ..seqindex import SeqIndex
from .flags import FLAG_COLUMNS, masked
from .select import Selection

#: Arrow's default (mimalloc) pool keeps freed block memory cached; the system
#: pool returns it, which keeps peak RSS near the size of the table.
POOL = pa.system_memory_pool()


def _encoded(strings: pa.Array) -> pa.Array:
    """Names dictionary-encoded, unless the block's decoder did it (on its worker thread)."""
    return strings if pa.types.is_dictionary(strings.type) else pc.dictionary_encode(strings, memory_pool=POOL)


class EventColumns:
    """Per-block column pieces, concatenated once at the end."""

    def __init__(self, select: Selection | None = None) -> None:
        self.select = select
        self.not_kept = 0
        self._seq_base = 0
        self.seq: list[np.ndarray] = []
        self.fields: dict[str, list[pd.DataFrame]] = {}
        self.ts: list[np.ndarray] = []
        self.cpu: list[np.ndarray] = []
        self.pid: list[np.ndarray] = []
        self.tgid: list[tuple[np.ndarray, np.ndarray]] = []
        self.comm: list[pa.Array] = []
        self.event: list[pa.Array] = []
        self.system: list[pa.Array | None] = []
        self.flags: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
        self.payload: list[pa.Array] = []
        self.line: list[np.ndarray] = []
        self._unknown_flags: set[str] = set()
        #: whether the timestamps so far never go back (checked block by block, so the table needs
        #: no pass over all of them), and the last one
        self._in_order, self._last_ts = True, np.iinfo(np.int64).min

    def add_block(self, *, ts: Any, cpu: Any, pid: Any, tgid: tuple[Any, Any], comm: pa.Array, event: pa.Array,
                  system: pa.Array | None, flags: Any, payload: Any, line: Any) -> None:
        seq = np.arange(self._seq_base, self._seq_base + len(ts), dtype=np.int64)  # position in the whole file
        self._seq_base += len(ts)
        if self.select is not None:
            if self.select.events is not None:
                keep = pc.is_in(event, value_set=pa.array(sorted(self.select.events), event.type)).to_numpy(zero_copy_only=False)
                self.not_kept += int((~keep).sum())
                k = pa.array(keep)
                idx = np.flatnonzero(keep)
                ts, cpu, pid, seq, line = ts[idx], cpu[idx], pid[idx], seq[idx], line[idx]
                tgid = (tgid[0][idx], tgid[1][idx])
                comm, event, payload = comm.filter(k), event.filter(k), payload.filter(k)
                system = system.filter(k) if system is not None else None
                flags = {name: (v[idx], known[idx]) for name, (v, known) in flags.items()}
            self._decode_fields(event, payload, seq)
            payload = None
        self.seq.append(seq)
        ts = np.asarray(ts, dtype=np.int64)
        if self._in_order and len(ts):
            self._in_order = self._last_ts <= ts[0] and not (ts[1:] < ts[:-1]).any()
            self._last_ts = int(ts[-1])
        self.ts.append(ts)
        self.cpu.append(np.asarray(cpu, dtype=np.int32))
        self.pid.append(np.asarray(pid, dtype=np.int32))
        self.tgid.append((np.asarray(tgid[0], dtype=np.int32), np.asarray(tgid[1], dtype=bool)))
        self.comm.append(_encoded(comm))
        self.event.append(_encoded(event))
        self.system.append(_encoded(system) if system is not None else None)
        self.flags.append(flags)
        self.payload.append(payload)
        if self.select is None:  # a selective load keeps neither text nor line numbers
            self.line.append(np.asarray(line, dtype=np.int64))

    def _decode_fields(self, event: pa.Array, payload: pa.Array, seq: np.ndarray) -> None:
        """The selected typed fields of this block's events, so their payloads need not be kept."""
        decode = self.select.decoder("text")  # type: ignore[union-attr]
        for name, columns in self.select.fields.items():  # type: ignore[union-attr]
            m = pc.equal(event, name).to_numpy(zero_copy_only=False)
            if not m.any():
                continue
            got = decode(name, payload.filter(pa.array(m)).cast(pa.large_string()), columns)
            got.insert(0, "seq", seq[m])
            self.fields.setdefault(name, []).append(got)

    def field_frames(self, table_seq: np.ndarray) -> dict[str, pd.DataFrame]:
        """Decoded fields per event, rows in the order of the events table (``table_seq``)."""
        out = {}
        pos = SeqIndex(np.asarray(table_seq, np.int64))  # seq → table position
        for name, parts in self.fields.items():
            f = pd.concat(parts, ignore_index=True)
            self.fields[name] = []
            order = np.argsort(pos[f["seq"].to_numpy()], kind="stable")
            out[name] = f.iloc[order].reset_index(drop=True)
        self.fields = {}
        return out

    @property
    def next_seq(self) -> int:
        """The seq the next block's first event gets."""
        return self._seq_base

    def following(self) -> "EventColumns":
        """Empty columns for the events after these: seq numbering goes on."""
        nxt = EventColumns(self.select)
        nxt._seq_base = self._seq_base
        return nxt

    def clear_flag_knowledge(self, name: str) -> None:
        """Mark a flag column NA everywhere: the source cannot show it."""
        self._unknown_flags.add(name)

    def __len__(self) -> int:
        return sum(len(t) for t in self.ts)

    def to_frame(self) -> pd.DataFrame:
        """The events table, sorted by (ts, seq); ``seq`` is the order in the source."""
        ts = np.concatenate(self.ts) if self.ts else np.zeros(0, np.int64)
        n = len(ts)
        seq = np.concatenate(self.seq) if self.seq else np.zeros(0, np.int64)
        self.seq = []
        order = None if self._in_order else np.argsort(ts, kind="stable")

        def take(a: Any) -> Any:
            return a if order is None else a[order]

        def cat(chunks: list[pa.Array]) -> pd.Categorical:
            if not chunks:
                return pd.Categorical([])
            arr = pa.chunked_array(chunks).unify_dictionaries(memory_pool=POOL).combine_chunks(memory_pool=POOL)
            col = arr.to_pandas().array  # a Categorical
            col = pd.Categorical.from_codes(take(col.codes), categories=col.categories) if order is not None else col
            return col

        data: dict[str, object] = {"ts": take(ts), "seq": take(seq)}
        del ts, seq
        self.ts = []
        data["cpu"] = take(np.concatenate(self.cpu)) if n else np.zeros(0, np.int32)
        data["pid"] = take(np.concatenate(self.pid)) if n else np.zeros(0, np.int32)
        self.cpu, self.pid = [], []
        tg_v = np.concatenate([t[0] for t in self.tgid]) if n else np.zeros(0, np.int32)
        tg_k = np.concatenate([t[1] for t in self.tgid]) if n else np.zeros(0, bool)
        data["tgid"] = pd.arrays.IntegerArray(take(tg_v), ~take(tg_k))
        self.tgid = []
        data["comm"] = cat(self.comm)
        data["event"] = cat(self.event)
        self.comm, self.event = [], []
        if self.system and all(s is not None for s in self.system):
            data["system"] = cat(self.system)
        else:
            data["system"] = pd.Categorical.from_codes(np.full(n, -1, np.int8), categories=pd.Index([], dtype=object))
        for name in FLAG_COLUMNS:
            v = np.concatenate([f[name][0] for f in self.flags]) if n else np.zeros(0)
            k = np.concatenate([f[name][1] for f in self.flags]) if n else np.zeros(0, bool)
            for f in self.flags:  # free each piece as soon as it is copied
                del f[name]
            if name in self._unknown_flags:
                k = np.zeros_like(k)
            data[name] = masked(name, take(v), take(k))
        self.flags = []
        if self.select is None:  # a selective load decoded its fields in the reader and kept no text
            payload = pa.chunked_array(self.payload, type=pa.large_string()) if self.payload else pa.chunked_array([], pa.large_string())
            if order is not None:
                payload = payload.take(pa.array(order))
            data["payload"] = string_array(payload)
            data["line"] = take(np.concatenate(self.line)) if n else np.zeros(0, np.int64)
        self.payload, self.line = [], []
        return pd.DataFrame(data, copy=False)  # no consolidation copy
