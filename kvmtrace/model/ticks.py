"""Tick due times on the trace clock, and whether each tick was charged to the guest.

``hrtimer_expire_entry now=`` is CLOCK_MONOTONIC read when the handler ran; the
periodic tick was due at the last tick-period grid point at or before it (the
grid phase comes from the tick timer's ``hrtimer_start expires=``). The trace
clock (``local`` by default) differs from CLOCK_MONOTONIC by a near-constant
offset, estimated as the minimum of ``ts − now`` over all tick expiries
(kernel-semantics.md E.6); its spread is the uncertainty of every due time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..trace import Trace
from .kernel import TICK_FUNCTIONS, TICK_PERIODS_NS
from .timeline import Cls, Timeline


@dataclass
class TickClock:
    """How tick due times map onto the trace clock."""

    period_ns: int
    phase_ns: int
    offset_ns: int        # trace ts − CLOCK_MONOTONIC
    uncertainty_ns: int   # spread of the handler latency the offset estimate absorbs


def tick_frame(tr: Trace) -> pd.DataFrame:
    """Tick expiries: seq, cpu, ts, now."""
    if not tr.has("hrtimer_expire_entry"):
        return pd.DataFrame(columns=["seq", "cpu", "ts", "now"])
    h = tr.fields("hrtimer_expire_entry", ["function", "now"], base=("cpu", "ts"))
    if "function" not in h.columns or "now" not in h.columns:
        return pd.DataFrame(columns=["seq", "cpu", "ts", "now"])
    h = h[h["function"].astype(object).isin(TICK_FUNCTIONS) & h["now"].notna()]
    return pd.DataFrame({"seq": h["seq"].to_numpy(np.int64), "cpu": h["cpu"].to_numpy(np.int32),
                         "ts": h["ts"].to_numpy(np.int64), "now": h["now"].to_numpy(np.int64)})


def tick_starts(tr: Trace) -> pd.DataFrame:
    """``expires`` of every tick timer start (hrtimer_start): they give the tick grid's phase."""
    none = pd.DataFrame({"seq": np.zeros(0, np.int64), "expires": np.zeros(0, np.int64)})
    if not tr.has("hrtimer_start"):
        return none
    s = tr.fields("hrtimer_start", ["function", "expires"])
    if not {"function", "expires"} <= set(s.columns):
        return none
    s = s[s["function"].astype(object).isin(TICK_FUNCTIONS) & s["expires"].notna()]
    return pd.DataFrame({"seq": s["seq"].to_numpy(np.int64), "expires": s["expires"].to_numpy(np.int64)})


def estimate_clock(ticks: pd.DataFrame, expires: np.ndarray) -> TickClock | None:
    """Tick period, grid phase and trace-clock offset, all from the trace itself: ``ticks``
    (every tick expiry: cpu, ts, now) and the tick timer's programmed ``expires``."""
    if len(ticks) < 2:
        return None
    gaps = []
    for _, g in ticks.groupby("cpu"):
        d = np.diff(np.sort(g["now"].to_numpy()))
        gaps.append(d[d > 0])
    d = np.concatenate(gaps) if gaps else np.zeros(0)
    if not len(d):
        return None
    # the period is the candidate that the spacing of consecutive ticks is a multiple of
    best = min(TICK_PERIODS_NS, key=lambda p: float(np.median(np.abs(d / p - np.maximum(np.round(d / p), 1)))))
    phase = 0
    if len(expires):
        vals, counts = np.unique(np.asarray(expires, np.int64) % best, return_counts=True)
        phase = int(vals[np.argmax(counts)])
    lat = ticks["ts"].to_numpy(np.int64) - ticks["now"].to_numpy(np.int64)
    off = int(lat.min())
    return TickClock(best, phase, off, max(int(np.percentile(lat, 50)) - off, 1_000))


def due_ts(clock: TickClock, now: np.ndarray) -> np.ndarray:
    """Trace-clock time each tick fell due: the grid point at or before ``now``."""
    due_mono = (now - clock.phase_ns) // clock.period_ns * clock.period_ns + clock.phase_ns
    return due_mono + clock.offset_ns


def handler_before(tl: Timeline, pos: np.ndarray) -> np.ndarray:
    """Position of the last IRQ handler before each position on its CPU, −1 if none."""
    h = np.flatnonzero(tl.cls == Cls.HANDLER)
    if not len(h) or not len(pos):
        return np.full(len(pos), -1, np.int64)
    i = np.searchsorted(h, pos) - 1
    ok = (i >= 0) & (tl.cpu[h[np.maximum(i, 0)]] == tl.cpu[pos])
    return np.where(ok, h[np.maximum(i, 0)], -1)


def delivery_ns(handler_ts: np.ndarray, due: np.ndarray) -> int:
    """Fastest delay from a tick's due time to the start of its IRQ handler (``handler_ts``, −1 where
    no handler precedes the tick), in this trace."""
    ok = handler_ts >= 0
    return max(0, int((handler_ts[ok] - due[ok]).min())) if ok.any() else 0


def task_level_irq_off(tl: Timeline) -> np.ndarray:
    """Positions of irq_disable events made by task code, not by an IRQ's entry path.

    Exception entry traces an irq_disable right before the handler; those are
    followed (past RCU brackets) by a hardirq-context event.
    """
    off = np.flatnonzero(tl.cls == Cls.IRQ_OFF)
    plain = tl.unbracketed
    j = np.searchsorted(plain, off, side="right")
    ok = j < len(plain)
    nxt = plain[np.minimum(j, len(plain) - 1)] if len(plain) else off
    entry_path = ok & (tl.cpu[nxt] == tl.cpu[off]) & tl.hardirq[nxt]
    return off[~entry_path]


def task_level_irq_on(tl: Timeline) -> np.ndarray:
    """Positions of irq_enable events made by task code, not by an exception return
    (those follow, past RCU brackets, the handler's hardirq-context events)."""
    on = np.flatnonzero(tl.cls == Cls.IRQ_ON)
    plain = tl.unbracketed
    j = np.searchsorted(plain, on) - 1
    prev = plain[np.maximum(j, 0)] if len(plain) else on
    from_irq = (j >= 0) & (tl.cpu[prev] == tl.cpu[on]) & tl.hardirq[prev]
    return on[~from_irq]
