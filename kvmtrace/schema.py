"""The events table: one row per event, the same columns whichever reader made it.

``ts`` int64 ns; ``seq`` order in the source (equal timestamps stay ordered);
``cpu``/``pid`` int32; ``tgid`` nullable; ``comm``/``event``/``system``
categoricals; the latency flags (NA where the source shows none, see
``readers/flags.py``). Text readers add ``payload`` (the printed fields) and
``line`` (the source line), so findings can point back at the input; trace.dat
has neither column: ``seq`` is the record's position and ``Trace.payload()``
renders fields only when asked.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

STRING_DTYPE = pd.ArrowDtype(pa.large_string())


def string_array(arr: pa.ChunkedArray | pa.Array) -> pd.api.extensions.ExtensionArray:
    """A pandas string column backed by arrow (no per-row Python objects)."""
    return pd.array(arr, dtype=STRING_DTYPE) if not isinstance(arr, pa.ChunkedArray) else \
        pd.arrays.ArrowExtensionArray(arr)


def concat(frames: "list[pd.DataFrame | None]") -> pd.DataFrame:
    """Frames as one, categorical columns kept categorical (their categories united, sorted, when the
    parts' differ): codes are remapped, never expanded to one Python object per row."""
    frames = [f for f in frames if f is not None]
    if not frames:
        return pd.DataFrame()
    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    columns = frames[0].columns
    cats = [c for c in columns if isinstance(frames[0][c].dtype, pd.CategoricalDtype)]
    out = pd.concat([f.drop(columns=cats) for f in frames], ignore_index=True)
    for c in cats:
        out[c] = united([f[c] for f in frames])
    return out[columns]


def united(columns: "list[pd.Series]") -> pd.Categorical:
    """Columns of one categorical meaning as one Categorical (a part may hold none of the column's
    values: all NA, not categorical)."""
    parts = [c.array if isinstance(c.dtype, pd.CategoricalDtype) else pd.Categorical(c.astype(object)) for c in columns]
    first = parts[0].dtype
    if all(p.categories.equals(first.categories) for p in parts):  # (dtype equality ignores the order)
        return pd.Categorical.from_codes(np.concatenate([p.codes for p in parts]), dtype=first)
    same_kind = len({p.categories.dtype for p in parts}) == 1
    names = [p.categories if same_kind else p.categories.astype(object) for p in parts]
    allcats = names[0].append(names[1:]).unique()
    try:
        allcats = allcats.sort_values()
    except TypeError:  # mixed kinds of values: first seen first
        pass
    codes = [np.where(p.codes >= 0, allcats.get_indexer(n)[p.codes], -1) if len(n) else np.full(len(p), -1)
             for p, n in zip(parts, names)]
    return pd.Categorical.from_codes(np.concatenate(codes), categories=allcats)
