"""A huge trace analyzed a chunk at a time, with the same result as the whole trace at once.

Each chunk is a ``Trace`` of its own: about ``chunk_events`` new events plus what
``model.carry`` says the previous chunk left open or later events look back at. Its
timeline owns each CPU's events from where the previous chunk's ownership ended to the
CPU's last quiet point; analyzers count and report only owned things, and
``pipeline.finish`` puts the parts together.

The chunks come either from a loaded events table (``collect_chunks``: rows of it) or
straight from the reader (``collect_stream``: no table of the whole trace is ever built,
so memory stays flat as traces grow). Only the RCU counter step is decided from more
than a chunk: the whole trace when it is loaded, the first piece that shows it when
streamed.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .. import progress
from ..memory import give_back
from ..model import carry
from ..model import rcu as rcu_model
from ..schema import concat
from ..trace import Trace
from . import irqsoff, pipeline
from .base import NOHZ_NEEDS, Context, Options

#: events a streamed analysis keeps whole for ``finish`` (few, and read from the whole trace)
FINISH_EVENTS = tuple(NOHZ_NEEDS)


class _Chunks:
    """The parts of one analysis, collected chunk by chunk; ``start``: per CPU, the key where
    the next chunk's owned events begin."""

    def __init__(self, options: Options, step: int | None) -> None:
        self.options, self.step = options, step
        self.start: dict[int, int] = {}
        self.parts: list[dict[str, Any]] = []

    def collect(self, chunk: Trace, key: np.ndarray, last: bool) -> np.ndarray:
        """Collect ``chunk`` (``key``: each event's row in the whole trace, ascending); the keys of
        the events the next chunk carries."""
        ctx = Context(chunk, self.options, whole_step=(self.step,))
        tl = ctx.tl
        k = key[tl.row]  # an event's key is its row in the whole table: the order the timeline keeps per CPU
        flags_matter = not all(chunk.has(e) for e in irqsoff.REQUIRED)  # windows from the irqs-off flag
        cut = {} if last else carry.quiet_cuts(tl, k, self.start, flags_matter)
        tl.owned = (k >= carry.per_cpu(tl, self.start, -1)) & (k < carry.per_cpu(tl, cut, np.iinfo(np.int64).max))
        tl.at_end = last
        self.parts.append(pipeline.collect(ctx, report=False))
        if last:
            return np.zeros(0, np.int64)
        r = ctx.runs
        self.start = cut
        return np.sort(carry.carried(tl, k, r.entry_pos, r.return_pos, r.exit_pos, cut))


def collect_chunks(trace: Trace, options: Options, chunk_events: int) -> list[dict[str, Any]]:
    """Every chunk's part of the analysis of ``trace``: rows of its events table ``chunk_events`` at a time."""
    n = len(trace.events)
    chunks = _Chunks(options, rcu_model.trace_counter_step(trace))
    rows_carried = np.zeros(0, np.int64)
    a = 0
    while True:
        b = min(a + max(int(chunk_events), 1), n)
        rows = np.concatenate([rows_carried, np.arange(a, b)])  # carried rows all come before a
        rows_carried = chunks.collect(trace.rows(rows), rows, last=b >= n)
        progress.step(f"analyzing {trace.name}", b / n if n else 1.0)
        if b >= n:
            return chunks.parts
        a = b


def collect_stream(pieces: Iterable[Trace], options: Options) -> tuple[list[dict[str, Any]], Trace]:
    """Every chunk's part of the analysis of a trace read piece by piece (``loading.stream``), and
    the trace ``finish`` reads: the whole trace's meta, event counts and ``FINISH_EVENTS``."""
    chunks = _Chunks(options, None)
    counts: dict[tuple[str, int], int] = {}
    kept: list[Trace] = []
    carried: Trace | None = None
    key_carried = np.zeros(0, np.int64)
    base = 0
    early = 0  # pieces analyzed before the RCU counter step was known
    meta = None
    empty: Trace | None = None
    for piece in pieces:
        meta = piece.meta
        if not len(piece.events):  # nothing to collect (a piece outside --start/--end): it decides nothing
            empty = piece
            continue
        for (e, c), v in piece.event_cpu_counts().items():
            counts[(str(e), int(c))] = counts.get((str(e), int(c)), 0) + int(v)
        piece.count_as(_series(counts))  # the events seen so far decide what is missing
        names = piece.event_names()
        if chunks.step is None:
            chunks.step = rcu_model.trace_counter_step(piece)
            early += chunks.step is None and any(n in names for n in ("rcu_dyntick", "rcu_watching"))
        if any(piece.has(n) for n in FINISH_EVENTS):
            m = piece.events["event"].isin(FINISH_EVENTS).to_numpy(bool)
            kept.append(piece.rows(np.flatnonzero(m)))
        key = np.concatenate([key_carried, np.arange(base, base + len(piece.events))])
        base += len(piece.events)
        chunk = carried.joined(piece) if carried is not None else piece
        key_carried = chunks.collect(chunk, key, last=False)
        carried = chunk.rows(np.searchsorted(key, key_carried))
        del chunk, piece
        give_back()
    carried = carried if carried is not None else empty  # no piece had events: the last empty one
    if meta is None or carried is None:
        raise ValueError("a stream yields at least one piece")
    carried.count_as(_series(counts))
    chunks.collect(carried, key_carried, last=True)
    if early and chunks.step is not None:
        meta.warnings.append(f"{early} streamed pieces were analyzed before the RCU counter step was known "
                             "(missed-transition checks there used none)")
    finishing = {name: [k.decoded[name] for k in kept if name in k.decoded] for name in FINISH_EVENTS}
    whole = Trace(concat([k.events for k in kept]) if kept else carried.events.iloc[:0], meta,
                  fields={name: concat(frames) for name, frames in finishing.items() if frames})
    whole.count_as(_series(counts))
    meta.kernel["streamed"] = True
    return chunks.parts, whole


def _series(counts: dict[tuple[str, int], int]) -> pd.Series:
    """Events per (event, cpu) as ``Trace.event_cpu_counts`` gives them."""
    if not counts:
        return pd.Series([], dtype=np.int64)
    return pd.Series(counts, dtype=np.int64).rename_axis(["event", "cpu"])
