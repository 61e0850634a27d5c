"""Figures for notebooks and reports, drawn with matplotlib's Agg backend (no display).

Every function takes an ``Analysis`` (or, for the distributions, a dict of
label → Analysis to draw before/after side by side) and returns a matplotlib
Figure; in Jupyter the figure displays itself, ``fig.savefig(...)`` writes it.

    a = kvmtrace.analyze("trace.dat")
    kvmtrace.plot.timeline(a, cpu=1)            # zoomed on the worst irqs-off window
    kvmtrace.plot.irqsoff_cdf({"before": a, "after": b})
    kvmtrace.plot.evidence({"before": a, "after": b}, "apparent_irqsoff")  # the proving run, beside the fixed one
"""
from __future__ import annotations

from .distributions import exit_handling, irqsoff_cdf, ticks_per_cpu
from .evidence import evidence
from .timeline import Window, timeline, worst_window

__all__ = ["evidence", "timeline", "worst_window", "Window", "irqsoff_cdf", "exit_handling", "ticks_per_cpu"]
