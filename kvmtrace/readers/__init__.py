"""Readers: bytes on disk → events table + meta. Pick one by sniffing content.

To add a reader: give it a sniff in ``sniff.py`` and a function returning
``(EventColumns or DataFrame, TraceMeta)``, then route to it in ``read``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import TraceFormatError, TraceTooLargeError
from ..meta import TraceMeta
from .compression import read_head
from .select import Selection
from .sniff import TextFormat, event_share, sniff_binary, sniff_text
from .text import read_text, text_chunks

if TYPE_CHECKING:
    from .tracedat import Decode


@dataclass
class ReadResult:
    """What a reader gives back for a file or a piece of one."""

    events: pd.DataFrame
    meta: TraceMeta
    #: a trace.dat's records (``tracedat.BinarySource``), for decoding fields on demand; None for text,
    #: or for a trace.dat read with ``decode``
    binary: object | None = None
    #: fields decoded while reading (a selective load, or ``decode``): event → seq + columns, in table order
    fields: dict[str, pd.DataFrame] = field(default_factory=dict)


def read(path: str | os.PathLike[str], select: Selection | None = None, decode: "Decode | None" = None) -> ReadResult:
    """Read any supported trace file (its format sniffed from its content). ``decode``: a
    trace.dat's fields to decode while reading, its records then let go (``tracedat.read_dat``);
    text keeps its payloads, so it ignores ``decode``."""
    path = os.fspath(path)
    try:
        return _read(path, select, decode)
    except MemoryError:
        raise TraceTooLargeError(path, None, "ran out of memory reading it: analyze it with --low-memory "
                                 "(kvmtrace.analyze(path, Options(low_memory=True)))") from None


def _read(path: str, select: Selection | None, decode: "Decode | None" = None) -> ReadResult:
    head, compression = _head(path)
    kind = sniff_binary(path, head)
    if kind == "trace.dat":
        from .tracedat import read_dat

        events, meta, source, fields = read_dat(path, compression, select, decode)
        _finish_meta(events, meta, select)
        return ReadResult(events, meta, source, fields)
    fmt = sniff_text(path, head)
    meta = TraceMeta(path=path, source_format=fmt.name, compression=compression)
    cols = read_text(path, fmt, meta, select=select)
    events = cols.to_frame()
    meta.not_kept = cols.not_kept
    meta.events -= cols.not_kept
    fields = cols.field_frames(events["seq"].to_numpy()) if select is not None else {}
    _finish_meta(events, meta, select)
    return ReadResult(events, meta, None, fields)


#: bytes of an event line, about: sizes a streamed text's blocks to its pieces
TEXT_LINE_BYTES = 100


def stream(path: str | os.PathLike[str], select: Selection, chunk_events: int) -> Iterator[ReadResult]:
    """Read a trace about ``chunk_events`` events at a time, keeping only ``select``: one result per
    piece, its fields decoded while reading. No table of the whole trace is built; ``meta`` (one object,
    filled as reading goes) is complete after the last piece."""
    path = os.fspath(path)
    try:
        yield from _stream(path, select, chunk_events)
    except MemoryError:
        raise TraceTooLargeError(path, None, f"ran out of memory with pieces of {chunk_events:,} events: "
                                 "try a smaller --chunk-events") from None


def _stream(path: str, select: Selection, chunk_events: int) -> Iterator[ReadResult]:
    head, compression = _head(path)
    pieces: Iterator[tuple[pd.DataFrame, dict[str, pd.DataFrame], TraceMeta]]
    if sniff_binary(path, head) == "trace.dat":
        from .tracedat.stream import stream_dat

        pieces = stream_dat(path, compression, select, chunk_events)
    else:
        fmt = sniff_text(path, head)
        pieces = _text_pieces(path, fmt, TraceMeta(path=path, source_format=fmt.name, compression=compression),
                              select, chunk_events)
    seen: set[int] = set()
    for events, fields, meta in pieces:
        if len(events):
            if not seen:
                meta.first_ns = int(events["ts"].iloc[0])
            meta.last_ns = int(events["ts"].iloc[-1])
            seen.update(int(c) for c in pd.unique(events["cpu"]))
            meta.cpus_seen = sorted(seen)
        yield ReadResult(events, meta, None, fields)
    _finish_meta(events.iloc[:0], meta, select)


def _text_pieces(path: str, fmt: TextFormat, meta: TraceMeta, select: Selection, chunk_events: int
                 ) -> Iterator[tuple[pd.DataFrame, dict[str, pd.DataFrame], TraceMeta]]:
    block = min(6 << 20, max(256 << 10, chunk_events * TEXT_LINE_BYTES))  # a piece is at least a block
    for cols in text_chunks(path, fmt, meta, block, select=select, chunk_events=chunk_events):
        events = cols.to_frame()
        meta.not_kept += cols.not_kept
        meta.events -= cols.not_kept
        yield events, cols.field_frames(events["seq"].to_numpy()), meta


def _head(path: str) -> tuple[bytes, str | None]:
    """The first decoded bytes of a trace file and its compression, or a one-line error."""
    if not os.path.exists(path):  # exists() follows links: a loop or a dangling link is no file either
        raise TraceFormatError(path, None, "a symbolic link that leads nowhere or loops" if os.path.lexists(path)
                               else "no such file")
    if os.path.isdir(path):
        raise TraceFormatError(path, None, "is a directory, not a trace file")
    head, compression = read_head(path)
    if not head:
        if os.path.getsize(path) == 0:
            raise TraceFormatError(path, None, "empty file: no trace events")
        raise TraceFormatError(path, "byte 0", f"{compression or 'file'} stream could not be decoded")
    return head, compression


def trace_kind(path: str | os.PathLike[str]) -> str | None:
    """None when ``path`` reads as a trace (by content), else why not: for picking traces out of a
    folder or a glob, and saying what was left out."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return "not a regular file"
    if os.path.getsize(path) == 0:
        return "empty"
    try:
        head, _ = read_head(path)
        if not head:
            return "empty after decompression"
        if sniff_binary(path, head) == "trace.dat":
            return None
        sniff_text(path, head)
    except TraceFormatError as exc:
        return exc.message
    events, lines = event_share(head)
    if events * 2 < lines:
        return f"not a trace: {events} of the first {lines} lines are trace events"
    return None


def _finish_meta(events: pd.DataFrame, meta: TraceMeta, select: Selection | None = None) -> None:
    """Fill the fields every reader derives the same way from the table."""
    if select is not None:
        meta.selection = select.describe()
    if len(events):
        meta.first_ns = int(events["ts"].iloc[0])
        meta.last_ns = int(events["ts"].iloc[-1])
        meta.cpus_seen = sorted(int(c) for c in pd.unique(events["cpu"]))
    if meta.cpus is None and meta.cpus_seen:
        meta.cpus = max(meta.cpus_seen + meta.empty_cpus) + 1
    if meta.lost_markers:
        meta.warnings.append(
            f"{meta.lost_markers} lost-event markers: {meta.lost_total} events lost "
            f"(per CPU: {dict(sorted(meta.lost.items()))}); analyses near the gaps are less certain")
