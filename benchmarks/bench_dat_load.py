"""trace.dat load: kvmtrace vs ``trace-cmd report -N > /dev/null`` on the same file, same run.

    python3 benchmarks/bench_dat_load.py [TRACE.dat]

Prints both times, the ratio (target >= 3x), kvmtrace's peak RSS per event (target < 200 B) and
where the events table's bytes per event go, column by column (target <= 48 B).
The load yields the full events table (typed flag columns) plus typed kvm/irq fields on demand.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load_child import FLOOD as DEFAULT, run  # noqa: E402


def main() -> None:
    dat = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    t = time.perf_counter()
    subprocess.run(["trace-cmd", "report", "-N", str(dat)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    tc = time.perf_counter() - t
    r = run(dat)
    ev = r["events"]
    print(f"input            {dat.name}: {dat.stat().st_size / 2**20:.1f} MB, {ev:,} events")
    print(f"trace-cmd report {tc:8.2f} s  (-N > /dev/null)")
    print(f"kvmtrace load    {r['seconds']:8.2f} s  (events table with flags); typed fields of {r['typed']} in {r['typed_seconds']:.2f} s")
    print(f"ratio            {tc / r['seconds']:8.2f} x faster than trace-cmd report (target >= 3)")
    print(f"peak RSS         {r['rss_mb']:8.0f} MB = {r['rss_mb'] * 2**20 / ev:.0f} bytes/event (target < 200)")
    cols = r["column_bytes"]
    print(f"events table     {sum(cols.values()) / ev:8.1f} bytes/event (target <= 48): "
          + ", ".join(f"{c} {b / ev:.1f}" for c, b in cols.items()))


if __name__ == "__main__":
    main()
