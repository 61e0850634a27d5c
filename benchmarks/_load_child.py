"""Load one trace in this (fresh) process and print timings and peak RSS as JSON.

Run by the benchmarks as a child process so peak RSS is kvmtrace's alone.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import kvmtrace

FLOOD = Path(__file__).resolve().parent.parent.parent / "shared" / "traces" / "real-x86-6.18" / "emulator-flood.v7-zstd.dat"
TYPED = ("sched_switch", "irq_handler_entry", "hrtimer_expire_entry")


def main() -> None:
    t = time.perf_counter()
    tr = kvmtrace.load(sys.argv[1])
    load = time.perf_counter() - t
    t = time.perf_counter()
    typed = {n: len(tr.df(n)) for n in TYPED if tr.has(n)}
    print(json.dumps({"seconds": load, "typed_seconds": time.perf_counter() - t, "typed": typed,
                      "events": tr.meta.events, "lines": tr.meta.lines,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "table_mb": float(tr.events.memory_usage(deep=True).sum()) / 2**20,
                      "column_bytes": {c: int(tr.events[c].memory_usage(deep=True, index=False)) for c in tr.events}}))


def run(path: Path) -> dict:
    """Run this module on ``path`` in a child interpreter and return its JSON."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


if __name__ == "__main__":
    main()
