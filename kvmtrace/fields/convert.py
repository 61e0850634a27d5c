"""Vectorized conversions of extracted field strings into typed pandas columns."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..readers.textscan import DIGIT, HEX, parse_uint, scan


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data bytes, start, end) of every string in a (large_)string array."""
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    if not len(data):
        data = np.zeros(1, np.uint8)
    return data, offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)


def _trimmed(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(data, start, end, present) of each string with its surrounding whitespace trimmed; a null
    is an empty string that is not ``present``."""
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    data, s, e = _buffers(pc.fill_null(pc.utf8_trim_whitespace(arr), ""))
    return data, s, e, present


def _byte(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``data[pos]``, clipped to the buffer (the callers check lengths first)."""
    return data.take(pos, mode="clip")


def _hex_prefixed(data: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Strings that begin with ``0x`` or ``0X`` and have room for it."""
    return (e - s >= 2) & (_byte(data, s) == ord("0")) & ((_byte(data, s + 1) | 32) == ord("x"))


def _made_of(data: np.ndarray, s: np.ndarray, e: np.ndarray, table: np.ndarray, most: int) -> np.ndarray:
    """Strings ``data[s:e]`` of 1 to ``most`` characters, every one in ``table``."""
    return (e > s) & (e - s <= most) & (scan(data, s, e, table, 1, most + 1) == e)


def to_uint64_hex(arr: pa.Array) -> pd.arrays.IntegerArray:
    """Hex strings (with or without 0x) → UInt64; NA where not hex (e.g. ``(____ptrval____)``).

    Read from the bytes (a pass per digit of the longest): regular expressions over millions of
    counters were most of a text trace's field decoding."""
    data, s, e, present = _trimmed(arr)
    digits = np.where(_hex_prefixed(data, s, e), s + 2, s)
    valid = present & _made_of(data, digits, e, HEX, 16)
    val = parse_uint(data, digits, np.where(valid, e, digits), base=16)
    return pd.arrays.IntegerArray(val, ~valid)


def to_int64(arr: pa.Array, allow_hex: bool = True) -> pd.arrays.IntegerArray:
    """Decimal (signed, within 64 bits) or 0x-hex strings → Int64 (hex read as two's complement)."""
    data, s, e, present = _trimmed(arr)
    negative = (e > s) & (_byte(data, s) == ord("-"))
    digits = np.where(negative, s + 1, s)
    is_dec = present & _made_of(data, digits, e, DIGIT, 19)
    magnitude = parse_uint(data, digits, np.where(is_dec, e, digits))  # 19 digits fit in 64 bits unsigned
    is_dec &= magnitude <= np.where(negative, np.uint64(1 << 63), np.uint64((1 << 63) - 1))  # else damage: NA
    out = np.where(negative, ~magnitude + np.uint64(1), magnitude).view(np.int64)
    if allow_hex:
        after = s + 2  # the digits after "0x"
        is_hex = present & ~is_dec & _hex_prefixed(data, s, e) & _made_of(data, after, e, HEX, 16)
        if is_hex.any():
            out[is_hex] = parse_uint(data, after[is_hex], e[is_hex], base=16).view(np.int64)
    else:
        is_hex = np.zeros(len(out), bool)
    return pd.arrays.IntegerArray(np.where(is_dec | is_hex, out, 0), ~(is_dec | is_hex))


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
