"""A huge trace analyzed a chunk at a time, with the same result as the whole trace at once.

Each chunk is a ``Trace`` of its own (``Trace.rows``): about ``chunk_events`` new events
plus what ``model.carry`` says the previous chunk left open or later events look back at.
Its timeline owns each CPU's events from where the previous chunk's ownership ended
to the CPU's last quiet point; analyzers count and report only owned things, and
``analyzers.finish`` puts the parts together. Only the RCU counter step is decided up
front from the whole trace, because whether an EQS missed transitions depends on it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import progress
from ..model import carry
from ..model import rcu as rcu_model
from ..trace import Trace
from . import irqsoff
from .base import Context, Options


def collect_chunks(trace: Trace, options: Options, chunk_events: int) -> list[dict[str, Any]]:
    """Every chunk's part of the analysis of ``trace``: rows of its events table ``chunk_events`` at a time."""
    from . import collect

    n = len(trace.events)
    step = rcu_model.trace_counter_step(trace)
    flags_matter = not all(trace.has(e) for e in irqsoff.NEEDS)  # windows from the irqs-off flag
    start: dict[int, int] = {}  # per CPU: the table row where this chunk's owned events begin
    rows_carried = np.zeros(0, np.int64)
    parts: list[dict[str, Any]] = []
    a = 0
    while True:
        b = min(a + max(int(chunk_events), 1), n)
        rows = np.concatenate([rows_carried, np.arange(a, b)])  # carried rows all come before a
        chunk = trace.rows(rows)
        ctx = Context(chunk, options, counter_step=step)
        tl = ctx.tl
        # an event's key is its row in the whole table: the order the timeline keeps per CPU
        key = rows[tl.row]
        last = b >= n
        cut = {} if last else carry.quiet_cuts(tl, key, start, flags_matter)
        tl.owned = (key >= carry.per_cpu(tl, start, -1)) & (key < carry.per_cpu(tl, cut, np.iinfo(np.int64).max))
        parts.append(collect(ctx, report=False))
        progress.step(f"analyzing {trace.name}", b / n if n else 1.0)
        if last:
            return parts
        r = ctx.runs
        rows_carried = np.sort(carry.carried(tl, key, r.entry_pos, r.return_pos, r.exit_pos, cut))
        start = cut
        a = b
