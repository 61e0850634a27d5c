"""Text parsing throughput: kvmtrace vs the time trace-cmd takes to render the same text.

Renders ``emulator-flood.v7-zstd.dat`` (3.48M events) with ``trace-cmd report -N`` into a
temporary folder, timing it, then loads that text with kvmtrace in a fresh process and prints
both times, the ratio, lines/second and peak RSS per event.

    python3 benchmarks/bench_text_parse.py [TRACE.dat]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load_child import FLOOD as DEFAULT, run  # noqa: E402


def main() -> None:
    dat = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        txt = Path(tmp) / "flood.txt"
        t = time.perf_counter()
        with open(txt, "wb") as out:
            subprocess.run(["trace-cmd", "report", "-N", str(dat)], stdout=out, stderr=subprocess.DEVNULL, check=True)
        tc = time.perf_counter() - t
        size = txt.stat().st_size
        r = run(txt)
    ev = r["events"]
    print(f"input            {dat.name}: {size / 2**20:.0f} MB of text, {r['lines']:,} lines, {ev:,} events")
    print(f"trace-cmd report {tc:8.2f} s  (rendering the text)")
    print(f"kvmtrace load    {r['seconds']:8.2f} s  ({r['lines'] / r['seconds'] / 1e6:.2f} M lines/s)")
    print(f"ratio            {tc / r['seconds']:8.2f} x faster than trace-cmd renders it (target >= 2)")
    print(f"peak RSS         {r['rss_mb']:8.0f} MB = {r['rss_mb'] * 2**20 / ev:.0f} bytes/event (target < 250); "
          f"table {r['table_mb']:.0f} MB")
    print(f"cpus used        {os.cpu_count()}")


if __name__ == "__main__":
    main()
