"""Analysis cost vs load cost on a ~10M-event KVM trace.

Until the synthesizer lands, the big trace is made by tiling a real one: the kernel's
own text of ``arm64-6.1-prefix-nohzfull`` (162,074 events, real pre-fix bugs) repeated
with each copy shifted by a whole number of seconds, written to a temporary folder.
Prints load time, analysis time, their ratio (target: analysis <= load), the findings
(which must scale exactly with the number of copies) and peak RSS.

    python3 benchmarks/bench_analyze.py [EVENTS]
"""
from __future__ import annotations

import lzma
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import kvmtrace

SRC = Path(__file__).resolve().parent.parent.parent / "shared" / "traces" / "real-arm64-6.1-qemu" / \
    "arm64-6.1-prefix-nohzfull.tracefs.txt.xz"
_TS = re.compile(r"^(.*?\] \S+ +)(\d+)(\.\d{6}: .*)$")


def tile(dst: Path, events: int) -> int:
    """Write copies of SRC shifted in time until ``events`` lines; return the copies."""
    lines = lzma.open(SRC, "rt").read().splitlines()
    head = [ln for ln in lines if ln.startswith("#")]
    parts = [m.groups() for m in map(_TS.match, lines) if m]
    span = max(int(s) for _h, s, _t in parts) + 1
    copies = max(1, events // len(parts))
    with open(dst, "w") as out:
        out.write("\n".join(head) + "\n")
        for k in range(copies):
            off = k * span
            out.write("\n".join(f"{h}{int(s) + off}{t}" for h, s, t in parts))
            out.write("\n")
    return copies


def main() -> None:
    want = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiled.txt"
        copies = tile(path, want)
        t = time.perf_counter()
        tr = kvmtrace.load(path)
        load = time.perf_counter() - t
        t = time.perf_counter()
        a = kvmtrace.analyze(tr)
        ana = time.perf_counter() - t
    c = a.counts()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"input     {copies} copies of {SRC.name}: {tr.meta.events:,} events, {len(a.runs):,} guest runs")
    print(f"load      {load:8.2f} s")
    print(f"analyze   {ana:8.2f} s   ratio analyze/load {ana / load:.2f} (target <= 1)")
    print(f"findings  rcu_not_watching {c['rcu_not_watching']['proven']:,} (= {copies} x 835: "
          f"{c['rcu_not_watching']['proven'] == copies * 835}), apparent_irqsoff {c['apparent_irqsoff']['proven']:,}")
    print(f"peak RSS  {rss:8.0f} MB = {rss * 2**20 / tr.meta.events:.0f} bytes/event")


if __name__ == "__main__":
    main()
