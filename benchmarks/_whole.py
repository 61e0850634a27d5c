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


def _once(cmd: list[str]) -> tuple[float, float, float, float]:
    """(wall seconds, peak RSS MiB, user and system CPU seconds) of one run of ``cmd``, output
    thrown away."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):  # analyze exits 1 when it has findings to gate on
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime, usage.ru_stime


def ab(a: list[str], b: list[str], runs: int = 3, label_a: str = "A", label_b: str = "B") -> dict[str, float]:
    """Time ``a`` against ``b``; print both and the ratio; return the medians. The CPU columns say
    what a wall time is made of: on a VM whose first touch of memory is slow, system time grows
    with the memory a process touches, and a ratio moves with it from day to day."""
    _once(a), _once(b)  # warm-up: page cache, bytecode written
    runs_a, runs_b, ratios = [], [], []
    for _ in range(runs):
        runs_a.append(_once(a))
        runs_b.append(_once(b))
        ratios.append(runs_b[-1][0] / runs_a[-1][0])
    med = statistics.median
    out = {"a_s": med(r[0] for r in runs_a), "b_s": med(r[0] for r in runs_b), "a_mib": max(r[1] for r in runs_a),
           "b_mib": max(r[1] for r in runs_b), "ratio": med(ratios)}
    for label, cmd, got, key in ((label_a, a, runs_a, "a"), (label_b, b, runs_b, "b")):
        cpu = f"user {med(r[2] for r in got):5.2f} s, sys {med(r[3] for r in got):5.2f} s"
        print(f"  {label:<44s} {out[key + '_s']:7.2f} s  peak {out[key + '_mib']:7.0f} MiB  {cpu}   ({' '.join(cmd)})")
    print(f"  {'ratio (median of pairs)':<44s} {out['ratio']:7.2f} x   ({runs} pairs, alternating)")
    return out
