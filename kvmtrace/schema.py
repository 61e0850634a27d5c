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

import pandas as pd
import pyarrow as pa

STRING_DTYPE = pd.ArrowDtype(pa.large_string())


def string_array(arr: pa.ChunkedArray | pa.Array) -> pd.api.extensions.ExtensionArray:
    """A pandas string column backed by arrow (no per-row Python objects)."""
    return pd.array(arr, dtype=STRING_DTYPE) if not isinstance(arr, pa.ChunkedArray) else \
        pd.arrays.ArrowExtensionArray(arr)


def concat(frames: "list[pd.DataFrame | None]") -> pd.DataFrame:
    """Frames as one, categorical columns kept categorical (their categories united)."""
    frames = [f for f in frames if f is not None]
    if not frames:
        return pd.DataFrame()
    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    cats = [c for c in frames[0].columns if isinstance(frames[0][c].dtype, pd.CategoricalDtype)]
    out = pd.concat(frames, ignore_index=True)
    for c in cats:
        parts = [f[c].array if isinstance(f[c].dtype, pd.CategoricalDtype) else pd.Categorical(f[c].astype(object))
                 for f in frames]  # a part may hold none of the column's values (all NA: not categorical)
        if len({p.categories.dtype for p in parts}) > 1:  # e.g. no values yet in one part
            parts = [p.set_categories(p.categories.astype(object)) for p in parts]
        out[c] = pd.api.types.union_categoricals(parts, sort_categories=True, ignore_order=True)
    return out
