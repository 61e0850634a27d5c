"""The commands as a user runs them, each against its baseline, whole process, alternating.

    python3 benchmarks/bench_cli.py [RUNS]

1. ``kvmtrace analyze --no-cache FLOOD.dat`` vs ``trace-cmd report -N FLOOD.dat`` (target >= 4x), and
   ``kvmtrace analyze`` of the text trace-cmd renders vs trace-cmd rendering it (target >= 2.5x);
2. ``analyze --low-memory`` (streamed) vs ``analyze``, and ``kvmtrace events`` of the same file vs
   ``analyze`` (how much the analysis adds to the load);
3. ``kvmtrace --help`` and ``kvmtrace events --help`` (target <= 0.3 s) vs ``python3 -c pass``;
4. a batch of synthesized traces: ``analyze DIR`` (local process pool) vs ``analyze DIR --serial``
   (never slower). ``bench_scale.py batch`` adds a dask LocalCluster of the same size.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load_child import FLOOD  # noqa: E402
from _whole import ab  # noqa: E402

KVMTRACE = [sys.executable, "-m", "kvmtrace"]


def batch_dir(tmp: str, n: int) -> str:
    from kvmtrace.synth import Scenario, synth

    for i in range(n):
        synth(Scenario(duration_ns=40_000_000, seed=100 + i), tmp, name=f"t{i:03d}", formats=("dat7",))
    return tmp


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"analyze {FLOOD.name} ({FLOOD.stat().st_size / 2**20:.1f} MB, 3.48M events): kvmtrace vs trace-cmd")
    ab([*KVMTRACE, "analyze", "--no-cache", str(FLOOD)], ["trace-cmd", "report", "-N", str(FLOOD)], runs,
       "kvmtrace analyze", "trace-cmd report -N")
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "flood.txt"
        with open(text, "wb") as out:
            subprocess.run(["trace-cmd", "report", "-N", str(FLOOD)], stdout=out, stderr=subprocess.DEVNULL, check=True)
        print(f"analyze of the text trace-cmd renders ({text.stat().st_size / 2**20:.0f} MB) vs trace-cmd rendering it")
        ab([*KVMTRACE, "analyze", "--no-cache", str(text)], ["trace-cmd", "report", "-N", str(FLOOD)], runs,
           "kvmtrace analyze flood.txt", "trace-cmd report -N (rendering)")
    print("streamed (--low-memory) vs whole analysis of the same file")
    ab([*KVMTRACE, "analyze", "--no-cache", "--low-memory", str(FLOOD)], [*KVMTRACE, "analyze", "--no-cache", str(FLOOD)],
       runs, "kvmtrace analyze --low-memory", "kvmtrace analyze")
    print("events vs analyze of the same file")
    ab([*KVMTRACE, "events", str(FLOOD)], [*KVMTRACE, "analyze", "--no-cache", str(FLOOD)], runs,
       "kvmtrace events", "kvmtrace analyze")
    print("start-up")
    ab([*KVMTRACE, "--help"], [sys.executable, "-c", "pass"], runs, "kvmtrace --help", "python3 -c pass")
    ab([*KVMTRACE, "events", "--help"], [sys.executable, "-c", "pass"], runs, "kvmtrace events --help", "python3 -c pass")
    for n in (4, 13, 40):
        with tempfile.TemporaryDirectory() as tmp:
            d = batch_dir(tmp, n)
            print(f"batch of {n} synthesized traces (40 ms each)")
            ab([*KVMTRACE, "analyze", "--no-cache", d], [*KVMTRACE, "analyze", "--no-cache", "--serial", d], runs,
               "analyze DIR (process pool)", "analyze DIR --serial")


if __name__ == "__main__":
    main()
