"""Shared look of every figure: PR-width size, colours that survive grey-scale, titles naming the trace."""
from __future__ import annotations

import os

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analyzers import Analysis

#: a GitHub pull-request column is about 900 px wide
WIDTH_IN, DPI = 9.0, 110
COLORS = {"guest": "#4daf4a", "irqsoff": "#9e9e9e", "apparent": "#e41a1c", "entry": "#ff7f00",
          "irq": "#377eb8", "tick": "#984ea3", "eqs": "#decbe4"}
SIDE_COLORS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00"]


def new_figure(height: float = 4.0) -> Figure:
    """A figure not attached to pyplot (no global state, nothing left open)."""
    return Figure(figsize=(WIDTH_IN, height), dpi=DPI)


def title_for(a: Analysis, what: str) -> str:
    return f"{os.path.basename(a.trace.path)} — {what}"


def side_label(label: str, a: Analysis) -> str:
    return f"{label}: {os.path.basename(a.trace.path)}"


def say_empty(ax: Axes, message: str) -> None:
    """An axes with nothing to draw says why in words instead of showing blank 0–1 axes."""
    ax.cla()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
