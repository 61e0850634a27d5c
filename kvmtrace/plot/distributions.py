"""Distributions, one line or box per trace: irqs-off CDF, host handling per exit reason, ticks per CPU.

Each draws summaries (quantiles, percentile boxes, counts), never one mark per
event, so a figure of a 10M-event trace has the same few hundred marks.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..analyzers import Analysis
from .style import SIDE_COLORS, new_figure, say_empty, side_label

Sides = dict[str, Analysis]
#: points per CDF line: quantiles, not samples
CDF_POINTS = 400


def _sides(x: Analysis | Sides) -> Sides:
    return x if isinstance(x, dict) else {"trace": x}


def _names(s: Sides) -> str:
    return " vs ".join(side_label(k, a) for k, a in s.items())


def irqsoff_cdf(sides: Analysis | Sides, fig: Figure | None = None) -> Figure:
    """CDF of traced irqs-off window durations (log µs), apparent windows dashed."""
    s = _sides(sides)
    fig = fig or new_figure(4.2)
    ax = fig.add_subplot(1, 1, 1)
    q = np.linspace(0, 1, CDF_POINTS)
    for i, (label, a) in enumerate(s.items()):
        w = a.irqsoff.windows
        if w is None or not len(w):
            continue
        d = np.maximum(w["duration_ns"].to_numpy(np.int64), 1) / 1e3
        ax.step(np.quantile(d, q), q, where="post", color=SIDE_COLORS[i % 5], label=f"{label}: all windows (n={len(d):,})")
        ap = d[(w["kind"] == "apparent").to_numpy(bool)]
        if len(ap):
            ax.step(np.quantile(ap, q), q, where="post", color=SIDE_COLORS[i % 5], linestyle="--",
                    label=f"{label}: apparent, spanning the guest (n={len(ap):,})")
    ax.set_xscale("log")
    ax.set_xlabel("irqs-off window duration (µs, log scale)")
    ax.set_ylabel("fraction of windows ≤ duration")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"irqs-off windows — {_names(s)}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend(fontsize=8, loc="lower right")
    else:
        say_empty(ax, "no irqs-off windows: no preemptirq:irq_disable/irq_enable events in "
                  + ("this trace" if len(s) == 1 else "these traces"))
        ax.set_title(f"irqs-off windows — {_names(s)}", fontsize=9)
    fig.tight_layout()
    return fig


def exit_handling(sides: Analysis | Sides, top: int = 8, fig: Figure | None = None) -> Figure:
    """Host handling time per exit reason (box p25–p75, whiskers p5–p95, median line), most frequent reasons."""
    s = _sides(sides)
    counts: dict[str, int] = {}
    per_side = {label: a.runs["reason"].astype(str).value_counts() if len(a.runs) else {} for label, a in s.items()}
    for vc in per_side.values():
        for r, n in vc.items():
            counts[r] = counts.get(r, 0) + int(n)
    reasons = sorted(counts, key=lambda r: -counts[r])[:top]
    fig = fig or new_figure(1.4 + 0.28 * max(len(reasons), 1) * (max(len(s), 1) + 1))
    ax = fig.add_subplot(1, 1, 1)
    k = len(s)
    lo, hi = np.inf, 0.0
    for i, (label, a) in enumerate(s.items()):
        stats, pos = [], []
        for j, reason in enumerate(reasons):
            h = a.runs.loc[(a.runs["reason"].astype(str) == reason).to_numpy(bool), "host_ns"].dropna()
            h = h.to_numpy(np.int64) / 1e3
            if not len(h):
                continue
            p5, p25, p50, p75, p95 = np.percentile(h, [5, 25, 50, 75, 95])
            stats.append({"med": p50, "q1": p25, "q3": p75, "whislo": p5, "whishi": p95, "fliers": [],
                          "label": ""})
            pos.append(j * (k + 1) + i)
        if stats:
            b = ax.bxp(stats, positions=pos, orientation="horizontal", widths=0.8, patch_artist=True,
                       showfliers=False, medianprops={"color": "black"})
            lo = min(lo, min(x["whislo"] for x in stats))
            hi = max(hi, max(x["whishi"] for x in stats))
            for box in b["boxes"]:
                box.set_facecolor(SIDE_COLORS[i % 5])
                box.set_alpha(0.6)
            b["boxes"][0].set_label(side_label(label, a))
            # a box of one sample (or of equal samples) has no width: mark its value in the side's colour
            flat = [(x["med"], p) for x, p in zip(stats, pos) if x["q3"] - x["q1"] <= 1e-9 * max(x["med"], 1)]
            if flat:
                ax.plot([m for m, _ in flat], [p for _, p in flat], "D", color=SIDE_COLORS[i % 5], markersize=6,
                        markeredgecolor="black", linestyle="none")
    if not reasons:
        say_empty(ax, "no guest runs in " + ("this trace" if k == 1 else "these traces"))
        ax.set_title("host handling per exit reason", fontsize=9)
        fig.tight_layout()
        return fig
    # the exits of each side in brackets, in the legend's order (not pooled)
    ax.set_yticks([j * (k + 1) + (k - 1) / 2 for j in range(len(reasons))],
                  [f"{r} ({' / '.join(f'{int(vc.get(r, 0)):,}' for vc in per_side.values())})" for r in reasons])
    ax.invert_yaxis()
    log = hi > 20 * lo > 0  # a log axis only where the times span decades
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("host handling time, kvm_exit → next kvm_entry (µs" + (", log scale" if log else "")
                  + "; box p25–p75, whiskers p5–p95)")
    ax.set_title("host handling per exit reason (exits of each side in brackets)" if k > 1 else
                 "host handling per exit reason (exits in brackets)", fontsize=9)
    ax.grid(axis="x", alpha=0.3, which="both")
    if reasons:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def ticks_per_cpu(sides: Analysis | Sides, fig: Figure | None = None) -> Figure:
    """Misaccounted ticks per vCPU CPU (bug 3: hit the guest, charged to the host; proven and inferred,
    exactly the ``misaccounted`` column of the tick table the report prints beside it)."""
    s = _sides(sides)
    fig = fig or new_figure(3.6)
    ax = fig.add_subplot(1, 1, 1)
    frames = {label: a.ticks.per_cpu for label, a in s.items()}
    cpus = sorted({int(c) for f in frames.values() if f is not None and len(f) for c in f["cpu"]})
    k, width = len(s), min(0.8 / max(len(s), 1), 0.3)
    top = 0.0
    for i, (label, f) in enumerate(frames.items()):
        if f is None or not len(f):
            continue
        f = f.set_index("cpu").reindex(cpus)
        x = np.arange(len(cpus)) + (i - (k - 1) / 2) * width
        gh = f["misaccounted"].fillna(0).to_numpy(float)
        ax.bar(x, gh, width, color=SIDE_COLORS[i % 5], label=f"{label}: hit the guest, charged to the host")
        ticks = f["ticks"].fillna(0).to_numpy(int)
        top = max(top, float(gh.max(initial=0)))
        for xi, yi, n, total in zip(x, gh, gh.astype(int), ticks):
            ax.annotate(f"{n} of {total}", (xi, yi), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(np.arange(len(cpus)), [f"CPU {c}" for c in cpus])
    ax.set_xlabel("vCPU CPU (labels: misaccounted of all ticks there)")
    ax.set_ylabel("misaccounted ticks\n(proven + inferred, as the table)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"misaccounted guest ticks per CPU — {_names(s)}", fontsize=9)
    if not cpus:
        say_empty(ax, "no ticks on vCPU CPUs: no guest runs, nohz_full vCPU CPUs, or no hrtimer events")
        ax.set_title(f"misaccounted guest ticks per CPU — {_names(s)}", fontsize=9)
    elif ax.patches:
        ax.set_ylim(0, top * 1.25 + 1)  # room for the count labels
        ax.set_xlim(-0.75, len(cpus) - 0.25)
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
