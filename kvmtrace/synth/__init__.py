"""Kernel-model trace synthesizer with ground truth (``kvmtrace synth``).

A simulator of the host side of KVM guest entry and exit along the kernel's code
paths (``vcpu.py``), writing the trace a real kernel would have written in the
chosen text formats, with a JSON ground-truth file beside it. Synthetic traces say
so in their ground truth; they are for learning and testing, not evidence.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .dat import DatWriter
from .emit import Event
from .scenario import Scenario
from .sim import number, simulate
from .text import kernel_header, perf_line, trace_cmd_line, tracefs_line
from .truth import TruthSink
from .vcpu import Truth

SMALL = 2_000_000      # return the parsed ground truth up to this many events
FLUSH_EVERY = 50_000   # write finished ground-truth records every this many events

#: output name → (suffix, line writer)
FORMATS = {
    "tracefs": ".tracefs.txt",
    "report-plugins": ".report-plugins.txt",  # plain trace-cmd report (libtraceevent plugins on)
    "report": ".report.txt",          # trace-cmd report -N
    "report-t": ".report-t.txt",      # -N -t
    "report-l": ".report-l.txt",      # -N -l
    "report-tl": ".report-tl.txt",    # -N -t -l
    "perf": ".perf-script.txt",       # perf script
    "perf-ns": ".perf-script-ns.txt", # perf script --ns
    "dat": ".dat",                    # trace.dat v6
    "dat7": ".v7.dat",                # trace.dat v7, zstd
}

__all__ = ["Scenario", "FORMATS", "synth"]


def _line(fmt: str, e: Event, sc: Scenario) -> str:
    if fmt == "tracefs":
        return tracefs_line(e, sc)
    if fmt.startswith("perf"):
        return perf_line(e, sc, ns=fmt == "perf-ns")
    if fmt == "report-plugins":
        return trace_cmd_line(e, sc, latency=False, ns=False, plugins=True)
    return trace_cmd_line(e, sc, latency="l" in fmt.split("-")[-1] and fmt != "report", ns="t" in fmt.split("-")[-1] and fmt != "report")


def synth(sc: Scenario, out_dir: str | Path, name: str | None = None,
          formats: tuple[str, ...] = ("tracefs", "report-tl")) -> dict[str, Any]:
    """Simulate ``sc`` and write each format plus ``NAME.truth.json``; return the paths and counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or f"{sc.variant}-{sc.kernel[0]}.{sc.kernel[1]}-seed{sc.seed}"
    bodies = {f: open(out / f"{name}{FORMATS[f]}.body", "w") for f in formats if not f.startswith("dat")}
    truth = Truth()
    sink = TruthSink(sc)
    lost: list[dict] = []
    n = 0
    cpus = max((*sc.vcpu_cpus, *sc.housekeeping_cpus)) + 1
    dats = {f: DatWriter(out / f"{name}{FORMATS[f]}", sc, cpus, 7 if f == "dat7" else 6) for f in formats if f.startswith("dat")}
    try:
        for e in number(simulate(sc, truth), sc, lost):
            for f, fh in bodies.items():
                fh.write(_line(f, e, sc))
            for d in dats.values():
                d.add(e)
            n += e.seq >= 0
            if n % FLUSH_EVERY == 0 and e.seq >= 0:
                sink.flush(truth, e.ts)
    finally:
        for fh in bodies.values():
            fh.close()
    paths = {}
    for f, d in dats.items():
        d.close()
        paths[f] = str(d.path)
    for f in bodies:
        final = out / f"{name}{FORMATS[f]}"
        with open(final, "w") as dst:
            dst.write(kernel_header(sc, n, cpus) if f == "tracefs" else "" if f.startswith("perf") else f"cpus={cpus}\n")
            with open(out / f"{name}{FORMATS[f]}.body") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
        (out / f"{name}{FORMATS[f]}.body").unlink()
        paths[f] = str(final)
    sink.flush(truth, None)
    tpath = out / f"{name}.truth.json"
    sink.write(tpath, n, lost)
    res: dict[str, Any] = {"paths": paths, "truth": str(tpath), "events": n, "counts": sink.counts,
                           "runs": sink.n["runs"], "entry_logic": "fixed" if sc.fixed else "pre-fix"}
    if n <= SMALL:  # small traces: the whole document, handy in tests and notebooks
        res["ground_truth"] = json.loads(tpath.read_text())
    return res
