"""One analysis: every registered analyzer collected from one model of the trace (or of each chunk),
then finished in dependency order, each result's findings settled as it finishes."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import progress, uname
from ..memory import give_back
from ..schema import concat
from ..trace import Trace
from . import damage, registry, verdict
from .analysis import Analysis
from .base import Context, Options, Result, Whole, no_findings
from .registry import finishing_order

#: the results that settle every other's findings, so they finish before any analyzer with findings
SETTLING = ("damage", "entry")


def collect(ctx: Context, report: bool = True) -> dict[str, Result]:
    """Every analyzer's part of one trace or one chunk of it (what ``finish`` puts together);
    ``report``: progress steps (a chunked analysis reports per chunk instead)."""
    stage = f"analyzing {ctx.trace.name}"
    collecting = [a for a in registry.REGISTRY if a.collect is not None]
    total, done = sum(a.cost for a in collecting), 0.0
    if report:
        progress.step(stage, 0.0)
    out = {}
    for a in collecting:
        out[a.name] = a.collect(ctx)  # type: ignore[misc]
        done += a.cost
        if report:
            progress.step(stage, done / total)
    return out


def finish(trace: Trace, options: Options, parts: list[dict[str, Any]]) -> Analysis:
    """One analysis from the parts of a trace: runs numbered, counts summed, whole-trace decisions.

    ``parts`` is consumed: each analyzer's parts are dropped once its whole result exists (and the
    heap they held given back), so a huge trace's parts and result are not all in memory at once."""
    whole = Whole(trace, options)
    for a in finishing_order(registry.REGISTRY):
        give_back()
        res = a.finish([p.pop(a.name) for p in parts] if a.collect is not None else [], whole)
        if len(res.findings):
            res.findings = _settled(res.findings, whole, a.name)
        whole.results[a.name] = res
    results = {a.name: whole.results[a.name] for a in registry.REGISTRY if a.reported}
    found = [r.findings for r in results.values() if len(r.findings)]
    findings = concat(found) if found else no_findings()
    if len(findings):  # a total order: chunks find the same things in another order
        _put_in_order(findings)
    undecidable = [u for r in results.values() for u in r.undecidable]
    return Analysis(trace, whole.results["verdict"].metrics, results, findings, undecidable,
                    uname.release_text(whole.release_given))


def _settled(findings: pd.DataFrame, whole: Whole, name: str) -> pd.DataFrame:
    """``findings`` with the proofs that damage in the trace, or the trace's other runs, take away
    made inferred (``damage.downgrade``, ``verdict.contradicted``)."""
    missing = [s for s in SETTLING if s not in whole.results]
    if missing:
        raise RuntimeError(f"analyzer {name} has findings but does not run after {missing}")
    damaged = whole.results["damage"].frames["damaged"]
    return verdict.contradicted(damage.downgrade(findings, damaged), whole.results["entry"].metrics)


def _put_in_order(findings: pd.DataFrame) -> None:
    """Sort ``findings`` in place by (start, kind, CPU, first two evidence seqs), one column at a
    time: a huge trace's findings are not copied whole while the analyzers' own are still held."""
    ev = pa.array(findings["evidence_seq"].array)
    kind = pd.Categorical(findings["kind"])
    rank = np.argsort(np.argsort(np.asarray(kind.categories, dtype=str)))  # kinds in name order
    order = np.lexsort((pc.list_element(ev, 1).to_numpy(zero_copy_only=False),
                        pc.list_element(ev, 0).to_numpy(zero_copy_only=False),
                        findings["cpu"].to_numpy(), rank[kind.codes], findings["start_ns"].to_numpy()))
    del ev, kind
    for c in findings.columns:
        findings[c] = findings[c].array.take(order)
