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
