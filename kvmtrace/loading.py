"""Loading a trace file: the reader, the Parquet cache, and the ``Trace`` they make.

Above ``trace.py`` and ``cache.py``: a ``Trace`` knows nothing of where it was loaded from,
and the cache is told which events' typed fields to keep.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from . import cache as trace_cache
from .errors import OutputError
from .readers import read, stream as read_stream
from .readers.select import Selection
from .trace import Trace

if TYPE_CHECKING:
    from .readers.tracedat import Decode


def load(path: str | os.PathLike[str], cache: bool = False, cache_dir: str | os.PathLike[str] | None = None,
         select: Selection | None = None, cache_fields: Sequence[str] = (),
         decode_now: Mapping[str, tuple[str, ...]] | None = None) -> Trace:
    """Load a trace file of any supported format (sniffed from its content).

    With ``cache``, a Parquet copy is kept in ``cache_dir`` (default: ``cache.default_dir()``), with
    the typed fields of ``cache_fields`` (a trace.dat's: text keeps its payload), and used while the
    file is unchanged; ``meta.cache`` says "hit" or "written". A cache that cannot be written is a
    warning in ``meta.warnings``, never an error. With ``select`` (see
    ``readers.select``), only those events and fields are kept: memory for what is kept, not for
    the file. With ``decode_now`` (event → fields), a trace.dat's are decoded while reading and
    its records are not kept: what an analysis reads costs no second copy of the pages, and any
    other field wanted later is read from the file again.
    """
    if cache and select is None and os.path.isfile(path):
        hit = trace_cache.read(path, cache_dir)
        if hit is not None:
            hit.meta.cache = "hit"
            return hit
    got = read(path, select, _decoder(decode_now) if decode_now is not None else None)
    released = got.binary is None and got.meta.source_format.startswith("trace.dat")
    tr = Trace(got.events, got.meta, got.binary, reopen=os.fspath(path) if released else None, fields=got.fields)
    if cache and select is None:
        try:
            kept = trace_cache.write(tr, cache_dir, cache_fields)
        except OutputError as exc:  # the analysis goes on without a cache
            tr.meta.warnings.append(f"{exc}: not cached")
        else:
            tr.meta.cache = "written" if kept is not None else None
            if kept is None:
                tr.meta.warnings.append(f"not cached: its copy is larger than the cache's bound "
                                        f"({trace_cache.limit():,} bytes, KVMTRACE_CACHE_MAX)")
    return tr


def stream(path: str | os.PathLike[str], select: Selection, chunk_events: int) -> Iterator[Trace]:
    """``path`` as traces of about ``chunk_events`` events each, keeping only ``select`` (see
    ``readers.stream``): what a streamed analysis reads. Their ``meta`` is one object, complete
    once the last piece is out."""
    for piece in read_stream(path, select, chunk_events):
        yield Trace(piece.events, piece.meta, fields=piece.fields)


def _decoder(want: Mapping[str, tuple[str, ...]]) -> "Decode":
    """The trace.dat fields of ``want`` decoded from a reader's records (``readers.tracedat.Decode``)."""
    from .fields.binary import binary_fields
    from .readers.tracedat import decoded_fields

    return lambda source: decoded_fields(source, want, binary_fields)
