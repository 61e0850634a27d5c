"""Analyzers: findings, metrics and DataFrames from a loaded trace.

``analyze(trace)`` runs them all on one shared model (``base.Context``): each
analyzer ``collect``s from the model of the trace (or of each chunk of a huge one)
and ``finish``es from the parts. Each analyzer module declares the events it needs
and, when they are missing, says what it could not decide and the ``trace-cmd
record`` line that would capture them.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import progress
from ..memory import give_back, map_big_allocations
from ..model.kernel import MODEL_EVENTS
from ..readers.select import Selection
from ..schema import concat
from ..trace import Trace
from . import damage, exits, irqsoff, rcu, ticks, verdict
from .base import FINDING_KINDS, Context, Options, Result, Whole, by_cpu, no_findings

SCHEMA_VERSION = 1
__all__ = ["Analysis", "Options", "analyze", "load_and_analyze", "FINDING_KINDS"]


@dataclass(repr=False)
class Analysis:
    """Everything ``kvmtrace analyze`` reports for one trace."""

    trace: Trace
    verdict: dict[str, Any]
    results: dict[str, Result]
    findings: pd.DataFrame
    undecidable: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        found = ", ".join(f"{k} {c['proven']:,}/{c['inferred']:,}" for k, c in self.counts().items())
        return (f"<Analysis {self.trace.name}: verdict {self.verdict['verdict']} ({self.verdict['summary']}); "
                f"{len(self.runs):,} guest runs; findings proven/inferred: {found}>")

    @property
    def fingerprint(self) -> str:
        """What the same buffer gives in every format (trace.dat, any text rendering) and load (whole,
        selective, streamed): the events the analyses read, per type and CPU, and the guest runs. (Not
        timestamps: the kernel's text rounds them to µs, trace-cmd's truncates.) Batches and compare
        count a buffer seen twice once."""
        counts = self.trace.event_cpu_counts()
        key = repr(sorted((str(e), int(c), int(n)) for (e, c), n in counts.items() if e in MODEL_EVENTS))
        return f"{self.trace.meta.events_read}:{len(self.runs)}:{hashlib.sha1(key.encode()).hexdigest()[:16]}"

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
            "verdict_summary": self.verdict["summary"],
            "verdict_classes": self.verdict["classes"],
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


#: events per chunk when ``Options.low_memory`` names no size: the model of 1M events takes ~0.3 GB
LOW_MEMORY_CHUNK = 1_000_000
#: a streamed trace of about this many events or more has glibc map its pieces' arrays, so each goes
#: back to the system when freed: ~12% less peak at 100M events, for ~1.3x the time (1.5x at 3.5M)
MAPPED_FROM_EVENTS = 30_000_000


def load_and_analyze(path: str, options: Options | None = None, cache: bool = False,
                     cache_dir: str | None = None) -> Analysis:
    """Load one trace the way ``options`` say and analyze it: what every command does with each trace.

    ``low_memory``, or a trace too big for the memory available (``streams``), is streamed: read a
    chunk at a time straight into the chunked analysis, keeping only what the analyzers read,
    so memory stays flat in trace size (``chunked.collect_stream``). The result is the same.
    """
    from ..trace import load, stream

    options = options or Options()
    events = estimated_events(path)
    if options.low_memory or _beyond_memory(events):
        from .chunked import collect_stream

        if events >= MAPPED_FROM_EVENTS:
            map_big_allocations()
        pieces = stream(path, selection().everything(), options.chunk_events or LOW_MEMORY_CHUNK)
        parts, whole = collect_stream((options.restrict(p) for p in pieces), options)
        _say_restricted(whole, options)
        return finish(whole, options, parts)
    tr = options.restrict(load(path, cache=cache, cache_dir=cache_dir))
    _say_restricted(tr, options)
    return analyze(tr, options)


def _say_restricted(tr: Trace, options: Options) -> None:
    said = options.restriction()
    if said and said not in tr.meta.warnings:
        tr.meta.warnings.append(said)


#: peak bytes per event of a whole (unstreamed) analysis, and events per byte of file, by kind
_PEAK_PER_EVENT = 300
_FILE_BYTES_PER_EVENT = {"text": 90, "trace.dat": 40}
_COMPRESSION_RATIO = 8  # a compressed file's events per byte is taken this many times larger


def streams(path: str, available: int | None = None) -> bool:
    """Whether a whole analysis of ``path`` would likely not fit in half the memory available, so the
    trace is streamed instead (an estimate from the file size; ``--low-memory`` forces it)."""
    return _beyond_memory(estimated_events(path), available)


def _beyond_memory(events: float, available: int | None = None) -> bool:
    """Whether a whole analysis of about ``events`` events would need more than half of ``available``
    (default: MemAvailable)."""
    available = available if available is not None else _available_memory()
    return available is not None and events * _PEAK_PER_EVENT > available // 2


def estimated_events(path: str) -> float:
    """About how many events ``path`` holds, from its size and kind (0 when it cannot be sniffed:
    the reader reports that, with its reason)."""
    import os

    from ..readers.compression import read_head
    from ..readers.sniff import sniff_binary

    try:
        size = os.path.getsize(path)
        head, compression = read_head(path)
        kind = "trace.dat" if sniff_binary(path, head) == "trace.dat" else "text"
    except Exception:
        return 0.0
    per_byte = 1 / _FILE_BYTES_PER_EVENT[kind]
    if compression or _v7_compressed(head):
        per_byte *= _COMPRESSION_RATIO
    return size * per_byte


def _v7_compressed(head: bytes) -> bool:
    """A trace.dat v7 whose flyrecord data is compressed (the compression name follows the header)."""
    return head[:10] == b"\x17\x08\x44tracing" and head[10:12] == b"7\x00" and any(
        name in head[:200] for name in (b"zstd", b"zlib"))


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (bytes), or None where there is none."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def analyze(trace: Trace, options: Options | None = None, chunk_events: int | None = None) -> Analysis:
    """Run every analyzer on ``trace``.

    With ``chunk_events`` (else ``options.chunk_events``, else 1M with ``options.low_memory``),
    the model is built for about that many events at a time (``analyzers.chunked``): memory
    for the trace's events table plus one chunk's model, and the same result as the whole
    trace at once.
    """
    options = options or Options()
    chunk_events = chunk_events or options.chunk_events or (LOW_MEMORY_CHUNK if options.low_memory else None)
    if chunk_events:
        from .chunked import collect_chunks

        parts = collect_chunks(trace, options, chunk_events)
    else:
        parts = [collect(Context(trace, options))]
    return finish(trace, options, parts)


def collect(ctx: Context, report: bool = True) -> dict[str, Any]:
    """Every analyzer's part of one trace or one chunk of it (what ``finish`` puts together);
    ``report``: progress steps (a chunked analysis reports per chunk instead)."""
    stage = f"analyzing {ctx.trace.name}"

    def step(x: float) -> None:
        if report:
            progress.step(stage, x)
    step(0.0)
    out: dict[str, Any] = {"exits": exits.collect(ctx)}  # builds the timeline and the guest runs: most of the work
    step(0.6)
    out["irqsoff"] = irqsoff.collect(ctx)
    step(0.75)
    out["rcu"] = rcu.collect(ctx)
    step(0.9)
    out["ticks"] = ticks.collect(ctx)
    out["verdict"] = verdict.collect(ctx)
    out["damage"] = damage.collect(ctx)
    step(1.0)
    return out


def finish(trace: Trace, options: Options, parts: list[dict[str, Any]]) -> Analysis:
    """One analysis from the parts of a trace: runs numbered, counts summed, whole-trace decisions.

    ``parts`` is consumed: each analyzer's parts are dropped once its whole result exists, so a huge
    trace's parts and result are not all in memory at once."""
    res = {"exits": exits.finish(_taken(parts, "exits"), trace)}
    whole = Whole(trace, options, res["exits"].frames.get("runs", pd.DataFrame(columns=["run", "entry_seq"])),
                  by_cpu([p["rcu"].frames.pop("guest_eqs", None) for p in parts]))
    res["irqsoff"] = irqsoff.finish(_taken(parts, "irqsoff"), whole)
    apparent = res["irqsoff"].metrics.get("runs_in_apparent_windows")
    seen = verdict.merge(_taken(parts, "verdict"))
    # without RCU events the RCU findings are exposure, kept only where the entry logic is not known fixed
    res["rcu"] = rcu.finish(_taken(parts, "rcu"), whole, verdict.entry_logic(seen, apparent))
    res["ticks"] = ticks.finish(_taken(parts, "ticks"), whole)
    res["damage"] = damage.finish(_taken(parts, "damage"), trace.meta)
    for r in res.values():
        r.findings = verdict.contradicted(damage.downgrade(r.findings, res["damage"].frames["damaged"]), seen)
    proven = {r.name: int((r.findings["confidence"] == "proven").sum()) if len(r.findings) else 0 for r in res.values()}
    res["ticks"].metrics["misaccounted_proven"] = proven["ticks"]
    v = verdict.decide(seen, None if apparent is None else proven["irqsoff"], {"proven": proven["rcu"],
                       "metrics": res["rcu"].metrics}, res["ticks"].metrics,
                       int(res["irqsoff"].metrics.get("unresolved_callers") or 0))
    found = [r.findings for r in res.values() if len(r.findings)]
    findings = concat(found) if found else no_findings()
    if len(findings):  # a total order: chunks find the same things in another order
        _put_in_order(findings)
    undecidable = [u for r in res.values() for u in r.undecidable]
    return Analysis(trace, v, res, findings, undecidable)


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


def _taken(parts: list[dict[str, Any]], name: str) -> list[Any]:
    """Every part's result of one analyzer, removed from the parts (see ``finish``); the heap the
    previous analyzer's parts held is given back first."""
    give_back()
    return [p.pop(name) for p in parts]


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
