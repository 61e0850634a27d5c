"""``Analysis``: what ``kvmtrace analyze`` reports for one trace, and its ``--json`` document."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import numpy as np
import pandas as pd

from ..trace import Trace
from . import registry
from .base import FINDING_KINDS, Result
from .damage import Damage
from .exits import Exits
from .irqsoff import IrqsOff
from .rcu import Rcu
from .states import Confidence
from .ticks import Ticks

SCHEMA_VERSION = 1
R = TypeVar("R", bound=Result)


class ResultOf(Generic[R]):
    """An analyzer's result read as a typed attribute of an ``Analysis`` (``a.exits``)."""

    def __init__(self, name: str, kind: type[R]) -> None:
        self.name, self.kind = name, kind  # kind: the class the result is (what the attribute's type says)

    def __get__(self, analysis: "Analysis", owner: type | None = None) -> R:
        return cast(R, analysis.results[self.name])


class SameBuffers:
    """Which earlier trace of a batch or a compare side holds the same buffer as this one: the same
    events (``Analysis.fingerprint``), and no kernel releases that differ. A trace.dat knows its
    release where its text rendering may not, and two kernels can record the same events, as
    synthesized traces of one seed do, and still analyze differently (x86 tick accounting)."""

    def __init__(self) -> None:
        self._seen: dict[str, list[tuple[str | None, str]]] = {}

    def earlier(self, fingerprint: str, release: str | None, path: str) -> str | None:
        """The path of the earlier trace holding this buffer; None (and remembered) when it is new."""
        for known, earlier in self._seen.get(fingerprint, []):
            if known is None or release is None or known == release:
                return earlier
        self._seen.setdefault(fingerprint, []).append((release, path))
        return None


@dataclass(repr=False)
class Analysis:
    """Everything ``kvmtrace analyze`` reports for one trace."""

    trace: Trace
    verdict: dict[str, Any]
    results: dict[str, Result]
    findings: pd.DataFrame
    undecidable: list[dict[str, Any]] = field(default_factory=list)
    #: the release the kernel was analyzed as (``--kernel-release``, else the trace.dat's UNAME), or
    #: None: the tick accounting of x86 depends on it, so it also tells two buffers apart
    kernel_release: str | None = None

    def __repr__(self) -> str:
        found = ", ".join(f"{k} {c['proven']:,}/{c['inferred']:,}" for k, c in self.counts().items())
        return (f"<Analysis {self.trace.name}: verdict {self.verdict['verdict']} ({self.verdict['summary']}); "
                f"{len(self.runs):,} guest runs; findings proven/inferred: {found}>")

    @property
    def fingerprint(self) -> str:
        """What the same buffer gives in every format (trace.dat, any text rendering) and load (whole,
        selective, streamed): the events the analyses read, per type and CPU, and the guest runs. (Not
        timestamps: the kernel's text rounds them to µs, trace-cmd's truncates.) Batches and compare
        count a buffer seen twice once (``SameBuffers``)."""
        counts = self.trace.event_cpu_counts()
        read = registry.reads()
        key = repr(sorted((str(e), int(c), int(n)) for (e, c), n in counts.items() if e in read))
        return f"{self.trace.meta.events_read}:{len(self.runs)}:{hashlib.sha1(key.encode()).hexdigest()[:16]}"

    def frame(self, analyzer: str, name: str) -> pd.DataFrame:
        """One analyzer's DataFrame by name, e.g. ``frame("exits", "runs")`` (``a.exits.runs``)."""
        return self.results[analyzer].frames[name]

    #: each analyzer's typed result (its frames and metrics as attributes; see each class)
    exits = ResultOf("exits", Exits)
    irqsoff = ResultOf("irqsoff", IrqsOff)
    rcu = ResultOf("rcu", Rcu)
    ticks = ResultOf("ticks", Ticks)
    damage = ResultOf("damage", Damage)

    @property
    def runs(self) -> pd.DataFrame:
        """Every guest run (``a.exits.runs``; an empty frame without kvm events)."""
        runs = self.exits.runs
        return runs if runs is not None else pd.DataFrame()

    def counts(self) -> dict[str, dict[str, int]]:
        """Findings per kind and confidence."""
        out = {k: {str(c): 0 for c in Confidence} for k in FINDING_KINDS}
        for (k, c), n in self.findings.groupby(["kind", "confidence"]).size().items():
            out[k][c] = int(n)
        return out

    def to_json(self) -> dict[str, Any]:
        """The documented, stable ``--json`` schema (see README, "analyze --json")."""
        f = self.findings
        return {
            "schema": SCHEMA_VERSION,
            "trace": self.trace.path,
            "verdict": self.verdict["verdict"],
            "verdict_evidence": self.verdict["evidence"],
            "verdict_summary": self.verdict["summary"],
            "verdict_classes": self.verdict["classes"],
            "counts": self.counts(),
            "findings": [plain(r) for r in f.to_dict(orient="records")],
            "metrics": {name: plain(res.metrics) for name, res in self.results.items()},
            "undecidable": self.undecidable,
            "meta": plain(self.trace.meta.to_dict()),
        }


def plain(x: Any) -> Any:
    """JSON-safe copy: numpy scalars → Python, NaN/NA → None."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if x is pd.NA or x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return x
