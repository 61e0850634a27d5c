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
from .base import Context, Result, findings_frame

NEEDS = ("irq_disable", "irq_enable")


def _per_cpu(w: pd.DataFrame, threshold: int) -> pd.DataFrame:
    if not len(w):
        return pd.DataFrame(columns=["cpu", "windows", "over_threshold", "max_us", "p99_us", "apparent", "apparent_total_us"])
    g = w.groupby("cpu")
    out = pd.DataFrame({
        "windows": g.size(),
        "over_threshold": g["duration_ns"].apply(lambda s: int((s > threshold).sum())),
        "max_us": g["duration_ns"].max() / 1e3,
        "p99_us": g["duration_ns"].quantile(0.99) / 1e3,
        "apparent": g["kind"].apply(lambda s: int((s == "apparent").sum())),
        "apparent_total_us": g.apply(lambda x: x.loc[x["kind"] == "apparent", "duration_ns"].sum(), include_groups=False) / 1e3,
    })
    return out.reset_index()


def analyze(ctx: Context) -> Result:
    res = Result("irqsoff")
    tl = ctx.tl
    if not all(ctx.has_any(n) for n in NEEDS):
        fw = irqsoff.flag_windows(tl)
        res.frames["flag_windows"] = fw
        res.metrics = {"source": "irqs-off flags" if tl.flags_known else "none", "flag_windows": int(len(fw)),
                       "flag_max_us": float(fw["duration_ns"].max() / 1e3) if len(fw) else None}
        res.cannot_decide("apparent irqs-off windows (bug 2): the hardware irqs-off flag is the same on buggy and "
                          "fixed kernels; only preemptirq events show what tracing believed",
                          [n for n in NEEDS if not ctx.has_any(n)], ["preemptirq"])
        return res
    w, stats = ctx.windows
    w = w.copy()
    w["kind"] = "other"
    w["run"] = -1
    r = ctx.runs
    if len(r.entry_pos):
        wi = irqsoff.open_window_at(tl, w, r.return_pos)
        spans = wi >= 0
        opened_before = np.zeros(len(wi), bool)
        opened_before[spans] = w.attrs["open_pos"][wi[spans]] < r.entry_pos[spans]
        kinds = np.where(opened_before, "apparent", "guest-entry")
        w.loc[wi[spans], "kind"] = kinds[spans]
        w.loc[wi[spans], "run"] = np.flatnonzero(spans)
        a = np.flatnonzero(opened_before)
        wa = w.iloc[wi[a]]
        ev = np.column_stack([wa["open_seq"].to_numpy(), tl.seq[r.entry_pos[a]], tl.seq[r.return_pos[a]],
                              wa["close_seq"].to_numpy()]).tolist()
        detail = ("irqs-off window opened by " + wa["caller"].astype(str).to_numpy().astype(object) + " spans guest run "
                  + a.astype(str).astype(object) + " (no irq_enable between kvm_entry and the guest's return)")
        res.findings = findings_frame(
            "apparent_irqsoff", "proven", wa["cpu"], wa["pid"], wa["comm"], wa["start_ts"], wa["end_ts"], ev, detail, "")
    res.frames["windows"] = w
    res.frames["per_cpu"] = _per_cpu(w, ctx.options.irqsoff_threshold_ns)
    inner = w[w["kind"] == "guest-entry"]
    res.frames["guest_entry_windows"] = inner.groupby("caller").agg(
        runs=("run", "size"), max_us=("duration_ns", lambda s: s.max() / 1e3)).reset_index() if len(inner) else \
        pd.DataFrame(columns=["caller", "runs", "max_us"])
    res.metrics = {
        "source": "preemptirq", "windows": int(len(w)), **stats,
        "threshold_us": ctx.options.irqsoff_threshold_ns / 1e3,
        "runs_in_apparent_windows": int((w["kind"] == "apparent").sum()),
        "runs_in_guest_entry_windows": {str(k): int(v) for k, v in inner["caller"].value_counts().items()},
        "apparent_total_us": float(w.loc[w["kind"] == "apparent", "duration_ns"].sum() / 1e3),
        "per_cpu": res.frames["per_cpu"].to_dict(orient="records"),
    }
    return res
