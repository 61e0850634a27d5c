"""``SeqIndex``: where each of a table's events is, by its seq number.

Every layer looks events up by seq (the reader putting decoded fields in table
order, a chunk of a trace finding its cached fields, the model's positions, run
numbers by kvm_entry seq); seq numbers are whole-file, so a table that kept some
events has gaps in them.
"""
from __future__ import annotations

import numpy as np


class SeqIndex:
    """seq → value for the seq numbers of one table (−1 for others).

    A dense array when the seq numbers are close together; a sorted lookup when
    they are sparse (a chunk of a huge trace, or a selective load that kept few events),
    so memory follows the events held, not the file's seq range.
    """

    def __init__(self, seq: np.ndarray, values: np.ndarray | None = None) -> None:
        """``values`` per seq; None: each seq's position in ``seq``. Positions of consecutive seq
        numbers (a whole trace.dat's table) need no array at all: seq − first is the position."""
        self.lo = int(seq.min()) if len(seq) else 0
        span = int(seq.max()) - self.lo + 1 if len(seq) else 0
        self.span = span
        self.dense: np.ndarray | None = None
        self.identity = values is None and span == len(seq) and bool((seq[1:] > seq[:-1]).all())
        if self.identity:
            return
        if span <= 4 * len(seq) + 1024:  # int32 where the values allow: one per seq in the span
            narrow = len(seq) < 1 << 31 if values is None else \
                not len(values) or -1 <= int(np.min(values)) and int(np.max(values)) < 1 << 31
            kind = np.int32 if narrow else np.int64
            self.dense = np.full(span, -1, dtype=kind)
            self.dense[seq - self.lo if self.lo else seq] = np.arange(len(seq), dtype=kind) if values is None else values
            return
        values = np.arange(len(seq)) if values is None else values
        order = np.argsort(seq, kind="stable")
        self.keys, self.values = seq[order], np.asarray(values, np.int64)[order]

    def __getitem__(self, seq: np.ndarray) -> np.ndarray:
        seq = np.asarray(seq, dtype=np.int64)
        if self.identity:
            i = seq - self.lo
            return np.where((i >= 0) & (i < self.span), i, -1)
        if self.dense is not None:
            i = seq - self.lo if self.lo else seq
            if not len(i) or 0 <= int(i.min()) and int(i.max()) < len(self.dense):  # all inside: one gather
                return self.dense[i].astype(np.int64, copy=False)
            ok = (i >= 0) & (i < len(self.dense))
            return np.where(ok, self.dense[np.where(ok, i, 0)].astype(np.int64), -1) if len(self.dense) else \
                np.full(len(seq), -1)
        i = np.minimum(np.searchsorted(self.keys, seq), max(len(self.keys) - 1, 0))
        return np.where(self.keys[i] == seq, self.values[i], -1) if len(self.keys) else np.full(len(seq), -1)
