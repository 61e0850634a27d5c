"""One side of a comparison: the analyses of one or more traces of the same kernel, pooled."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..analyzers import FINDING_KINDS, Analysis
from ..analyzers.analysis import SameBuffers

#: which analyzer decides each finding kind (its ``undecidable`` entries name the analyzer)
ANALYZER_OF = {"apparent_irqsoff": "irqsoff", "rcu_not_watching": "rcu", "misaccounted_tick": "ticks"}
#: what each kind's rate is counted out of
DENOMINATOR = {"apparent_irqsoff": "guest runs", "rcu_not_watching": "guest runs",
               "misaccounted_tick": "ticks on vCPU CPUs"}


@dataclass
class Side:
    """Pooled counts and samples of one side (``before`` or ``after``)."""

    label: str
    traces: list[str]
    entry_logic: list[str]                       # each trace's verdict
    runs: int
    ticks: int                                   # ticks on vCPU CPUs
    proven: dict[str, int]                       # per kind, over the traces that could decide it
    inferred: dict[str, int]
    denominators: dict[str, int]                 # guest runs / ticks of the traces that could decide
    decided: dict[str, int]                      # how many traces could decide each kind
    undecidable: dict[str, list[str]]            # kind → why some trace could not decide it
    irqsoff_ns: np.ndarray                       # every traced irqs-off window
    apparent_ns: np.ndarray                      # the apparent ones
    exits: pd.DataFrame                          # reason, host_ns (NA where unknown), guest_ns
    tick_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # per CPU, every trace
    #: exit reason → ticks due after the guest left but charged to it (by design, not a finding)
    host_to_guest: dict[str, int] = field(default_factory=dict)
    #: traces left out because an earlier trace of the side holds the same buffer (path → that trace)
    same_buffer: dict[str, str] = field(default_factory=dict)

    def denominator(self, kind: str) -> int:
        return self.denominators[kind]


@dataclass
class Part:
    """What one trace adds to a side: small enough to send back from a worker process."""

    path: str
    entry_logic: str
    runs: int
    ticks: int
    counts: dict[str, dict[str, int]]
    cannot: dict[str, str]                       # kind → why this trace cannot decide it
    irqsoff_ns: np.ndarray
    apparent_ns: np.ndarray
    exits: pd.DataFrame
    tick_rows: pd.DataFrame
    host_to_guest: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    kernel_release: str | None = None


def extract(a: Analysis) -> Part:
    """The parts of an analysis a comparison uses."""
    cannot = {}
    for u in a.undecidable:
        for kind, analyzer in ANALYZER_OF.items():
            if u["analysis"] == analyzer:
                cannot[kind] = f"needs {', '.join(u['missing'])}" if u["missing"] else u["what"]
    w = a.irqsoff.windows
    has_w = w is not None and len(w) > 0
    r = a.runs
    exits = pd.DataFrame({"reason": r["reason"].astype(str).to_numpy(), "host_ns": r["host_ns"].array,
                          "guest_ns": r["guest_ns"].to_numpy(np.int64)}) if len(r) else _no_exits()
    t = a.ticks.per_cpu
    return Part(
        path=a.trace.path, entry_logic=a.verdict["verdict"], runs=len(r),
        ticks=int(a.ticks.ticks_on_vcpu_cpus or 0), counts=a.counts(), cannot=cannot,
        irqsoff_ns=w["duration_ns"].to_numpy(np.int64) if w is not None and has_w else np.zeros(0, np.int64),
        apparent_ns=w.loc[(w["kind"] == "apparent").to_numpy(bool), "duration_ns"].to_numpy(np.int64) if w is not None and has_w
        else np.zeros(0, np.int64),
        exits=exits, tick_rows=t.assign(trace=a.trace.name) if t is not None and len(t) else pd.DataFrame(),
        host_to_guest=dict(a.ticks.host_time_charged_to_guest_by_exit),
        fingerprint=a.fingerprint, kernel_release=a.kernel_release)


def side(label: str, items: list[Analysis | Part]) -> Side:
    """Pool the traces of one kernel (analyses, or parts extracted from them) into a Side."""
    parts: list[Part] = []
    same: dict[str, str] = {}
    seen = SameBuffers()
    for p in (x if isinstance(x, Part) else extract(x) for x in items):
        earlier = seen.earlier(p.fingerprint, p.kernel_release, p.path)
        if earlier is not None:  # the same buffer in another format: pooled once
            same[p.path] = earlier
            continue
        parts.append(p)
    proven, inferred, denominators, decided = ({k: 0 for k in FINDING_KINDS} for _ in range(4))
    undecidable: dict[str, list[str]] = {}
    for p in parts:
        for k, c in p.counts.items():
            if k in p.cannot:  # a trace that cannot decide a kind adds nothing to its rate
                if p.cannot[k] not in undecidable.setdefault(k, []):
                    undecidable[k].append(p.cannot[k])
                continue
            proven[k] += c["proven"]
            inferred[k] += c["inferred"]
            denominators[k] += p.ticks if k == "misaccounted_tick" else p.runs
            decided[k] += 1
    exits = [p.exits for p in parts if len(p.exits)]
    ticks = [p.tick_rows for p in parts if len(p.tick_rows)]
    return Side(
        label=label, traces=[p.path for p in parts], entry_logic=[p.entry_logic for p in parts],
        runs=sum(p.runs for p in parts), ticks=sum(p.ticks for p in parts), proven=proven, inferred=inferred,
        denominators=denominators, decided=decided, undecidable=undecidable,
        irqsoff_ns=_cat([p.irqsoff_ns for p in parts]), apparent_ns=_cat([p.apparent_ns for p in parts]),
        exits=pd.concat(exits, ignore_index=True) if exits else _no_exits(),
        tick_rows=pd.concat(ticks, ignore_index=True) if ticks else pd.DataFrame(),
        host_to_guest=_summed([p.host_to_guest for p in parts]), same_buffer=same,
    )


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def _no_exits() -> pd.DataFrame:
    return pd.DataFrame({"reason": pd.Series(dtype=str), "host_ns": pd.Series(dtype="Int64"),
                         "guest_ns": pd.Series(dtype=np.int64)})


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
