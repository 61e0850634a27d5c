"""One side of a comparison: the analyses of one or more traces of the same kernel, pooled."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..analyzers import FINDING_KINDS, Analysis

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

    def denominator(self, kind: str) -> int:
        return self.denominators[kind]


def side(label: str, analyses: list[Analysis]) -> Side:
    """Pool ``analyses`` (one kernel, one or more traces) into a Side."""
    proven, inferred, denominators, decided = ({k: 0 for k in FINDING_KINDS} for _ in range(4))
    undecidable: dict[str, list[str]] = {}
    irqsoff, apparent, exits, ticks = [], [], [], []
    n_ticks = 0
    for a in analyses:
        a_ticks = int(a.results["ticks"].metrics.get("ticks_on_vcpu_cpus") or 0)
        cannot = {}
        for u in a.undecidable:
            for kind, analyzer in ANALYZER_OF.items():
                if u["analysis"] == analyzer:
                    cannot[kind] = f"needs {', '.join(u['missing'])}" if u["missing"] else u["what"]
        for k, c in a.counts().items():
            if k in cannot:  # a trace that cannot decide a kind adds nothing to its rate
                undecidable.setdefault(k, [])
                if cannot[k] not in undecidable[k]:
                    undecidable[k].append(cannot[k])
                continue
            proven[k] += c["proven"]
            inferred[k] += c["inferred"]
            denominators[k] += a_ticks if k == "misaccounted_tick" else len(a.runs)
            decided[k] += 1
        w = a.results["irqsoff"].frames.get("windows")
        if w is not None and len(w):
            irqsoff.append(w["duration_ns"].to_numpy(np.int64))
            apparent.append(w.loc[(w["kind"] == "apparent").to_numpy(bool), "duration_ns"].to_numpy(np.int64))
        r = a.runs
        if len(r):
            exits.append(pd.DataFrame({"reason": r["reason"].astype(str).to_numpy(), "host_ns": r["host_ns"].array,
                                       "guest_ns": r["guest_ns"].to_numpy(np.int64)}))
        n_ticks += a_ticks
        t = a.results["ticks"].frames.get("per_cpu")
        if t is not None and len(t):
            ticks.append(t.assign(trace=a.trace.name))
    return Side(
        label=label, traces=[a.trace.path for a in analyses], entry_logic=[a.verdict["verdict"] for a in analyses],
        runs=sum(len(a.runs) for a in analyses), ticks=n_ticks, proven=proven, inferred=inferred,
        denominators=denominators, decided=decided, undecidable=undecidable, irqsoff_ns=_cat(irqsoff), apparent_ns=_cat(apparent),
        exits=pd.concat(exits, ignore_index=True) if exits else
        pd.DataFrame({"reason": pd.Series(dtype=str), "host_ns": pd.Series(dtype="Int64"), "guest_ns": pd.Series(dtype=np.int64)}),
        tick_rows=pd.concat(ticks, ignore_index=True) if ticks else pd.DataFrame(),
    )


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
