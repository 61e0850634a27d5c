"""Whole-process A/B timing: two commands run in turn (A B A B ...), each as a user runs it.

Wall time from fork to exit and the peak RSS of each finished process (``os.wait4``), after one
warm-up run of each; the medians and the median of the per-pair ratios B/A (how many times
faster A is) are printed. Only public interfaces: subprocess and the kernel's own accounting.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time

#: the environment each command runs in: a user's, where Python keeps the bytecode it compiles (a
#: machine that sets PYTHONDONTWRITEBYTECODE would have every run compile kvmtrace's modules anew)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one run of ``cmd``, output thrown away."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):  # analyze exits 1 when it has findings to gate on
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return wall, usage.ru_maxrss / 1024


def ab(a: list[str], b: list[str], runs: int = 3, label_a: str = "A", label_b: str = "B") -> dict[str, float]:
    """Time ``a`` against ``b``; print both and the ratio; return the medians."""
    _once(a), _once(b)  # warm-up: page cache, bytecode written
    wa, wb, ma, mb, ratios = [], [], [], [], []
    for _ in range(runs):
        ta, pa = _once(a)
        tb, pb = _once(b)
        wa.append(ta), wb.append(tb), ma.append(pa), mb.append(pb), ratios.append(tb / ta)
    out = {"a_s": statistics.median(wa), "b_s": statistics.median(wb), "a_mib": max(ma), "b_mib": max(mb),
           "ratio": statistics.median(ratios)}
    print(f"  {label_a:<44s} {out['a_s']:7.2f} s  peak {out['a_mib']:7.0f} MiB   ({' '.join(a)})")
    print(f"  {label_b:<44s} {out['b_s']:7.2f} s  peak {out['b_mib']:7.0f} MiB   ({' '.join(b)})")
    print(f"  {'ratio (median of pairs)':<44s} {out['ratio']:7.2f} x   ({runs} pairs, alternating)")
    return out
