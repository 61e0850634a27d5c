"""Guest runs and exits: what `perf kvm stat` gives, with percentiles and honest pairing."""
from __future__ import annotations

from ..model.runs import exit_stats
from .base import Context, Result

NEEDS = ("kvm_entry", "kvm_exit")


def analyze(ctx: Context) -> Result:
    res = Result("exits")
    if not all(ctx.has_any(n) for n in NEEDS):
        res.cannot_decide("guest runs and exit reasons", [n for n in NEEDS if not ctx.has_any(n)], ["kvm"])
        return res
    r = ctx.runs
    f = r.frame
    res.frames["runs"] = f
    res.frames["exit_reasons"] = exit_stats(f)
    res.metrics = {
        "runs": int(len(f)), **r.unpaired,
        "vcpu_threads": int(f["pid"].nunique()) if len(f) else 0,
        "cpus": sorted(int(c) for c in f["cpu"].unique()) if len(f) else [],
        "arch": str(f["arch"].iloc[0]) if len(f) else "unknown",
        "irqs_in_runs": int(f["irqs"].sum()) if len(f) else 0,
        "softirqs_in_runs": int(f["softirqs"].sum()) if len(f) else 0,
        "ticks_in_runs": int(f["ticks"].sum()) if len(f) else 0,
        "irqs_in_exit_windows": int(f["window_irqs"].sum()) if len(f) else 0,
        "ticks_in_exit_windows": int(f["window_ticks"].sum()) if len(f) else 0,
        "exit_reasons": res.frames["exit_reasons"].to_dict(orient="records"),
    }
    return res
