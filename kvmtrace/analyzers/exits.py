"""Guest runs and exits: what `perf kvm stat` gives, with percentiles and honest pairing."""
from __future__ import annotations

import numpy as np

from ..model.runs import exit_stats, exit_windows
from ..model.timeline import gaps_of
from .base import MODEL_NEEDS, Analyzer, Context, Frame, Metric, Result, Whole, by_cpu, concat, first_undecidable, summed

#: without these the guest runs cannot be paired
REQUIRED = ("kvm_entry", "kvm_exit")
WINDOW_COUNTS = ["window_irqs", "window_softirqs", "window_ticks"]


class Exits(Result):
    """Guest runs and exits.

    ``runs``: one row per guest run, numbered ``run`` in (cpu, kvm_entry) order: ``cpu``, ``pid``,
    ``comm``; ``entry_ns``/``return_ns``/``exit_ns`` and their ``*_seq`` (kvm_entry, the guest's
    return to the host, kvm_exit); ``exit_type``, ``esr_ec`` (arm64), ``reason``, ``arch``;
    ``guest_ns`` (entry to return), ``entry_to_exit_ns``; ``irqs``, ``softirqs``, ``ticks`` in the
    run and ``window_*`` in its exit window; ``next_entry_ns`` and ``host_ns`` (exit to the next
    entry; NA for the CPU's last run). ``reasons``: per exit reason ``count``, ``share`` and host /
    guest time percentiles in µs (``host_p50_us`` … ``guest_max_us``), like ``perf kvm stat``.
    """

    runs = Frame()
    reasons = Frame("exit_reasons")
    cpus = Metric[list[int]]([])
    vcpu_threads = Metric(0)
    arch = Metric("unknown")
    entries_without_exit = Metric(0)
    exits_without_entry = Metric(0)
    runs_broken_by_lost_events = Metric(0)


def collect(ctx: Context) -> Result:
    """The runs this part of the trace owns, and window counts it adds to runs owned elsewhere."""
    res = Result("exits")
    if not all(ctx.has_any(n) for n in REQUIRED):
        res.cannot_decide("guest runs and exit reasons", [n for n in REQUIRED if not ctx.has_any(n)], ["kvm"])
        return res
    r = ctx.runs
    own = ctx.tl.owns(r.entry_pos)
    res.frames["runs"] = r.frame[own]
    res.frames["window_deltas"] = r.frame.loc[~own, ["entry_seq", *WINDOW_COUNTS]]
    res.metrics = dict(r.unpaired)
    return res


def finish(parts: list[Result], whole: Whole) -> Result:
    """All runs numbered in (cpu, kvm_entry) order, exit windows across CPUs, per-reason stats."""
    res = Exits("exits")
    if first_undecidable(parts, res):
        return res
    runs = by_cpu([p.frames.pop("runs") for p in parts])
    deltas = concat([p.frames["window_deltas"] for p in parts])
    if len(deltas) and len(runs):
        add = deltas.groupby("entry_seq")[WINDOW_COUNTS].sum()
        at = add.reindex(runs["entry_seq"].to_numpy()).fillna(0).to_numpy(np.int64)
        runs[WINDOW_COUNTS] = runs[WINDOW_COUNTS].to_numpy(np.int64) + at
    runs["run"] = np.arange(len(runs))
    exit_windows(runs, gaps_of(whole.trace))
    res.frames["runs"] = runs
    res.frames["exit_reasons"] = exit_stats(runs)
    unpaired = summed(parts)
    res.metrics = {
        "runs": int(len(runs)), **unpaired,
        "vcpu_threads": int(runs["pid"].nunique()) if len(runs) else 0,
        "cpus": sorted(int(c) for c in runs["cpu"].unique()) if len(runs) else [],
        "arch": str(runs["arch"].iloc[0]) if len(runs) else "unknown",
        "irqs_in_runs": int(runs["irqs"].sum()) if len(runs) else 0,
        "softirqs_in_runs": int(runs["softirqs"].sum()) if len(runs) else 0,
        "ticks_in_runs": int(runs["ticks"].sum()) if len(runs) else 0,
        "irqs_in_exit_windows": int(runs["window_irqs"].sum()) if len(runs) else 0,
        "ticks_in_exit_windows": int(runs["window_ticks"].sum()) if len(runs) else 0,
        "exit_reasons": res.frames["exit_reasons"].to_dict(orient="records"),
    }
    return res


ANALYZER = Analyzer("exits", "guest runs paired, exit reasons and their handling times (perf kvm stat's view)",
                    MODEL_NEEDS, finish, collect, cost=6)
