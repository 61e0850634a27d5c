"""Synthesizer streaming: events per second and peak RSS at growing trace lengths.

Writes tracefs text and trace.dat v7 for arm64 pre-fix nohz_full traces of increasing length
into a temporary folder, each in a fresh process, and prints events, seconds and peak RSS.
Peak RSS must stay flat as the trace grows (events stream to disk slice by slice).

    python3 benchmarks/bench_synth.py [MAX_EVENTS]   # default 20,000,000
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from kvmtrace.synth import Scenario, synth
t = time.perf_counter()
r = synth(Scenario(duration_ns=int(sys.argv[1]), seed=3), sys.argv[2], name="big", formats=("tracefs", "dat7"))
print(json.dumps({"events": r["events"], "seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
EVENTS_PER_SECOND_OF_TRACE = 132_500  # what the default scenario emits per simulated second


def main() -> None:
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
    sizes = sorted({s for s in (200_000, 2_000_000, top) if s <= top})
    print(f"{'events':>12} {'seconds':>8} {'events/s':>10} {'peak RSS MB':>12}")
    for n in sizes:
        dur = int(n / EVENTS_PER_SECOND_OF_TRACE * 1e9)
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, str(dur), tmp], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        print(f"{r['events']:12,} {r['seconds']:8.1f} {r['events'] / r['seconds']:10,.0f} {r['rss_mb']:12.0f}")


if __name__ == "__main__":
    main()
