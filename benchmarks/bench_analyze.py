"""Analysis cost vs load cost on a ~10M-event KVM trace.

Default: a synthesized arm64 pre-fix nohz_full trace (``kvmtrace.synth``, kernel text),
findings checked against its ground truth. ``--real``: the kernel's own text of the real
``arm64-6.1-prefix-nohzfull`` trace tiled in time (each copy shifted by whole seconds),
findings checked against 835 per copy. Prints load time, analysis time, their ratio
(the target: analysis <= 0.5x the load) and peak RSS, each measured in a fresh process, two ways:
as a notebook does (``kvmtrace.load``, then ``kvmtrace.analyze``, which decodes the fields it
reads) and as ``kvmtrace analyze`` does (a trace.dat's fields decoded while it is read, so they
count in the load; glibc keeping freed heap, as the command's entry point has it). Traces go to a temporary folder.

    python3 benchmarks/bench_analyze.py [EVENTS] [--real]
"""
from __future__ import annotations

import json
import lzma
import re
import resource
import subprocess
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


def synthesized(tmp: Path, events: int) -> tuple[list[Path], dict]:
    from kvmtrace.synth import Scenario, synth
    r = synth(Scenario(duration_ns=int(events / 132_500 * 1e9), seed=3), tmp, name="big", formats=("tracefs", "dat7"))
    return [Path(r["paths"]["tracefs"]), Path(r["paths"]["dat7"])], r["counts"]


def measure(path: Path, what: str, truth: dict) -> None:
    print(f"input     {what} ({path.name})")
    for how in ("notebook", "command"):
        out = subprocess.run([sys.executable, __file__, "--child", str(path), how], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"  {how:9s} {r['events']:,} events, {r['runs']:,} guest runs: load {r['load']:6.2f} s, "
              f"analyze {r['analyze']:6.2f} s, ratio analyze/load {r['analyze'] / r['load']:.2f} (target <= 0.5); "
              f"peak {r['rss_mb']:.0f} MB = {r['rss_mb'] * 2**20 / r['events']:.0f} bytes/event")
        # CPU seconds of every thread: the part of a wall time that is work, not the VM's memory
        print(f"            CPU user/sys: load {r['load_cpu'][0]:.2f}/{r['load_cpu'][1]:.2f} s, analyze "
              f"{r['analyze_cpu'][0]:.2f}/{r['analyze_cpu'][1]:.2f} s, ratio of user time "
              f"{r['analyze_cpu'][0] / r['load_cpu'][0]:.2f}")
        print(f"            findings rcu_not_watching {r['rcu_not_watching']:,} (expected {truth['rcu_not_watching']:,}), "
              f"apparent_irqsoff {r['apparent_irqsoff']:,}")


def child(path: str, how: str) -> None:
    """One measurement in this fresh process: JSON on the last line."""
    from kvmtrace.analyzers import Options, analyze, decoded
    from kvmtrace.loading import load
    from kvmtrace.memory import keep_freed_heap

    if how == "command":
        keep_freed_heap()  # as the command's entry point does

    def cpu() -> tuple[float, float]:
        use = resource.getrusage(resource.RUSAGE_SELF)
        return use.ru_utime, use.ru_stime

    t, c0 = time.perf_counter(), cpu()
    tr = kvmtrace.load(path) if how == "notebook" else load(path, decode_now=decoded())
    loaded, c1 = time.perf_counter() - t, cpu()
    t = time.perf_counter()
    a = analyze(tr, Options())
    analyzed, c2 = time.perf_counter() - t, cpu()
    c = a.counts()
    print(json.dumps({"events": tr.meta.events, "runs": len(a.runs), "load": loaded, "analyze": analyzed,
                      "load_cpu": [c1[0] - c0[0], c1[1] - c0[1]], "analyze_cpu": [c2[0] - c1[0], c2[1] - c1[1]],
                      "rcu_not_watching": c["rcu_not_watching"]["proven"],
                      "apparent_irqsoff": c["apparent_irqsoff"]["proven"],
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
        return
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    want = int(args[0]) if args else 10_000_000
    real = "--real" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        if real:
            path = Path(tmp) / "tiled.txt"
            copies = tile(path, want)
            measure(path, f"{copies} copies of {SRC.name}", {"rcu_not_watching": copies * 835})
        else:
            paths, truth = synthesized(Path(tmp), want)
            for p in paths:
                measure(p, "synthesized arm64 pre-fix nohz_full (seed 3)", truth)


if __name__ == "__main__":
    main()
