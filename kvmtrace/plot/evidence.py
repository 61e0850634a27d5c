"""One figure per bug class: the guest run that proves it, above the other kernel's run of the same
kind, on one time scale, so a reviewer sees the difference rather than reads it.

- apparent irqs-off: the irqs-off window opened before kvm_entry and still open when the guest
  returns; on a fixed kernel, the window opened inside the guest entry itself, after kvm_entry;
- IRQs without RCU watching: the IRQ handler inside the vCPU thread's quiescent state; fixed: a guest
  quiescent state with no handler inside;
- misaccounted tick: the tick's due time against where it was handled and charged; fixed: a tick that
  caused the IRQ exit and was charged to the guest.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from ..analyzers import Analysis, Confidence
from ..analyzers.ticks import Charged, Pending
from .style import COLORS, new_figure, say_empty, side_label
from .timeline import draw, drawn_items, legend_below

#: what each bug class's figure is called
TITLES = {"apparent_irqsoff": "apparent irqs-off window spanning the guest",
          "rcu_not_watching": "IRQ handled while RCU is not watching",
          "misaccounted_tick": "guest tick charged to the host"}
MIN_SPAN_NS = 20_000


@dataclass(frozen=True)
class Shown:
    """The stretch of one CPU a row of the figure is centred on, and what it is."""

    cpu: int
    start: int
    end: int
    what: str
    due: int | None = None  # a tick's due time, marked


def proving(a: Analysis, kind: str) -> Shown | None:
    """The first proven finding of ``kind`` (the earliest in the trace), or None."""
    f = a.findings
    p = f[((f["kind"] == kind) & (f["confidence"] == Confidence.PROVEN)).to_numpy(bool)] if len(f) else f
    if not len(p):
        return None
    r = p.iloc[0]
    due = None
    if kind == "misaccounted_tick":
        t = a.ticks.ticks
        hit = t[(t["cpu"] == r["cpu"]) & (t["ts"] >= r["start_ns"]) & (t["ts"] <= r["end_ns"]) & t["misaccounted"]] \
            if t is not None and len(t) else None
        due = int(hit["due_ns"].iloc[0]) if hit is not None and len(hit) and hit["due_ns"].notna().iloc[0] else None
    return Shown(int(r["cpu"]), int(r["start_ns"]), int(r["end_ns"]), "first proven finding", due)


def same_kind(a: Analysis, kind: str) -> Shown | None:
    """The run a kernel without the bug shows in its place (see the module docstring), or None."""
    if kind == "apparent_irqsoff":
        w = a.irqsoff.windows
        g = w[(w["kind"] == "guest-entry").to_numpy(bool)] if w is not None and len(w) else None
        if g is not None and len(g):
            r = g.iloc[0]
            runs = a.runs
            run = runs[runs["run"] == r["run"]] if len(runs) else runs
            end = int(run["exit_ns"].iloc[0]) if len(run) else int(r["end_ns"])
            return Shown(int(r["cpu"]), int(r["start_ns"]), end, "irqs-off window opened in the guest entry")
    elif kind == "rcu_not_watching":
        g = a.rcu.guest_eqs
        if g is not None and len(g):
            r = g.iloc[0]
            return Shown(int(r["cpu"]), int(r["start_ns"]), int(r["end_ns"]), "guest quiescent state")
    elif kind == "misaccounted_tick":
        t = a.ticks.ticks
        ok = t[(t["charged"] == Charged.GUEST) & (t["pending"] == Pending.CAUSED) & t["run_of"].notna().to_numpy(bool)] \
            if t is not None and len(t) else None
        if ok is not None and len(ok):
            r = ok.iloc[0]
            run = a.runs[a.runs["run"] == r["run_of"]]
            start = int(run["entry_ns"].iloc[0]) if len(run) else int(r["ts"])
            due = int(r["due_ns"]) if pd.notna(r["due_ns"]) else None
            return Shown(int(r["cpu"]), start, int(r["ts"]), "tick charged to the guest", due)
    runs = a.runs
    if len(runs) and "exit_ns" in runs.columns:
        r = runs.iloc[0]
        return Shown(int(r["cpu"]), int(r["entry_ns"]), int(r["exit_ns"]), "first guest run")
    return None


def evidence(sides: dict[str, Analysis], kind: str) -> Figure:
    """Rows of ``sides`` (label → analysis, e.g. before/after), each centred on its proving run of
    ``kind`` or, without one, its run of the same kind; every row spans the same time."""
    shown = {label: proving(a, kind) or same_kind(a, kind) for label, a in sides.items()}
    spans = [s.end - s.start for s in shown.values() if s is not None]
    width = int(max(max(spans, default=0) * 1.6, MIN_SPAN_NS))
    fig = new_figure(height=1.2 + 2.1 * len(sides))
    axes = []
    for i, (label, a) in enumerate(sides.items()):
        ax = fig.add_subplot(len(sides), 1, i + 1)
        axes.append(ax)
        s = shown[label]
        if s is None:
            say_empty(ax, f"{side_label(label, a)}: no guest runs in this trace")
            continue
        start = (s.start + s.end) // 2 - width // 2
        draw(ax, drawn_items(a, start, start + width), [s.cpu], start, start + width)
        if s.due is not None:
            ax.axvline((s.due - start) / 1e3, color=COLORS["tick"], linestyle="--", linewidth=1, label="tick due")
        ax.set_title(f"{side_label(label, a)} — {s.what}", fontsize=9)
    fig.suptitle(TITLES.get(kind, kind) + f" (every row {width / 1e3:,.0f} µs wide)", fontsize=10)
    legend_below(fig, axes)
    return fig


def present(sides: dict[str, Analysis]) -> list[str]:
    """The bug classes with a proven finding on any side: those get a figure."""
    return [k for k in TITLES if any(proving(a, k) is not None for a in sides.values())]
