"""Vectorized conversions of extracted field strings into typed pandas columns."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..readers.textscan import parse_uint

_HEXRE = r"^(?:0[xX])?[0-9a-fA-F]+$"


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data bytes, start, end) of every string in a (large_)string array."""
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    if not len(data):
        data = np.zeros(1, np.uint8)
    return data, offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)


def to_uint64_hex(arr: pa.Array) -> pd.arrays.IntegerArray:
    """Hex strings (with or without 0x) → UInt64; NA where not hex (e.g. ``(____ptrval____)``)."""
    arr = pc.utf8_trim_whitespace(arr)
    valid = pc.fill_null(pc.match_substring_regex(arr, _HEXRE), False).to_numpy(zero_copy_only=False)
    arr = pc.replace_substring_regex(pc.fill_null(arr, ""), "^0[xX]", "")
    data, s, e = _buffers(arr)
    valid &= (e - s) <= 16
    val = parse_uint(data, s, np.where(valid, e, s), base=16)
    return pd.arrays.IntegerArray(val, ~valid)


def to_int64(arr: pa.Array, allow_hex: bool = True) -> pd.arrays.IntegerArray:
    """Decimal (signed) or 0x-hex strings → Int64 (hex read as two's complement)."""
    arr = pc.utf8_trim_whitespace(arr)
    filled = pc.fill_null(arr, "")
    is_dec = pc.match_substring_regex(filled, r"^-?\d{1,19}$").to_numpy(zero_copy_only=False)
    edge = np.flatnonzero(is_dec & pc.match_substring_regex(filled, r"\d{19}$").to_numpy(zero_copy_only=False))
    for i in edge:  # 19 digits may not fit in 64 bits: such a value is damage, left NA
        if not -(1 << 63) <= int(filled[int(i)].as_py()) < 1 << 63:
            is_dec[i] = False
    is_hex = pc.match_substring_regex(filled, r"^0[xX][0-9a-fA-F]{1,16}$").to_numpy(zero_copy_only=False) \
        if allow_hex else np.zeros(len(arr), bool)
    dec = pc.if_else(pa.array(is_dec), filled, "0")
    out = pc.cast(dec, pa.int64(), safe=False).to_numpy(zero_copy_only=False).copy()
    if is_hex.any():
        hx = to_uint64_hex(pc.if_else(pa.array(is_hex), filled, "0"))
        out[is_hex] = hx.to_numpy(dtype=np.uint64, na_value=0)[is_hex].view(np.int64)
    return pd.arrays.IntegerArray(out, ~(is_dec | is_hex))


def hex_signed(arr: pa.Array) -> pd.arrays.IntegerArray:
    """Bare hex of a C ``long`` (``%lx``) → Int64 with the sign restored."""
    u = to_uint64_hex(arr)
    return pd.arrays.IntegerArray(u.to_numpy(dtype=np.uint64, na_value=0).view(np.int64), u.isna())


def to_category(arr: pa.Array) -> pd.Categorical:
    """Strings → pandas Categorical (NA stays NA)."""
    if not len(arr):
        return pd.Categorical([])
    cat = pd.Categorical(arr.cast(pa.large_string()).dictionary_encode().to_pandas())
    return cat.rename_categories(cat.categories.astype(object)) if len(cat.categories) else cat


def split_symbol(arr: pa.Array) -> tuple[pd.Categorical, pd.arrays.IntegerArray]:
    """``name+0xoff[/0xsize]`` (kernel %pS / trace-cmd) → (name, offset)."""
    parts = pc.extract_regex(pc.fill_null(arr, ""), r"^(?P<name>[^+/\s]*)(?:\+0x(?P<off>[0-9a-fA-F]+))?(?:/0x[0-9a-fA-F]+)?$")
    name = pc.struct_field(parts, "name")
    name = pc.if_else(pc.equal(pc.fill_null(name, ""), ""), pa.scalar(None, pa.large_string()), name.cast(pa.large_string()))
    off = pc.struct_field(parts, "off")
    # unresolved addresses print bare (0x0): no offset. RE2 gives "" for an unmatched group
    has_off = pc.fill_null(pc.greater(pc.utf8_length(off), 0), False).to_numpy(zero_copy_only=False)
    offs = to_uint64_hex(pc.fill_null(off, "0"))
    offv = offs.to_numpy(dtype=np.uint64, na_value=0).view(np.int64)
    return to_category(name), pd.arrays.IntegerArray(offv, ~has_off)


def symbol_name(arr: pa.Array) -> pd.Categorical:
    """Just the symbol of ``name+0xoff[/0xsize]``: cut at the first ``+`` or ``/``."""
    head = pc.list_element(pc.split_pattern(pc.fill_null(arr, ""), "+", max_splits=1), 0)
    head = pc.list_element(pc.split_pattern(head, "/", max_splits=1), 0)
    head = pc.if_else(pc.equal(head, ""), pa.scalar(None, head.type), head)
    return to_category(head)
