"""Vectorized conversions of extracted field strings into typed pandas columns."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..readers.textscan import gather, read_uint, windows


def buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data bytes, start, end) of every string in a (large_)string array."""
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    if not len(data):
        data = np.zeros(1, np.uint8)
    return data, offsets[:-1], offsets[1:]


@dataclass(frozen=True)
class Spans:
    """Strings as byte ranges ``data[start:end]`` of one buffer, sorted and disjoint: the tokens a
    split leaves, converted where they lie (no string array is built for a number)."""

    data: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @cached_property
    def plain(self) -> bool:
        """No string begins or ends with what a whitespace trim would take off (ASCII whitespace or
        a non-ASCII character), so the ranges are the trimmed strings."""
        some = self.end > self.start
        ends = np.concatenate((self.data.take(self.start[some], mode="clip"), self.data.take(self.end[some] - 1, mode="clip")))
        return not (((ends - np.uint8(9)) < np.uint8(5)) | (ends == 32) | (ends >= 0x80)).any()

    def strings(self) -> pa.LargeStringArray:
        return gather(self.data, self.start, self.end)


def _trimmed(arr: pa.Array | Spans) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(data, start, end, present) of each string with its surrounding whitespace trimmed; a null
    is an empty string that is not ``present``."""
    if isinstance(arr, Spans):
        if arr.plain:
            return arr.data, arr.start, arr.end, np.ones(len(arr), bool)
        arr = arr.strings()
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    data, s, e = buffers(pc.fill_null(pc.utf8_trim_whitespace(arr), ""))
    return data, s, e, present


def _byte(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``data[pos]``, clipped to the buffer (the callers check lengths first)."""
    return data.take(pos, mode="clip")


def _hex_prefixed(data: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Strings that begin with ``0x`` or ``0X`` and have room for it."""
    return (e - s >= 2) & (_byte(data, s) == ord("0")) & ((_byte(data, s + 1) | 32) == ord("x"))


def to_uint64_hex(arr: pa.Array | Spans) -> pd.arrays.IntegerArray:
    """Hex strings (with or without 0x) → UInt64; NA where not hex (e.g. ``(____ptrval____)``).

    Read from the bytes (a pass per digit of the longest): regular expressions over millions of
    counters were most of a text trace's field decoding."""
    data, s, e, present = _trimmed(arr)
    val, valid = read_uint(data, np.where(_hex_prefixed(data, s, e), s + 2, s), e, base=16, most=16)
    valid &= present
    return pd.arrays.IntegerArray(np.where(valid, val, np.uint64(0)), ~valid)


def to_int64(arr: pa.Array | Spans, allow_hex: bool = True) -> pd.arrays.IntegerArray:
    """Decimal (signed, within 64 bits) or 0x-hex strings → Int64 (hex read as two's complement)."""
    data, s, e, present = _trimmed(arr)
    out, ok = np.zeros(len(s), np.int64), np.zeros(len(s), bool)
    # "0x" can begin no decimal, so each string is read one way: hex after the prefix, else decimal
    prefixed = present & _hex_prefixed(data, s, e) if allow_hex else np.zeros(len(s), bool)
    hexed = np.flatnonzero(prefixed)
    if len(hexed):
        value, ok[hexed] = read_uint(data, s[hexed] + 2, e[hexed], base=16, most=16)
        out[hexed] = value.view(np.int64)
    dec = np.flatnonzero(present & ~prefixed)
    if len(dec):
        ds, de = s[dec], e[dec]
        negative = (de > ds) & (_byte(data, ds) == ord("-"))
        magnitude, good = read_uint(data, np.where(negative, ds + 1, ds), de, most=19)  # 19 digits fit unsigned
        # beyond 64 bits is damage: NA
        ok[dec] = good & (magnitude <= np.where(negative, np.uint64(1 << 63), np.uint64((1 << 63) - 1)))
        out[dec] = np.where(negative, ~magnitude + np.uint64(1), magnitude).view(np.int64)
    return pd.arrays.IntegerArray(np.where(ok, out, 0), ~ok)


def hex_signed(arr: pa.Array | Spans) -> pd.arrays.IntegerArray:
    """Bare hex of a C ``long`` (``%lx``) → Int64 with the sign restored."""
    u = to_uint64_hex(arr)
    return pd.arrays.IntegerArray(u.to_numpy(dtype=np.uint64, na_value=0).view(np.int64), u.isna())


def to_category(arr: pa.Array | Spans) -> pd.Categorical:
    """Strings → pandas Categorical (NA stays NA), categories in the order they first appear."""
    if not len(arr):
        return pd.Categorical([])
    if isinstance(arr, Spans):
        packed = _packed_category(arr)
        if packed is not None:
            return packed
        arr = arr.strings()
    cat = pd.Categorical(arr.cast(pa.large_string()).dictionary_encode().to_pandas())
    return cat.rename_categories(cat.categories.astype(object)) if len(cat.categories) else cat


def _packed_category(spans: Spans) -> pd.Categorical | None:
    """``to_category`` of short tokens (at most 8 bytes, no NUL) with each packed into one
    64-bit key and the keys hashed: millions of rcu polarity words without a string built."""
    size = spans.end - spans.start
    if int(size.max()) > 8:
        return None
    window = windows(spans.data, spans.start, 8)
    inside = np.arange(8) < size[:, None]
    if (inside & (window == 0)).any():
        return None  # a NUL inside: "a" and "a\0" would pack alike
    window[~inside] = 0
    codes, keys = pd.factorize(window.view(np.uint64).ravel())
    names = [bytes(k).rstrip(b"\0").decode("utf-8") for k in np.asarray(keys, np.uint64).view(np.uint8).reshape(-1, 8)]
    return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))


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
