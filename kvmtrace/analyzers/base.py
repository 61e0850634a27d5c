"""The analyzer protocol: what every analyzer declares and returns, and the shared, lazily built
model of one trace (``Context``) and of the whole trace when finishing (``Whole``)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..model import irqsoff, rcu, runs, timeline
from ..model.kernel import RECORD_EVENTS
from ..schema import concat, placed
from ..seqindex import SeqIndex
from ..trace import Trace
from .states import Confidence

FINDING_KINDS = ("apparent_irqsoff", "rcu_not_watching", "misaccounted_tick")
FINDING_COLUMNS = ["kind", "confidence", "cpu", "pid", "comm", "start_ns", "end_ns", "evidence_seq", "detail", "why"]
#: a finding's kind and confidence: fixed categories, so every part's findings concatenate as one
KIND = pd.CategoricalDtype(list(FINDING_KINDS))
CONFIDENCE = pd.CategoricalDtype([str(c) for c in Confidence])


@dataclass
class Options:
    """User-tunable analysis settings."""

    irqsoff_threshold_ns: int = 100_000
    #: keep only the events the analyzers read when loading (``load_and_analyze``; never cached)
    low_memory: bool = False
    #: build the model this many events at a time (same result; default 1M with ``low_memory``)
    chunk_events: int | None = None
    #: the traced kernel's release (``uname -r``): overrides the trace.dat's UNAME; x86 tick
    #: accounting is decided from it (docs/kernel.md F)
    kernel_release: str | None = None
    #: analyze only these CPUs, and only events within [start_ns, end_ns] (trace timestamps)
    cpus: tuple[int, ...] | None = None
    start_ns: int | None = None
    end_ns: int | None = None

    def restrict(self, trace: Trace) -> Trace:
        """``trace`` as these options restrict it (``Trace.only``)."""
        return trace.only(self.cpus, self.start_ns, self.end_ns)

    def restriction(self) -> str | None:
        """What the restriction keeps, in words for the trace's warnings; None without one."""
        parts = [f"CPUs {', '.join(map(str, self.cpus))}"] if self.cpus is not None else []
        if self.start_ns is not None or self.end_ns is not None:
            lo = "start" if self.start_ns is None else f"{self.start_ns / 1e9:.6f} s"
            hi = "end" if self.end_ns is None else f"{self.end_ns / 1e9:.6f} s"
            parts.append(f"{lo} to {hi}")
        return f"analysis restricted to {' and '.join(parts)} (--cpu/--start/--end)" if parts else None


@dataclass
class Result:
    """One analyzer's output: DataFrames for notebooks, metrics for JSON, findings, gaps."""

    name: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    findings: pd.DataFrame = field(default_factory=lambda: no_findings())
    undecidable: list[dict[str, Any]] = field(default_factory=list)

    def cannot_decide(self, what: str, missing: list[str], groups: list[str], record: str | None = None) -> None:
        """Record that ``what`` needs events the trace lacks, with the record line that captures them
        (or, where the events are there but too few, ``record``: what would help instead)."""
        self.undecidable.append({"analysis": self.name, "what": what, "missing": missing,
                                 "record": record or "trace-cmd record " + " ".join(RECORD_EVENTS[g] for g in groups)})


T = TypeVar("T")


class Metric(Generic[T]):
    """One of a result's metrics read as a typed attribute (``metrics`` stays the ``--json``
    document); ``default`` where the analysis could not compute it."""

    def __init__(self, default: T, key: str | None = None) -> None:
        self.default, self.key = default, key

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = self.key or name

    def __get__(self, result: Result | None, owner: type | None = None) -> T:
        if result is None or self.key not in result.metrics:
            return copy.copy(self.default)  # a list or dict default is never shared
        return result.metrics[self.key]


class Frame:
    """One of a result's frames read as an attribute: None where the analysis could not make it
    (the events it needs are missing)."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = self.key or name

    def __get__(self, result: Result | None, owner: type | None = None) -> pd.DataFrame | None:
        return None if result is None else result.frames.get(self.key)  # type: ignore[arg-type]


def _strings(part: Any, n: int) -> pa.Array:
    """A per-finding text column (or a constant spread to ``n`` rows) as an Arrow string array."""
    if isinstance(part, str):
        return pa.array(np.broadcast_to(np.array(part, dtype=object), (n,)), pa.string())
    if isinstance(part, pa.Array):
        return part.cast(pa.string())
    if isinstance(part, (pd.Categorical, pd.Series)) and isinstance(getattr(part, "dtype", None), pd.CategoricalDtype):
        return pc.fill_null(pa.array(part).cast(pa.string()), "?")
    arr = np.asarray(part)
    if arr.dtype.kind in "iuf":
        return pa.array(arr).cast(pa.string())
    return pa.array(arr.astype(object), pa.string())


def text(*parts: Any) -> pd.Categorical:
    """Per-finding text joined from constants and per-row parts, as a categorical. With one
    categorical part (a caller, a task name) each of its few names is joined once; else the rows
    are joined in Arrow, never one Python string per row."""
    rows = [p for p in parts if not isinstance(p, str)]
    n = max((len(p) for p in rows), default=1)
    if len(rows) == 1 and isinstance(getattr(rows[0], "dtype", None), pd.CategoricalDtype):
        one = pd.Categorical(rows[0])
        names = ["".join(p if isinstance(p, str) else str(name) for p in parts) for name in [*one.categories, "?"]]
        unique = list(dict.fromkeys(names))
        place = np.array([unique.index(x) for x in names], np.int32)
        return pd.Categorical.from_codes(place[one.codes], unique)  # code −1 (no name) reads the last: "?", as ``_strings`` says
    return labels(pc.binary_join_element_wise(*(p if isinstance(p, str) else _strings(p, n) for p in parts), ""), n)


def findings_frame(kind: str, confidence: Any, cpu: Any, pid: Any, comm: Any, start: Any, end: Any,
                   evidence: np.ndarray, detail: Any, why: Any) -> pd.DataFrame:
    """Findings in the common column layout; ``evidence`` is (findings × events) seq numbers."""
    ev = np.asarray(evidence, dtype=np.int64)
    n = len(ev)
    width = ev.shape[1] if ev.ndim == 2 else 0
    seqs = pa.FixedSizeListArray.from_arrays(pa.array(ev.ravel()), width).cast(pa.list_(pa.int64())) if width \
        else pa.array([[]] * n, pa.list_(pa.int64()))

    return pd.DataFrame({
        "kind": labels(kind, n, KIND), "confidence": labels(confidence, n, CONFIDENCE),
        "cpu": np.asarray(cpu, dtype=np.int64), "pid": np.asarray(pid, dtype=np.int64),
        "comm": comm if isinstance(comm, pd.Categorical) else np.asarray(comm, dtype=object),
        "start_ns": np.asarray(start, dtype=np.int64), "end_ns": np.asarray(end, dtype=np.int64),
        "evidence_seq": pd.arrays.ArrowExtensionArray(seqs),
        "detail": labels(detail, n), "why": labels(why, n),
    }, columns=FINDING_COLUMNS)


def no_findings() -> pd.DataFrame:
    """The findings frame of no findings, with the columns' types."""
    none = np.zeros(0, np.int64)
    return findings_frame(FINDING_KINDS[0], Confidence.PROVEN, none, none, pd.Categorical([]), none, none, np.zeros((0, 0)), "", "")


def choose(default: str, *cases: tuple[Any, str]) -> pd.Categorical:
    """Per finding, the text of the first ``(mask, text)`` case whose mask holds, else ``default``
    (``np.select``'s rule), as codes into those few texts: ``np.where`` on strings would make a
    fixed-width string per finding, hundreds of megabytes for a big trace's findings."""
    texts = list(dict.fromkeys([str(default), *(str(t) for _m, t in cases)]))
    n = len(cases[0][0]) if cases else 0
    code = np.full(n, texts.index(str(default)), np.int8)
    for mask, t in reversed(cases):
        code[np.asarray(mask, bool)] = texts.index(str(t))
    return pd.Categorical.from_codes(code, texts)


def labels(x: Any, n: int, dtype: pd.CategoricalDtype | None = None) -> pd.Categorical:
    """A per-finding text column as a categorical: a million findings share a handful of texts,
    and one Python or Arrow string per row would be most of a huge trace's result."""
    if isinstance(x, str):  # one text for every finding
        cats = [str(x)] if n else []
        out = pd.Categorical.from_codes(np.zeros(n, np.int8), cats)
    elif isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
        out = _recoded(pd.Categorical(x))
        cats = list(out.categories)
    else:
        codes = _strings(x, n).dictionary_encode()
        cats = codes.dictionary.to_pylist()
        out = pd.Categorical.from_codes(codes.indices.to_numpy(zero_copy_only=False).astype(np.int32), cats)
    if dtype is None:
        return out
    unknown = set(cats) - set(dtype.categories)
    if unknown:  # set_categories would turn them into NA without a word
        raise ValueError(f"not one of {list(dtype.categories)}: {sorted(unknown)}")
    return out.set_categories(dtype.categories)


def _recoded(cat: pd.Categorical) -> pd.Categorical:
    """``cat`` as ``labels`` makes any text column: its texts as strings, in the order they first
    appear, NA as "?" (as ``_strings`` fills it); by codes, never a string per row."""
    names = [str(c) for c in cat.categories] + ["?"]
    codes = np.where(cat.codes >= 0, cat.codes, len(names) - 1)
    present, first = np.unique(codes, return_index=True)
    seen = present[np.argsort(first)]
    unique = list(dict.fromkeys(names[k] for k in seen))
    place = np.full(len(names), -1, np.int32)
    place[seen] = [unique.index(names[k]) for k in seen]
    return pd.Categorical.from_codes(place[codes], unique)


def made_inferred(findings: pd.DataFrame, hit: np.ndarray, why: str) -> pd.DataFrame:
    """``findings`` with the proven ones where ``hit`` made inferred, ``why`` added to their reasons:
    what every rule that takes a proof away does (damage, a contradiction in the trace)."""
    hit = hit & (findings["confidence"] == Confidence.PROVEN).to_numpy(bool)
    if not hit.any():
        return findings
    out = findings.copy()
    conf = out["confidence"].astype(CONFIDENCE).cat.codes.to_numpy().copy()
    conf[hit] = CONFIDENCE.categories.get_loc(Confidence.INFERRED)
    out["confidence"] = pd.Categorical.from_codes(conf, dtype=CONFIDENCE)
    old = pd.Categorical(out["why"])
    cats = list(old.categories) + [f"{w}; {why}" if w else why for w in old.categories]
    place = {c: i for i, c in enumerate(dict.fromkeys(cats))}  # each text's place among the unique ones
    unique = list(place)
    where = np.array([place[c] for c in cats], np.int32)
    codes = old.codes.astype(np.int32)
    codes[hit] += len(old.categories)
    out["why"] = pd.Categorical.from_codes(where[codes], unique)
    return out


#: event → the fields of it that are decoded (empty: the event alone)
Needs = Mapping[str, tuple[str, ...]]


def needs(*parts: Needs) -> dict[str, tuple[str, ...]]:
    """The union of several declarations of what is read (the fields of an event united)."""
    out: dict[str, tuple[str, ...]] = {}
    for part in parts:
        for event, fields in part.items():
            out[event] = tuple(dict.fromkeys((*out.get(event, ()), *fields)))
    return out


#: what the shared model reads for every analyzer: the timeline and the guest runs
MODEL_NEEDS = needs(timeline.READS, runs.READS)
#: what finishing reads of the whole trace: where busy tasks stop the tick (``nohz_full_cpus``)
NOHZ_NEEDS: Needs = {"tick_stop": ()}


@dataclass(frozen=True)
class Analyzer:
    """One analysis, as the registry (``analyzers/registry.py``) lists it.

    ``collect`` runs on the model of the trace or of each chunk of it (None: nothing to collect);
    ``finish`` puts the parts together once the analyzers named in ``after`` have finished (their
    results are in ``whole.results``). ``needs``: every event and field it reads, the model's
    included; a selective load keeps exactly the union of these events, and a selective or
    streamed load decodes their fields while reading. ``reported``: its
    result is one of ``Analysis.results`` and its metrics are in ``--json``; ``cost``: its share of
    a collect's progress."""

    name: str
    description: str
    needs: Needs
    finish: Callable[[list["Result"], "Whole"], "Result"]
    collect: Callable[["Context"], "Result"] | None = None
    after: tuple[str, ...] = ()
    reported: bool = True
    cost: float = 1.0


class Context:
    """One trace (or one chunk of it) and the model pieces analyzers share, each built once on first use.

    ``whole_step``: when this is a chunk of a trace, the RCU counter step of the whole trace (as a
    1-tuple: ``(None,)`` when the whole trace shows none); else the chunk's own is used.
    """

    def __init__(self, trace: Trace, options: Options | None = None,
                 whole_step: tuple[int | None] | None = None) -> None:
        self.trace = trace
        self.options = options or Options()
        self._whole_step = whole_step

    def has_any(self, *names: str) -> bool:
        return any(n in self.tl.present for n in names)

    @cached_property
    def tl(self) -> timeline.Timeline:
        return timeline.build(self.trace)

    @cached_property
    def runs(self) -> runs.Runs:
        return runs.pair(self.trace, self.tl) if self.has_any("kvm_entry") and self.has_any("kvm_exit") \
            else runs.Runs(pd.DataFrame(columns=["run", "cpu", "pid", "reason", "entry_seq"]), *(np.zeros(0, np.int64),) * 3)

    @cached_property
    def windows(self) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame]:
        return irqsoff.windows(self.tl)

    @cached_property
    def eqs(self) -> tuple[pd.DataFrame, dict[str, int]]:
        return rcu.quiescent_states(self.tl)

    @cached_property
    def counter_step(self) -> int | None:
        return rcu.counter_step(self.tl) if self._whole_step is None else self._whole_step[0]

    @cached_property
    def guest_eqs(self) -> pd.DataFrame:
        """Task-level EQS entered by a vCPU thread inside one of its guest runs; ``run`` is the run's
        key (``Runs.key``), −1 for a run that a lost-events gap broke (``broken_run``)."""
        q, _ = self.eqs
        r = self.runs
        sp = q["stop_pos"].to_numpy() if len(q) else np.zeros(0, np.int64)
        run, broken = self._inside_run(sp, r.entry_pos, r.exit_pos), self._inside_run(sp, r.broken_entry_pos, r.broken_exit_pos)
        ok = (run >= 0) | (broken >= 0)
        return q[ok].assign(run=r.key(run[ok]), broken_run=(run[ok] < 0))

    def _inside_run(self, pos: np.ndarray, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
        """Index of the run (by ``entry``/``exit_`` positions) each position of a vCPU thread falls in, else −1."""
        k = timeline.containing(self.tl, entry, exit_, pos)
        return np.where((k >= 0) & (self.tl.pid[pos] == self.tl.pid[entry[np.maximum(k, 0)]]), k, -1) if len(entry) else k


@dataclass
class Whole:
    """What finishing an analysis needs from the whole trace once every part is collected: the
    trace (its meta, and the events streamed whole for finishing), and the results of the
    analyzers finished so far."""

    trace: Trace
    options: Options
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def runs(self) -> pd.DataFrame:
        """Every guest run, ``run`` numbered in (cpu, entry) order (the exits analyzer's)."""
        got = self.results["exits"].frames.get("runs")
        return got if got is not None else pd.DataFrame({"run": np.zeros(0, np.int64), "entry_seq": np.zeros(0, np.int64)})

    @property
    def release_given(self) -> str | None:
        """The kernel's release as the analysis was given it: ``--kernel-release``, else the
        trace.dat's UNAME line; None when neither says."""
        return self.options.kernel_release or self.trace.meta.kernel.get("uname")

    @cached_property
    def nohz_full_cpus(self) -> dict[int, str]:
        """CPUs with context tracking for guests (from the RCU analyzer's guest quiescent states)."""
        eqs = self.results["rcu"].frames.get("guest_eqs")
        return nohz_full_cpus(eqs if eqs is not None else pd.DataFrame({"cpu": np.zeros(0, np.int32)}), self.trace)

    @cached_property
    def _run_by_key(self) -> SeqIndex:
        return SeqIndex(self.runs["entry_seq"].to_numpy(np.int64), self.runs["run"].to_numpy(np.int64))

    def run_of(self, keys: Any) -> np.ndarray:
        """Run numbers of run keys (kvm_entry seqs); −1 stays −1."""
        return self._run_by_key[np.asarray(keys, dtype=np.int64)]


def nohz_full_cpus(guest_eqs: pd.DataFrame, trace: Trace) -> dict[int, str]:
    """CPUs with context tracking for guests, and why we think so."""
    out = {int(c): "the vCPU thread enters an RCU quiescent state around the guest" for c in guest_eqs["cpu"].unique()} \
        if len(guest_eqs) else {}
    if trace.has("tick_stop"):
        t = trace.df("tick_stop", [])
        for c in t.loc[t["pid"] != 0, "cpu"].unique():
            out.setdefault(int(c), "a busy task stops the tick there (tick_stop)")
    return out


def by_cpu(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    """Parts' rows as one frame in the model's order: each part owns consecutive stretches of
    every CPU, so each CPU's stretches in part order put them back in (cpu, trace order).

    ``frames`` is consumed (``schema.placed``): pass the parts' frames popped from them, and a huge
    trace's frame is never in memory twice."""
    parts = [f for f in frames if f is not None and len(f)]
    if not parts or "cpu" not in parts[0].columns:
        return concat(frames)
    frames.clear()
    pieces = []  # (cpu, part, start, end) of every stretch of one CPU in one part
    for i, f in enumerate(parts):
        cpu = f["cpu"].to_numpy()
        pieces += [(int(cpu[s]), i, int(s), int(e)) for s, e in zip(*timeline.stretches(cpu))]
    del f, cpu
    pieces.sort()
    return placed(parts, [(i, s, e) for _, i, s, e in pieces])


def summed(parts: list[Result], same: tuple[str, ...] = ()) -> dict[str, Any]:
    """Parts' metrics added up; those named in ``same`` are the same in every part (the first's is taken)."""
    return {k: v if k in same else sum(int(p.metrics[k]) for p in parts) for k, v in parts[0].metrics.items()}


def first_undecidable(parts: list[Result], res: Result) -> bool:
    """Copy what the parts could not decide (the same for every part: events are the whole trace's)
    into ``res``; True when the analysis stops there."""
    res.undecidable = list(parts[0].undecidable)
    return bool(parts[0].undecidable) and not parts[0].frames and not parts[0].metrics
