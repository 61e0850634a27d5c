"""Typed per-event frames (``Trace.df(name)``) decoded from the printed payload.

Decoding is vectorized (pyarrow regex extraction over one event type's rows)
and lazy: only event types someone asks for are decoded. Known events follow
``specs.py``; any other event goes through a generic ``key=value`` splitter.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..readers.select import Selection
from .binary import binary_fields
from .decode import SLICE_ROWS, decode_payload, decode_pieces
from .specs import BASE_COLUMNS

__all__ = ["BASE_COLUMNS", "decode_event", "decode_fields", "decode_rows", "selection"]


def selection(events: frozenset[str] | None, fields: dict[str, tuple[str, ...]]) -> Selection:
    """A load keeping ``events`` and decoding ``fields`` of some while reading, with this package's
    decoders for text payloads and trace.dat records."""
    return Selection(events, fields, decode_text=decode_fields, decode_binary=binary_fields)


def decode_fields(name: str, payload: Any, columns: tuple[str, ...]) -> pd.DataFrame:
    """Only the typed ``columns`` of event ``name`` from its printed payloads (no base columns)."""
    arr = payload if isinstance(payload, (pa.Array, pa.ChunkedArray)) else pa.array(payload)
    arr = arr if len(arr) else pa.array([], pa.large_string())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return decode_payload(name, arr.cast(pa.large_string()), columns)[0]


def decode_rows(name: str, payload: pa.ChunkedArray | pa.Array, rows: np.ndarray, columns: tuple[str, ...]
                ) -> pd.DataFrame:
    """``decode_fields`` of the payloads of event ``name`` where the events table's mask ``rows`` is
    set, taken a slice of the table at a time: no copy of every such payload is made first."""
    def pieces() -> Iterator[pa.Array]:
        for a in range(0, len(rows), SLICE_ROWS):
            got = pc.filter(payload.slice(a, SLICE_ROWS), pa.array(rows[a:a + SLICE_ROWS]))
            yield got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got

    return decode_pieces(name, pieces(), columns)[0]


def decode_event(name: str, rows: pd.DataFrame, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """``rows`` (one event type, from the events table) with typed field columns added
    (only ``columns`` of them when given)."""
    base = rows[BASE_COLUMNS].reset_index(drop=True)
    payload = pa.chunked_array(pa.array(rows["payload"].array) if len(rows) else [pa.array([], pa.large_string())])
    fields, unparsed = decode_payload(name, payload.combine_chunks().cast(pa.large_string()), columns)
    out = pd.concat([base, fields], axis=1) if len(fields.columns) else base
    out.attrs["event"] = name
    out.attrs["unparsed"] = unparsed
    return out
