"""Readers: bytes on disk → events table + meta. Pick one by sniffing content.

To add a reader: give it a sniff in ``sniff.py`` and a function returning
``(EventColumns or DataFrame, TraceMeta)``, then route to it in ``read``.
"""
from __future__ import annotations

import os

import pandas as pd

from ..errors import TraceFormatError
from ..meta import TraceMeta
from .compression import read_head
from .select import Selection
from .sniff import event_share, sniff_binary, sniff_text
from .text import read_text


def read(path: str | os.PathLike[str], select: Selection | None = None
         ) -> tuple[pd.DataFrame, TraceMeta, object | None, dict[str, pd.DataFrame]]:
    """Read any supported trace file into (events table, meta, binary record source or None,
    fields decoded while reading: event → seq + columns, for a selective load)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TraceFormatError(path, None, "no such file")
    if os.path.isdir(path):
        raise TraceFormatError(path, None, "is a directory, not a trace file")
    head, compression = read_head(path)
    if not head:
        if os.path.getsize(path) == 0:
            raise TraceFormatError(path, None, "empty file: no trace events")
        raise TraceFormatError(path, "byte 0", f"{compression or 'file'} stream could not be decoded")
    kind = sniff_binary(path, head)
    if kind == "trace.dat":
        from .tracedat import read_dat

        events, meta, source = read_dat(path, compression, select)
        _finish_meta(events, meta, select)
        return events, meta, source, {}
    fmt = sniff_text(path, head)
    meta = TraceMeta(path=path, source_format=fmt.name, compression=compression)
    cols = read_text(path, fmt, meta, select=select)
    events = cols.to_frame()
    meta.not_kept = cols.not_kept
    meta.events -= cols.not_kept
    fields = cols.field_frames(events["seq"].to_numpy()) if select is not None else {}
    _finish_meta(events, meta, select)
    return events, meta, None, fields


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


def is_trace(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a trace kvmtrace reads (by content)."""
    return trace_kind(path) is None


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
