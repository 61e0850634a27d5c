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

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .memory import give_back

#: the one dtype of free text (the text readers' ``payload``): pandas' Arrow-backed string, NA for
#: missing. Text that labels rows (names, reasons, modes) is categorical instead.
STRING_DTYPE = pd.StringDtype("pyarrow")
#: results at least this long give each part's heap back as it is consumed (``placed``)
GIVE_BACK_ROWS = 1_000_000


def string_array(arr: pa.ChunkedArray | pa.Array) -> pd.api.extensions.ExtensionArray:
    """A pandas string column backed by arrow (no per-row Python objects; the buffers are shared)."""
    chunked = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    return pd.arrays.ArrowStringArray(chunked.cast(pa.large_string()))


def na_below_zero(values: Any) -> pd.arrays.IntegerArray:
    """An int64 column whose −1 (the model's "none": no run, not decided) is NA, as every frame
    kvmtrace returns marks a missing value."""
    v = np.asarray(values, dtype=np.int64)
    return pd.arrays.IntegerArray(v, v < 0)


def empty_frame(dtypes: dict[str, Any]) -> pd.DataFrame:
    """A frame of no rows whose columns still have their types (not pandas' object default)."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in dtypes.items()})


def concat(frames: "list[pd.DataFrame | None]") -> pd.DataFrame:
    """Frames as one, categorical columns kept categorical (their categories united, sorted, when the
    parts' differ): codes are remapped, never expanded to one Python object per row."""
    kept = [f for f in frames if f is not None]
    if not kept:
        return pd.DataFrame()
    kept = [f for f in kept if len(f)] or kept[:1]
    return placed(kept, [(i, 0, len(f)) for i, f in enumerate(kept)])


def placed(frames: "list[pd.DataFrame]", pieces: "list[tuple[int, int, int]]") -> pd.DataFrame:
    """One frame of the row ranges ``pieces`` ((frame, start, end), in output order) of ``frames``.

    ``frames`` is consumed: each frame is dropped from the list once its rows are copied into
    the preallocated columns, so with no other reference to them, a huge trace's parts and
    their result are not in memory twice."""
    if len(frames) == 1 and pieces == [(0, 0, len(frames[0]))]:
        return frames.pop().reset_index(drop=True)
    columns = frames[0].columns
    if any(not f.columns.equals(columns) for f in frames):  # parts that differ in layout: every column in each,
        columns = pd.Index(dict.fromkeys(c for f in frames for c in f.columns))  # NA where a part has none
        frames[:] = [f.reindex(columns=columns) for f in frames]
    at: dict[int, list[tuple[int, int, int]]] = {}  # frame → (start, end, output position)
    total = 0
    for i, a, b in pieces:
        at.setdefault(i, []).append((a, b, total))
        total += b - a
    out: dict[str, Any] = {}
    later: dict[str, list[tuple[int, object]]] = {}  # columns of other dtypes: slices joined at the end
    cats: dict[str, tuple[pd.Index, list[np.ndarray]]] = {}
    for c in columns:
        col = [f[c] for f in frames]
        if isinstance(col[0].dtype, pd.CategoricalDtype):
            allcats, luts = _union([_categorical(x) for x in col])
            cats[c] = (allcats, luts)
            out[c] = np.empty(total, np.int32)
        elif all(isinstance(x.dtype, np.dtype) for x in col):
            out[c] = np.empty(total, np.result_type(*(x.dtype for x in col)))
        else:
            later[c] = []
    del col  # a column holds its frame's whole block: no part may stay referenced from here
    for i in range(len(frames)):
        f = frames[i]
        for c in columns:
            x = f[c]
            if c in cats:
                codes = _categorical(x).codes
                lut = cats[c][1][i]
                codes = np.where(codes >= 0, lut[codes], -1) if len(lut) else np.full(len(codes), -1)
            elif c in later:
                later[c] += [(pos, x.iloc[a:b]) for a, b, pos in at.get(i, [])]
                continue
            values = codes if c in cats else x.to_numpy()
            for a, b, pos in at.get(i, []):
                out[c][pos:pos + b - a] = values[a:b]
        frames[i] = None  # dropped: its memory goes now
        del f, x
        if total >= GIVE_BACK_ROWS:
            give_back()  # a huge result: the heap the part held goes back before the next part is copied
    frames.clear()
    for c, (allcats, _) in cats.items():
        out[c] = pd.Categorical.from_codes(out[c], categories=allcats)
    for c, got in later.items():
        got.sort(key=lambda t: t[0])
        out[c] = pd.concat([x for _, x in got], ignore_index=True).array if got else pd.array([])
    return pd.DataFrame({c: out[c] for c in columns}, copy=False)


def _categorical(column: pd.Series) -> pd.Categorical:
    """A column of a categorical meaning as a Categorical (a part may hold none of its values: all
    NA, not categorical)."""
    return column.array if isinstance(column.dtype, pd.CategoricalDtype) else pd.Categorical(column.astype(object))


def _union(parts: "list[pd.Categorical]") -> "tuple[pd.Index, list[np.ndarray]]":
    """The categories of several categoricals of one meaning (each part's own when all agree, in
    their order; else united and sorted) and, per part, where each of its categories went."""
    first = parts[0].categories
    if all(p.categories.equals(first) for p in parts):  # (dtype equality would ignore the order)
        same = np.arange(len(first))
        return first, [same] * len(parts)
    same_kind = len({p.categories.dtype for p in parts}) == 1
    names = [p.categories if same_kind else p.categories.astype(object) for p in parts]
    allcats = names[0].append(names[1:]).unique()
    try:
        allcats = allcats.sort_values()
    except TypeError:  # mixed kinds of values: first seen first
        pass
    return allcats, [allcats.get_indexer(n) for n in names]
