"""Streaming: peak memory flat in trace size, and the same answer as an exact whole analysis.

    python3 benchmarks/bench_stream.py [COPIES] [--text]   # default 100 copies of ~1M events

Synthesizes a ~1M-event arm64 pre-fix nohz_full trace (trace.dat v6 and tracefs text), tiles it
(``_tile``: copies back to back in time) to 2 and COPIES copies, and runs ``kvmtrace analyze
--low-memory`` on each as a whole process, printing wall time and peak RSS (the kernel's
own accounting, ``wait4``). 1 and 2 copies are also analyzed whole (no streaming): every count
of COPIES copies must equal ``one + (COPIES - 1) * (two - one)``, which the benchmark checks.
Traces are written to a temporary folder and removed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tile import tile_dat, tile_text  # noqa: E402

EVENTS = 1_000_000
EVENTS_PER_SECOND_OF_TRACE = 132_500


def run(path: Path, *extra: str) -> tuple[dict, float, float]:
    """(counts, wall s, peak RSS MiB) of one ``kvmtrace analyze`` process (its text output: the
    ``--json`` document lists every finding, which is the output's size, not the analysis's)."""
    cmd = [sys.executable, "-m", "kvmtrace", "analyze", "--no-cache", "--findings", "0", *extra, str(path)]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return counts(out), time.perf_counter() - t, usage.ru_maxrss / 1024


def counts(out: str) -> dict:
    """What must scale exactly with the copies: events, guest runs, findings per kind and confidence."""
    got = {"events": int(re.search(r", ([\d,]+) events", out).group(1).replace(",", "")),
           "runs": int(re.search(r"^guest runs: ([\d,]+)", out, re.M).group(1).replace(",", ""))}
    for kind, proven, inferred in re.findall(r"^(\w+)\s+([\d,]+)\s+([\d,]+)$", out, re.M):
        got[f"{kind}.proven"], got[f"{kind}.inferred"] = int(proven.replace(",", "")), int(inferred.replace(",", ""))
    return got


def main() -> None:
    copies = int(next((a for a in sys.argv[1:] if a.isdigit()), 100))
    text = "--text" in sys.argv
    from kvmtrace.synth import Scenario, synth

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fmt = "tracefs" if text else "dat"
        src = Path(synth(Scenario(duration_ns=int(EVENTS / EVENTS_PER_SECOND_OF_TRACE * 1e9), seed=3), tmp,
                         name="src", formats=(fmt,))["paths"][fmt])
        tile = tile_text if text else tile_dat
        paths = {}
        for n in (1, 2, copies):
            paths[n] = tmp / f"x{n}{''.join(src.suffixes)}"
            tile(src, paths[n], n)
        whole = {n: run(paths[n])[0] for n in (1, 2)}
        want = {k: whole[1][k] + (copies - 1) * (whole[2][k] - whole[1][k]) for k in whole[1]}
        print(f"{fmt}: {whole[1]['events']:,} events per copy; kvmtrace analyze --low-memory, whole process")
        for n in (1, 2, copies):
            got, wall, rss = run(paths[n], "--low-memory")
            size = paths[n].stat().st_size / 2**20
            print(f"  {n:4d} copies  {got['events']:>13,} events  {size:9.0f} MiB file  {wall:8.1f} s  "
                  f"peak {rss:6.0f} MiB  ({rss * 2**20 / got['events']:.0f} B/event)")
            expect = whole[n] if n in whole else want
            if got != expect:
                print(f"    MISMATCH: {got} != {expect}")
                sys.exit(1)
        print(f"  every count of {copies} copies equals one + {copies - 1} x (two - one), streamed")


if __name__ == "__main__":
    main()
