"""Analyzers: findings, metrics and DataFrames from a loaded trace.

``analyze(trace)`` runs them all on one shared model (``base.Context``). Each
analyzer module declares the events it needs and, when they are missing, says
what it could not decide and the ``trace-cmd record`` line that would capture them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import progress
from ..model.kernel import MODEL_EVENTS
from ..readers.select import Selection
from ..trace import Trace
from . import exits, irqsoff, rcu, ticks, verdict
from .base import FINDING_COLUMNS, FINDING_KINDS, Context, Options, Result

SCHEMA_VERSION = 1
__all__ = ["Analysis", "Options", "analyze", "FINDING_KINDS"]


@dataclass
class Analysis:
    """Everything ``kvmtrace analyze`` reports for one trace."""

    trace: Trace
    verdict: dict[str, Any]
    results: dict[str, Result]
    findings: pd.DataFrame
    undecidable: list[dict[str, Any]] = field(default_factory=list)

    def frame(self, analyzer: str, name: str) -> pd.DataFrame:
        """One analyzer's DataFrame, e.g. ``frame("exits", "runs")``."""
        return self.results[analyzer].frames[name]

    @property
    def runs(self) -> pd.DataFrame:
        return self.results["exits"].frames.get("runs", pd.DataFrame())

    def counts(self) -> dict[str, dict[str, int]]:
        """Findings per kind and confidence."""
        out = {k: {"proven": 0, "inferred": 0} for k in FINDING_KINDS}
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
            "counts": self.counts(),
            "findings": [plain(r) for r in f.to_dict(orient="records")],
            "metrics": {name: plain(res.metrics) for name, res in self.results.items()},
            "undecidable": self.undecidable,
            "meta": plain(self.trace.meta.to_dict()),
        }


def selection() -> Selection:
    """What the analyzers read: load a huge trace with ``kvmtrace.load(path, select=selection())``.

    The guest's return is then the first *kept* host event after the entry path:
    the same as a full load whenever preemptirq or rcu events are recorded (they
    are the first host events after the guest on every kernel we know).
    """
    from ..model.timeline import NEEDED

    fields = {**{k: tuple(v) for k, v in NEEDED.items()},
              "kvm_exit": ("exit_type", "esr_ec", "esr_ec_class", "reason"), "hrtimer_start": ("function", "expires"),
              "tick_stop": ()}
    return Selection(MODEL_EVENTS, fields)


def analyze(trace: Trace, options: Options | None = None) -> Analysis:
    """Run every analyzer on ``trace``."""
    ctx = Context(trace, options)
    stage = f"analyzing {trace.name}"
    progress.step(stage, 0.0)
    res = {"exits": exits.analyze(ctx)}  # builds the timeline and the guest runs: most of the work
    progress.step(stage, 0.6)
    res["irqsoff"] = irqsoff.analyze(ctx)
    progress.step(stage, 0.75)
    apparent = res["irqsoff"].metrics.get("runs_in_apparent_windows")
    # RCU findings need the verdict only for the no-RCU-events fallback: decide on what is known first
    pre = verdict.decide(ctx, apparent, None)
    res["rcu"] = rcu.analyze(ctx, pre["verdict"])
    progress.step(stage, 0.9)
    proven_rcu = int((res["rcu"].findings["confidence"] == "proven").sum())
    v = verdict.decide(ctx, apparent, proven_rcu)
    res["ticks"] = ticks.analyze(ctx)
    progress.step(stage, 1.0)
    parts = [r.findings for r in res.values() if len(r.findings)]
    findings = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FINDING_COLUMNS)
    findings = findings.sort_values(["start_ns", "kind"], kind="stable").reset_index(drop=True)
    undecidable = [u for r in res.values() for u in r.undecidable]
    return Analysis(trace, v, res, findings, undecidable)


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
