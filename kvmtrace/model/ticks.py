"""Tick due times on the trace clock, and whether each tick was charged to the guest.

``hrtimer_expire_entry now=`` is CLOCK_MONOTONIC read when the handler ran; the
periodic tick was due at the last tick-period grid point at or before it (the
grid phase comes from the tick timer's ``hrtimer_start expires=``). The trace
clock (``local`` by default) differs from CLOCK_MONOTONIC by a near-constant
offset, estimated as the minimum of ``ts − now`` over all tick expiries
(docs/kernel.md E.6); its spread is the uncertainty of every due time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..schema import empty_frame
from ..trace import Trace
from .kernel import RUN_LOOP_CALLERS, TICK_FUNCTIONS, TICK_PERIODS_NS
from .timeline import Cls, Timeline


@dataclass
class TickClock:
    """How tick due times map onto the trace clock."""

    period_ns: int
    phase_ns: int
    offset_ns: int        # trace ts − CLOCK_MONOTONIC
    uncertainty_ns: int   # spread of the handler latency the offset estimate absorbs


#: what the tick model reads: each tick expiry's timer function and clock, and the tick timer's
#: starts (their expiry times give the tick grid's phase)
READS: dict[str, tuple[str, ...]] = {"hrtimer_expire_entry": ("function", "now"), "hrtimer_start": ("function", "expires")}
NO_TICKS = empty_frame({"seq": np.int64, "cpu": np.int32, "ts": np.int64, "now": np.int64})


def tick_frame(tr: Trace) -> pd.DataFrame:
    """Tick expiries: seq, cpu, ts, now."""
    if not tr.has("hrtimer_expire_entry"):
        return NO_TICKS.copy()
    h = tr.fields("hrtimer_expire_entry", list(READS["hrtimer_expire_entry"]), base=("cpu", "ts"))
    if "function" not in h.columns or "now" not in h.columns:
        return NO_TICKS.copy()
    h = h[h["function"].astype(object).isin(TICK_FUNCTIONS) & h["now"].notna()]
    return pd.DataFrame({"seq": h["seq"].to_numpy(np.int64), "cpu": h["cpu"].to_numpy(np.int32),
                         "ts": h["ts"].to_numpy(np.int64), "now": h["now"].to_numpy(np.int64)})


def tick_starts(tr: Trace) -> pd.DataFrame:
    """``expires`` of every tick timer start (hrtimer_start): they give the tick grid's phase."""
    none = pd.DataFrame({"seq": np.zeros(0, np.int64), "expires": np.zeros(0, np.int64)})
    if not tr.has("hrtimer_start"):
        return none
    s = tr.fields("hrtimer_start", list(READS["hrtimer_start"]))
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


def due_ns(clock: TickClock, now: np.ndarray) -> np.ndarray:
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


def delivery_ns(handler_ns: np.ndarray, due: np.ndarray) -> int:
    """Fastest delay from a tick's due time to the start of its IRQ handler (``handler_ns``, −1 where
    no handler precedes the tick), in this trace."""
    ok = handler_ns >= 0
    return max(0, int((handler_ns[ok] - due[ok]).min())) if ok.any() else 0


@dataclass
class ExitPath:
    """Per guest run, the KVM_RUN loop's steps between the guest's return and ``limit`` (the CPU's
    next kvm_entry), found by caller name (docs/kernel.md C.2, C.3, F).

    The host-IRQ window is the loop's first ``irq_enable`` at or after the return (on the pre-fix
    arm64 path that enable *is* the return) up to the loop's next ``irq_disable``; it exists only
    when kvm_exit is not printed inside it (arm64 ≥5.18 opens it after IRQ exits only, and the one
    ``irq_enable`` after any other exit is the last before kvm_exit). IRQ entry/exit paths and
    softirqs toggle IRQs with other callers, so no flags column is needed.
    """

    open_pos: np.ndarray       # window-opening irq_enable, −1 if no window
    close_pos: np.ndarray      # window-closing irq_disable, −1 if no window
    first_handler: np.ndarray  # first IRQ handler after the return, −1 if none before ``limit``
    seen: np.ndarray           # a run-loop irq toggle follows the return: the path can be read
    #: kvm_exit printed after the loop's irq_enable and before its irq_disable: no window on the
    #: paths that open none after this exit; on one that does (an IRQ exit, reworked arm64) the
    #: window's irq_disable was lost
    exit_inside: np.ndarray


def run_loop_mask(tl: Timeline) -> np.ndarray:
    """Positions whose preemptirq caller is the KVM_RUN loop itself."""
    lut = np.array([n in RUN_LOOP_CALLERS for n in tl.caller.names], dtype=bool)  # names end with None (code −1)
    return lut[tl.caller.codes]


def _first_from(sorted_pos: np.ndarray, at: np.ndarray, limit: np.ndarray,
                side: Literal["left", "right"] = "left") -> np.ndarray:
    """First of ``sorted_pos`` at (``side="left"``) or after ``at`` and before ``limit``, else −1."""
    if not len(sorted_pos):
        return np.full(len(at), -1, np.int64)
    i = np.searchsorted(sorted_pos, at, side=side)
    got = sorted_pos[np.minimum(i, len(sorted_pos) - 1)]
    return np.where((i < len(sorted_pos)) & (got < limit), got, -1)


def exit_path(tl: Timeline, return_pos: np.ndarray, exit_pos: np.ndarray, limit: np.ndarray) -> ExitPath:
    """The host-IRQ window and first handler of each run (see ``ExitPath``)."""
    loop = run_loop_mask(tl)
    ons = np.flatnonzero(loop & (tl.cls == Cls.IRQ_ON))
    offs = np.flatnonzero(loop & (tl.cls == Cls.IRQ_OFF))
    on = _first_from(ons, return_pos, limit)
    off = _first_from(offs, np.maximum(on, 0), limit, side="right")
    window = (on >= 0) & (off >= 0) & ~((exit_pos > on) & (exit_pos < off))
    seen = (on >= 0) | (_first_from(offs, return_pos, limit) >= 0)
    handlers = np.flatnonzero(tl.cls == Cls.HANDLER)
    first = _first_from(handlers, return_pos, limit, side="right")
    inside = (on >= 0) & (exit_pos > on) & ((off < 0) | (exit_pos < off))
    return ExitPath(np.where(window, on, -1), np.where(window, off, -1), first, seen, inside)


def reworked_entry(tl: Timeline, entry_pos: np.ndarray, return_pos: np.ndarray) -> np.ndarray:
    """Per run, the irq_enable of the noinstr enter/exit helper (``guest_state_enter_irqoff``)
    between kvm_entry and the guest's return: the reworked (5.17+) entry; −1 where absent."""
    on = np.flatnonzero((tl.cls == Cls.IRQ_ON) & tl.entry_path)
    return _first_from(on, entry_pos + 1, return_pos)
