"""Analyzers: findings, metrics and DataFrames from a loaded trace.

``analyze(trace)`` runs every analyzer in ``registry.REGISTRY`` on one shared model
(``base.Context``): each ``collect``s from the model of the trace (or of each chunk of a huge
one) and ``finish``es from the parts (``pipeline``). Each analyzer declares the events and fields
it reads and, when events are missing, says what it could not decide and the ``trace-cmd
record`` line that would capture them.
"""
from __future__ import annotations

from ..fields import selection as field_selection
from ..memory import map_big_allocations
from ..readers.select import Selection
from ..trace import Trace
from . import chunked, pipeline
from .analysis import SCHEMA_VERSION, Analysis, plain
from .base import FINDING_KINDS, Context, Options
from .registry import REGISTRY, decoded, reads
from .states import Confidence, Verdict

__all__ = ["Analysis", "Confidence", "Options", "Verdict", "analyze", "load_and_analyze", "selection", "FINDING_KINDS",
           "REGISTRY", "SCHEMA_VERSION", "plain"]


def selection() -> Selection:
    """What the analyzers read (the union of their declared needs): load a huge trace with
    ``kvmtrace.load(path, select=selection())``.

    The guest's return is then the first *kept* host event after the entry path:
    the same as a full load whenever preemptirq or rcu events are recorded (they
    are the first host events after the guest on every kernel we know).
    """
    return field_selection(frozenset(reads()), decoded())


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
    from ..loading import load, stream

    options = options or Options()
    events = estimated_events(path)
    if options.low_memory or _beyond_memory(events):
        if events >= MAPPED_FROM_EVENTS:
            map_big_allocations()
        pieces = stream(path, selection().everything(), options.chunk_events or LOW_MEMORY_CHUNK)
        parts, whole = chunked.collect_stream((options.restrict(p) for p in pieces), options)
        _say_restricted(whole, options)
        return pipeline.finish(whole, options, parts)
    # the analyzers' fields decoded while reading; the records are not kept (the model needs the memory)
    tr = load(path, cache=cache, cache_dir=cache_dir, cache_fields=tuple(decoded()), decode_now=decoded())
    tr = options.restrict(tr)
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
        parts = chunked.collect_chunks(trace, options, chunk_events)
    else:
        parts = [pipeline.collect(Context(trace, options))]
    return pipeline.finish(trace, options, parts)
