"""Irqs-off windows, and the apparent ones that span a guest run (bug 2).

A window is *apparent* when it was opened before ``kvm_entry`` and no irq_enable
occurs between ``kvm_entry`` and the guest's return, so tracing believes IRQs
were off for the whole guest run. A window opened inside the guest entry itself
(6.1 VHE ``__kvm_vcpu_run``) also spans the guest but is reported apart, by caller.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import irqsoff
from ..model.timeline import containing, stretches
from ..schema import empty_frame, na_below_zero
from .states import Confidence
from .base import (MODEL_NEEDS, Analyzer, Context, Frame, Metric, Result, Whole, by_cpu, choose, concat, findings_frame,
                   first_undecidable, summed, text)

#: without these only the irqs-off flag bounds windows (it is the same on buggy and fixed kernels)
REQUIRED = ("irq_disable", "irq_enable")
#: what a traced window is to the guest: spans no guest run / spans one, opened before kvm_entry
#: (bug 2) / spans one, opened inside the guest entry itself
KINDS = ["other", "apparent", "guest-entry"]


class IrqsOff(Result):
    """Irqs-off windows.

    ``windows`` (preemptirq: irq_disable to irq_enable per CPU): ``cpu``, ``pid``, ``comm``,
    ``start_ns``, ``end_ns``, ``duration_ns``, ``open_seq``, ``close_seq``, ``caller`` and
    ``closer`` (the callers that opened and closed it), ``kind`` (``apparent``: opened before
    kvm_entry and spanning the guest, bug 2; ``guest-entry``: opened inside the guest entry;
    ``other``), ``run`` (the guest run it spans; NA for none). ``per_cpu``: ``windows``,
    ``over_threshold``, ``max_us``, ``p99_us``, ``apparent``, ``apparent_total_us`` per CPU.
    ``guest_entry_windows``: per ``caller``, ``runs`` and ``max_us``. Without preemptirq events:
    ``flag_windows`` (``cpu``, ``start_ns``, ``end_ns``, ``duration_ns``) from the irqs-off flag.
    """

    windows = Frame()
    per_cpu = Frame()
    guest_entry_windows = Frame()
    flag_windows = Frame()
    threshold_us = Metric(0.0)
    runs_in_apparent_windows = Metric[int | None](None)
    runs_in_guest_entry_windows = Metric[dict[str, int]]({})


def _per_cpu(w: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Per-CPU window statistics; ``w`` is in (cpu, trace order), so each CPU's windows are one
    slice (no group-by copies of a huge trace's windows)."""
    columns = ["cpu", "windows", "over_threshold", "max_us", "p99_us", "apparent", "apparent_total_us"]
    if not len(w):
        return empty_frame({"cpu": np.int32, "windows": np.int64, "over_threshold": np.int64, "max_us": float,
                            "p99_us": float, "apparent": np.int64, "apparent_total_us": float})
    cpu, d = w["cpu"].to_numpy(), w["duration_ns"].to_numpy(np.int64)
    apparent = (w["kind"] == "apparent").to_numpy(bool)
    rows = [(int(cpu[a]), b - a, int((d[a:b] > threshold).sum()), d[a:b].max() / 1e3, np.quantile(d[a:b], 0.99) / 1e3,
             int(apparent[a:b].sum()), d[a:b][apparent[a:b]].sum() / 1e3) for a, b in zip(*stretches(cpu))]
    return pd.DataFrame(rows, columns=columns).astype({"cpu": np.int32, "max_us": float, "p99_us": float, "apparent_total_us": float})


def _near_gaps(ctx: Context, lost: pd.DataFrame) -> pd.DataFrame:
    """Runs a lost-events gap broke, inside a window opened before their kvm_entry: the window may
    be apparent, but an irq_enable may be among the lost events. Reported as inferred."""
    tl, runs = ctx.tl, ctx.runs
    opens, closes = lost["open_pos"].to_numpy(), lost["close_pos"].to_numpy()
    window = containing(tl, opens, closes, runs.broken_entry_pos)  # the window each broken run's entry is in
    hit = np.flatnonzero(window >= 0)
    if not len(hit):
        return pd.DataFrame()
    opened, closed = opens[window[hit]], closes[window[hit]]
    entry, exit_ = runs.broken_entry_pos[hit], runs.broken_exit_pos[hit]
    return findings_frame(
        "apparent_irqsoff", Confidence.INFERRED, tl.cpu[opened], tl.pid[opened], tl.comm[opened], tl.ts[opened],
        tl.ts[closed], np.column_stack([tl.seq[opened], tl.seq[entry], tl.seq[exit_], tl.seq[closed]]),
        text("irqs-off window opened by ", tl.caller[opened], " before kvm_entry spans a guest run"),
        "lost events inside this guest run: an irq_enable may be among them")


def collect(ctx: Context) -> Result:
    """The windows this part of the trace owns, each classified against the guest runs, and findings."""
    res = Result("irqsoff")
    tl = ctx.tl
    if not all(ctx.has_any(n) for n in REQUIRED):
        res.frames["flag_windows"] = irqsoff.flag_windows(tl)
        res.metrics = {"source": "irqs-off flags" if tl.flags_known else "none"}
        res.cannot_decide("apparent irqs-off windows (bug 2): the hardware irqs-off flag is the same on buggy and "
                          "fixed kernels; only preemptirq events show what tracing believed",
                          [n for n in REQUIRED if not ctx.has_any(n)], ["preemptirq"])
        return res
    windows, stats, lost = ctx.windows  # shared with other analyzers: read here, never changed
    kind = np.zeros(len(windows), np.int8)  # index into KINDS
    run = np.full(len(windows), -1, np.int64)
    runs = ctx.runs
    if len(runs.entry_pos):
        window = irqsoff.open_window_at(tl, windows, runs.return_pos)  # the window open at each run's return
        spans = window >= 0
        opened_before = np.zeros(len(window), bool)
        opened_before[spans] = windows["open_pos"].to_numpy()[window[spans]] < runs.entry_pos[spans]
        kind[window[spans]] = np.where(opened_before[spans], 1, 2)
        run[window[spans]] = runs.key(np.flatnonzero(spans))
        apparent_runs = np.flatnonzero(opened_before)
        apparent = windows.iloc[window[apparent_runs]]
        entry, back = runs.entry_pos[apparent_runs], runs.return_pos[apparent_runs]
        evidence = np.column_stack([apparent["open_seq"].to_numpy(), tl.seq[entry], tl.seq[back],
                                    apparent["close_seq"].to_numpy()])
        detail = text("irqs-off window opened by ", apparent["caller"].array, " spans a guest run: no irq_enable "
                      "between kvm_entry and the guest's return (evidence: the window's opening, kvm_entry, the return, "
                      "its close)")
        # the entry logic is read from callers: a raw address could be the reworked entry's irq_enable
        unresolved = np.flatnonzero(tl.unresolved)
        blind = tl.unresolved[apparent["open_pos"].to_numpy()] | \
            (np.searchsorted(unresolved, back, side="right") > np.searchsorted(unresolved, entry, side="right"))
        res.findings = findings_frame(
            "apparent_irqsoff", choose(Confidence.PROVEN, (blind, Confidence.INFERRED)), apparent["cpu"],
            apparent["pid"], apparent["comm"].array, apparent["start_ns"], apparent["end_ns"], evidence, detail,
            choose("", (blind, "an irq_disable/irq_enable caller here is not resolved to a kernel function (no kallsyms?): "
                               "the reworked entry's irq_enable cannot be recognized")))
        res.findings = pd.concat([res.findings, _near_gaps(ctx, lost)], ignore_index=True) \
            if len(runs.broken_entry_pos) and len(lost) else res.findings
    out = windows.drop(columns=["open_pos", "close_pos"])  # a new frame; its columns are copied only if written
    out["kind"] = pd.Categorical.from_codes(kind, KINDS)
    out["run"] = run
    res.frames["windows"] = out
    res.metrics = {"source": "preemptirq", **stats,
                   "unresolved_callers": int(tl.owns(np.flatnonzero(tl.unresolved)).sum())}
    return res


def finish(parts: list[Result], whole: Whole) -> Result:
    """Windows of the whole trace with run numbers, per-CPU statistics and metrics."""
    res = IrqsOff("irqsoff")
    first_undecidable(parts, res)
    res.findings = concat([p.findings for p in parts])
    if "flag_windows" in parts[0].frames:
        flag_windows = by_cpu([p.frames.pop("flag_windows") for p in parts])
        res.frames["flag_windows"] = flag_windows
        res.metrics = {"source": parts[0].metrics["source"], "flag_windows": int(len(flag_windows)),
                       "flag_max_us": float(flag_windows["duration_ns"].max() / 1e3) if len(flag_windows) else None}
        return res
    windows = by_cpu([p.frames.pop("windows") for p in parts])
    windows["run"] = na_below_zero(whole.run_of(windows["run"].to_numpy()))  # NA: a window in no guest run
    stats = summed(parts, same=("source",))
    res.frames["windows"] = windows
    res.frames["per_cpu"] = _per_cpu(windows, whole.options.irqsoff_threshold_ns)
    inner = windows[windows["kind"] == "guest-entry"]
    res.frames["guest_entry_windows"] = inner.groupby("caller", observed=True).agg(
        runs=("run", "size"), max_us=("duration_ns", lambda s: s.max() / 1e3)).reset_index() if len(inner) else \
        pd.DataFrame({"caller": pd.Categorical([]), "runs": np.zeros(0, np.int64), "max_us": np.zeros(0)})
    res.metrics = {
        "source": "preemptirq", "windows": int(len(windows)), **stats,
        "threshold_us": whole.options.irqsoff_threshold_ns / 1e3,
        "runs_in_apparent_windows": int((windows["kind"] == "apparent").sum()),
        "runs_in_guest_entry_windows": {str(k): int(v) for k, v in inner["caller"].value_counts().items() if v},
        "apparent_total_us": float(windows.loc[windows["kind"] == "apparent", "duration_ns"].sum() / 1e3),
        "per_cpu": res.frames["per_cpu"].to_dict(orient="records"),
    }
    return res


ANALYZER = Analyzer("irqsoff", "irqs-off windows; those spanning a guest run are apparent (bug 2)", MODEL_NEEDS, finish,
                    collect, after=("exits", "damage", "entry"), cost=1.5)
