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
from .text import kernel_header, trace_cmd_line, tracefs_line
from .vcpu import Truth

#: output name → (suffix, line writer)
FORMATS = {
    "tracefs": ".tracefs.txt",
    "report": ".report.txt",          # trace-cmd report -N
    "report-t": ".report-t.txt",      # -N -t
    "report-l": ".report-l.txt",      # -N -l
    "report-tl": ".report-tl.txt",    # -N -t -l
    "dat": ".dat",                    # trace.dat v6
    "dat7": ".v7.dat",                # trace.dat v7, zstd
}

__all__ = ["Scenario", "FORMATS", "synth"]


def _line(fmt: str, e: Event, sc: Scenario) -> str:
    if fmt == "tracefs":
        return tracefs_line(e, sc)
    return trace_cmd_line(e, sc, latency="l" in fmt.split("-")[-1] and fmt != "report", ns="t" in fmt.split("-")[-1] and fmt != "report")


def synth(sc: Scenario, out_dir: str | Path, name: str | None = None,
          formats: tuple[str, ...] = ("tracefs", "report-tl")) -> dict[str, Any]:
    """Simulate ``sc`` and write each format plus ``NAME.truth.json``; return the paths and counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or f"{sc.variant}-{sc.kernel[0]}.{sc.kernel[1]}-seed{sc.seed}"
    bodies = {f: open(out / f"{name}{FORMATS[f]}.body", "w") for f in formats if not f.startswith("dat")}
    truth = Truth()
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
            dst.write(kernel_header(sc, n, cpus) if f == "tracefs" else f"cpus={cpus}\n")
            with open(out / f"{name}{FORMATS[f]}.body") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
        (out / f"{name}{FORMATS[f]}.body").unlink()
        paths[f] = str(final)
    doc = ground_truth(sc, truth, lost, n)
    tpath = out / f"{name}.truth.json"
    tpath.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    return {"paths": paths, "truth": str(tpath), "events": n, "ground_truth": doc}


def _seqs(evs: list[Event | None]) -> list[int] | None:
    """Evidence seq numbers, or None when an evidence event was not recorded."""
    if any(e is None or e.seq < 0 for e in evs):
        return None
    return [e.seq for e in evs]


def ground_truth(sc: Scenario, truth: Truth, lost: list[dict], events: int) -> dict[str, Any]:
    """The JSON document written beside a synthetic trace."""
    runs = [{"cpu": r["cpu"], "pid": r["pid"], "entry_seq": r["entry"].seq, "return_seq": r["return"].seq,
             "exit_seq": r["exit"].seq, "entry_ns": r["entry"].ts, "guest_end_ns": r["guest_end"],
             "exit_ns": r["exit"].ts,
             "reason": r["exit"].fields.get("reason") or (r["exit"].fields["ec_name"] if r["exit"].fields["ret"] == "TRAP" else r["exit"].fields["ret"])}
            for r in truth.runs if "exit" in r]
    bugs = []
    for b in truth.bugs:
        if b["kind"] == "apparent_irqsoff":
            evs = b["events"]
            bugs.append({"kind": b["kind"], "cpu": b["cpu"], "pid": b["pid"], "start_ns": evs[0].ts, "end_ns": evs[-1].ts,
                         "evidence_seq": _seqs(evs), "decidable": sc.preemptirq and _seqs(evs) is not None})
        else:
            h = b["events"][0]
            bugs.append({"kind": b["kind"], "cpu": b["cpu"], "pid": b["pid"], "start_ns": b["start_ev"].ts, "end_ns": h.ts,
                         "evidence_seq": _seqs([b["start_ev"], h]), "decidable": sc.rcu and _seqs([b["start_ev"], h]) is not None})
    ticks = []
    for t in truth.ticks:
        direction = None
        if t["accounted"] and t["due_in_guest"] != t["charged_guest"]:
            direction = "guest_as_host" if t["due_in_guest"] else "host_as_guest"
            ev = t["event"]
            bugs.append({"kind": "misaccounted_tick", "cpu": t["cpu"], "pid": ev.pid, "start_ns": t["due"], "end_ns": ev.ts,
                         "evidence_seq": _seqs([ev]), "direction": direction,
                         "decidable": sc.preemptirq and ev.seq >= 0})
        ticks.append({"cpu": t["cpu"], "due_ns": t["due"], "seq": t["event"].seq, "run": t["run"], "due_in_guest": t["due_in_guest"],
                      "charged_guest": t["charged_guest"], "taken": t["where"], "accounted_by_tick": t["accounted"],
                      "direction": direction})
    per_cpu = {}
    for c in sc.vcpu_cpus:
        mine = [t for t in ticks if t["cpu"] == c]
        per_cpu[str(c)] = {"mode": "nohz_full" if c in sc.nohz_full else "tick", "ticks": len(mine),
                           "expected_guest_ticks": sum(t["due_in_guest"] for t in mine),
                           "charged_guest_ticks": sum(t["charged_guest"] for t in mine)}
    return {
        "synthetic": True, "generator": "kvmtrace.synth", "scenario": sc.to_dict(),
        "entry_logic": "fixed" if sc.fixed else "pre-fix", "events": events, "runs": runs,
        "bugs": bugs, "counts": {k: sum(b["kind"] == k for b in bugs) for k in ("apparent_irqsoff", "rcu_not_watching", "misaccounted_tick")},
        "ticks": ticks, "per_cpu": per_cpu, "lost": lost,
    }
