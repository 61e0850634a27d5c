"""A per-CPU timeline of guest runs, irqs-off windows, IRQs and ticks, zoomed on one window.

Traces hold millions of events; a figure that reads at pull-request width holds
a few thousand marks. So the timeline always shows a window of time: the one
asked for, or the worst irqs-off window, narrowed until it holds ``max_items``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analyzers import Analysis
from ..model.kernel import HANDLER_EVENTS
from .style import COLORS, new_figure, title_for

#: lanes of one CPU row, top to bottom
LANES = {"guest": 2.0, "irqsoff": 1.0, "events": 0.0}


@dataclass(frozen=True)
class Window:
    """A time range (trace ns) and why it was picked."""

    start: int
    end: int
    cpu: int | None
    why: str


def worst_window(a: Analysis, pad_ns: int = 50_000) -> Window:
    """Where to look first, always with a guest run in view when the trace has one: the longest apparent
    irqs-off window, else the longest window opened in the guest entry (the fixed kernel's run of the
    same kind), else the longest guest run; a host-only trace: its longest irqs-off window."""
    w = a.irqsoff.windows if a.irqsoff.windows is not None else pd.DataFrame()
    kind = w["kind"].astype(str) if len(w) else None
    for pick_kind, why in (("apparent", "longest apparent irqs-off window"),
                           ("guest-entry", "longest irqs-off window opened in the guest entry")):
        pick = w[(kind == pick_kind).to_numpy(bool)] if kind is not None else None
        if pick is not None and len(pick):
            r = pick.loc[pick["duration_ns"].idxmax()]
            pad = max(int(r["duration_ns"]) // 2, pad_ns)
            return Window(int(r["start_ns"]) - pad, int(r["end_ns"]) + pad, int(r["cpu"]), why)
    runs = a.runs
    if len(runs) and "exit_ns" in runs.columns:
        r = runs.loc[(runs["exit_ns"] - runs["entry_ns"]).idxmax()]
        pad = max(int(r["exit_ns"] - r["entry_ns"]) // 2, pad_ns)
        return Window(int(r["entry_ns"]) - pad, int(r["exit_ns"]) + pad, int(r["cpu"]), "longest guest run")
    if kind is not None:
        r = w.loc[w["duration_ns"].idxmax()]
        pad = max(int(r["duration_ns"]) // 2, pad_ns)
        return Window(int(r["start_ns"]) - pad, int(r["end_ns"]) + pad, int(r["cpu"]), "longest irqs-off window")
    t0 = a.trace.meta.first_ns or 0
    return Window(t0, t0 + 1_000_000, None, "start of the trace")


def _handlers(a: Analysis, start: int, end: int) -> pd.DataFrame:
    """IRQ handler events (ts, cpu) in [start, end]: from the events table, or read again from the
    file, piece by piece, when the analysis streamed it (its events were not kept)."""
    if a.trace.meta.kernel.get("streamed"):
        from ..readers.select import Selection
        from ..loading import stream

        near = [p.events.loc[((p.events["ts"] >= start) & (p.events["ts"] <= end)).to_numpy(bool), ["ts", "cpu"]]
                for p in stream(a.trace.path, Selection(frozenset(HANDLER_EVENTS)), 1_000_000)]
        return pd.concat(near, ignore_index=True)
    ev = a.trace.events
    ts = ev["ts"].to_numpy(np.int64)
    lo, hi = np.searchsorted(ts, [start, end + 1])  # the events table is time-ordered
    near = ev.iloc[lo:hi]
    return near.loc[near["event"].astype(str).isin(HANDLER_EVENTS).to_numpy(bool), ["ts", "cpu"]]


def drawn_items(a: Analysis, start: int, end: int) -> dict[str, pd.DataFrame]:
    """Everything drawn, restricted to [start, end]."""
    def clip(f: pd.DataFrame | None, s: str, e: str, *more: str) -> pd.DataFrame:
        if f is None or not len(f):
            return pd.DataFrame(columns=[s, e, "cpu", *more])
        return f[((f[e] >= start) & (f[s] <= end)).to_numpy(bool)]

    irqs = _handlers(a, start, end)
    ticks = a.ticks.ticks
    runs = a.runs if {"entry_ns", "return_ns", "exit_ns"} <= set(a.runs.columns) else None
    return {
        "runs": clip(runs, "entry_ns", "exit_ns", "return_ns"),
        "windows": clip(a.irqsoff.windows, "start_ns", "end_ns", "kind"),
        "eqs": clip(a.rcu.guest_eqs, "start_ns", "end_ns"),
        "irqs": irqs,
        "ticks": ticks[((ticks["ts"] >= start) & (ticks["ts"] <= end)).to_numpy(bool)] if ticks is not None and len(ticks)
        else pd.DataFrame(columns=["ts", "cpu", "misaccounted"]),
    }


def _count(items: dict[str, pd.DataFrame]) -> int:
    return sum(len(f) for f in items.values())


def timeline(a: Analysis, cpu: int | list[int] | None = None, window: tuple[int, int] | None = None,
             max_items: int = 2000, fig: Figure | None = None) -> Figure:
    """Draw CPU rows of guest runs, irqs-off windows (apparent ones red), IRQs and ticks.

    ``window`` is (start_ns, end_ns) in trace time; by default the worst irqs-off
    window. ``cpu`` limits the rows (default: CPUs with guest runs in the window).
    """
    if window is None:
        w = worst_window(a)
    else:
        w = Window(int(window[0]), int(window[1]), None, "requested window")
    start, end = w.start, w.end
    items = drawn_items(a, start, end)
    while _count(items) > max_items and end - start > 1_000:  # zoom in on the centre until it reads
        mid, half = (start + end) // 2, (end - start) // 4
        start, end = mid - half, mid + half
        items = drawn_items(a, start, end)
    cpus = sorted({int(c) for c in items["runs"]["cpu"]} | ({w.cpu} if w.cpu is not None else set()))
    if cpu is not None:
        cpus = [cpu] if isinstance(cpu, int) else list(cpu)
    cpus = cpus or sorted({int(c) for k in ("windows", "irqs", "ticks") for c in items[k]["cpu"]})[:8] or [0]
    fig = fig or new_figure(height=2.4 + 0.9 * len(cpus))
    ax = fig.add_subplot(1, 1, 1)
    draw(ax, items, cpus, start, end)
    ax.set_title(title_for(a, f"timeline: {w.why}"), fontsize=10)
    legend_below(fig, [ax])
    return fig


def draw(ax: Axes, items: dict[str, pd.DataFrame], cpus: list[int], start: int, end: int) -> None:
    """Draw ``items`` (``drawn_items``) of ``cpus`` in [start, end] on ``ax``, every lane named, time in µs."""
    row = {c: 4.0 * i for i, c in enumerate(reversed(cpus))}
    us = lambda t: (np.asarray(t, dtype=np.int64) - start) / 1e3  # noqa: E731
    for c in cpus:
        y = row[c]
        r = items["runs"][items["runs"]["cpu"] == c]
        ax.broken_barh(list(zip(us(r["entry_ns"]), us(r["return_ns"]) - us(r["entry_ns"]))), (y + LANES["guest"], 0.8),
                       color=COLORS["guest"], label="guest running" if len(r) else None)
        win = items["windows"][items["windows"]["cpu"] == c]
        for kind, color, label in (("other", COLORS["irqsoff"], "irqs-off window"),
                                   ("guest-entry", COLORS["entry"], "irqs-off (opened in guest entry)"),
                                   ("apparent", COLORS["apparent"], "apparent irqs-off (spans guest)")):
            k = win[(win["kind"] == kind).to_numpy(bool)] if "kind" in win else win.iloc[0:0]
            if len(k):
                ax.broken_barh(list(zip(us(k["start_ns"]), us(k["end_ns"]) - us(k["start_ns"]))),
                               (y + LANES["irqsoff"], 0.8), color=color, label=label)
        e = items["eqs"][items["eqs"]["cpu"] == c]
        if len(e):
            ax.broken_barh(list(zip(us(e["start_ns"]), us(e["end_ns"]) - us(e["start_ns"]))), (y, 0.8),
                           color=COLORS["eqs"], label="RCU not watching (guest quiescent state)")
        q = items["irqs"][items["irqs"]["cpu"] == c]
        ax.vlines(us(q["ts"]), y + 0.05, y + 0.75, color=COLORS["irq"], linewidth=1,
                  label="IRQ handler" if len(q) else "_nolegend_")
        t = items["ticks"][items["ticks"]["cpu"] == c]
        bad = t["misaccounted"].to_numpy(bool) if "misaccounted" in t else np.zeros(len(t), bool)
        ax.plot(us(t["ts"][~bad]), np.full(int((~bad).sum()), y + 0.4), "v", color=COLORS["tick"], markersize=7,
                linestyle="none", label="tick" if (~bad).any() else None)
        ax.plot(us(t["ts"][bad]), np.full(int(bad.sum()), y + 0.4), "*", color=COLORS["apparent"], markersize=11,
                linestyle="none", label="misaccounted tick" if bad.any() else None)
    # every lane named: the guest, the traced irqs-off windows, and the events (RCU state, IRQs, ticks)
    lanes = [(row[c] + LANES[k] + 0.4, f"CPU {c}  {name}" if k == "guest" else name) for c in cpus
             for k, name in (("guest", "guest"), ("irqsoff", "irqs-off"), ("events", "RCU · IRQs · ticks"))]
    ax.set_yticks([y for y, _ in lanes], [t for _, t in lanes], fontsize=8)
    ax.set_xlim(0, (end - start) / 1e3)
    ax.set_ylim(-0.5, 4.0 * len(cpus) - 0.7)
    ax.set_xlabel(f"time since {start / 1e9:.6f} s (µs)")
    ax.grid(axis="x", alpha=0.3)


def legend_below(fig: Figure, axes: list) -> None:
    """One legend of every label drawn on ``axes``, under them."""
    uniq: dict = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        uniq.update(zip(labels, handles))
    rows_of_legend = (len(uniq) + 2) // 3
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.22 * rows_of_legend + 0.05) / fig.get_figheight(), 1, 1))
