"""The decoding engine: patterns/keys from ``specs.py`` → typed columns."""
from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

from . import convert
from .specs import SPECS, EventSpec

_GENERIC_SIGNATURES = 32


def _column(arr: pa.Array | convert.Spans, kind: str, name: str, columns: tuple[str, ...] | None = None
            ) -> dict[str, object]:
    if isinstance(arr, convert.Spans) and kind not in ("int", "xint", "hex", "ptr", "shex", "cat"):
        arr = arr.strings()  # symbols and flags are read by Arrow's string kernels
    if kind == "int":
        return {name: convert.to_int64(arr)}
    if kind == "xint":
        u = convert.to_uint64_hex(arr)
        return {name: pd.arrays.IntegerArray(u.to_numpy(dtype=np.uint64, na_value=0).astype(np.int64), u.isna())}
    if kind in ("hex", "ptr"):
        return {name: convert.to_uint64_hex(arr)}
    if kind == "shex":
        return {name: convert.hex_signed(arr)}
    if kind == "sym":
        return {name: convert.split_symbol(arr)[0]}
    if kind == "symoff":
        if columns is not None and f"{name}_off" not in columns:
            return {name: convert.symbol_name(arr)}  # the offset's hex parse skipped: not asked for
        sym, off = convert.split_symbol(arr)
        return {name: sym, f"{name}_off": off}
    if kind == "flag":
        present = pc.fill_null(pc.greater(pc.utf8_length(pc.fill_null(arr, "")), 0), False)
        return {name: pd.arrays.BooleanArray(present.to_numpy(zero_copy_only=False), np.zeros(len(arr), bool))}
    return {name: convert.to_category(arr)}


def _by_split(spec: EventSpec, payload: pa.Array, columns: tuple[str, ...] | None) -> dict[str, convert.Spans] | None:
    """Columns by token position when every row is exactly the split layout, else None.

    The tokens stay byte ranges of the payloads' buffer: the bytes up to a space of all rows are
    found in one pass, and when they are spaces, exactly ``n - 1`` per row, each row's are its own
    row of the reshaped positions (a row whose first or last falls outside it would show the count
    wrong). Every row must match the first pattern (RE2 matching without captures is the cheap part
    of a regex), so the tokens are its groups and a row it rejects goes to the patterns."""
    n = len(spec.split)
    if not len(payload) or payload.null_count:
        return None
    data, start, end = convert.buffers(payload)
    rows = len(payload)
    spaces = _blanks(data, int(start[0]), int(end[-1]))
    if len(spaces) != rows * (n - 1) or not (data[spaces] == 32).all():
        return None  # another layout, or a tab, carriage return or NUL the patterns read otherwise
    cut = spaces.reshape(rows, n - 1)
    if n > 1 and not ((cut[:, 0] >= start).all() and (cut[:, -1] < end).all()):
        return None
    if pc.match_substring_regex(payload, spec.patterns[0]).false_count:
        return None  # a row the pattern rejects is unparsed, whichever rows share its piece
    cols: dict[str, convert.Spans] = {}
    for k, (name, prefix) in enumerate(spec.split):
        if columns is not None and name not in columns:
            continue
        b = start if k == 0 else cut[:, k - 1] + 1
        e = end if k == n - 1 else cut[:, k]
        if prefix:
            b = b + len(prefix.encode())  # the pattern matched it
        cols[name] = convert.Spans(data, b, e)
    return cols


def _blanks(data: np.ndarray, lo: int, hi: int, piece: int = 8 << 20) -> np.ndarray:
    """Positions of the bytes up to a space (spaces, tabs, other controls) in ``data[lo:hi]``, found
    a few MB at a time: one comparison array of the whole range would be a fresh mapping of hundreds
    of MB, touched page by page."""
    found = [np.flatnonzero(data[a:min(a + piece, hi)] <= 32) + a for a in range(lo, hi, piece)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _only(pattern: str, columns: tuple[str, ...] | None) -> str:
    """``pattern`` capturing only ``columns``: fewer capture groups make RE2 much faster."""
    if columns is None:
        return pattern
    return re.sub(r"\(\?P<(\w+)>", lambda m: m.group(0) if m.group(1) in columns else "(?:", pattern)


def _by_patterns(spec: EventSpec, payload: pa.Array, columns: tuple[str, ...] | None = None
                 ) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Per column, the value from the first pattern each row matches."""
    n = len(payload)
    chosen = np.full(n, -1, dtype=np.int64)
    results: list[pa.StructArray | None] = []
    for k, pat in enumerate(spec.patterns):
        todo = chosen < 0
        if not todo.any():
            results.append(None)
            continue
        res = pc.extract_regex(payload, _only(pat, columns))
        hit = res.is_valid().to_numpy(zero_copy_only=False) & todo
        chosen[hit] = k
        results.append(res)
    cols: dict[str, pa.Array] = {}
    for name in spec.types:
        pieces = []
        for k, res in enumerate(results):
            if res is None or name not in [f.name for f in res.type]:
                continue
            v = pc.struct_field(res, name).cast(pa.large_string())
            # RE2 yields "" for an optional group that did not take part: that is NA
            mask = pa.array(chosen == k)
            mask = pc.and_(mask, pc.not_equal(pc.fill_null(v, ""), ""))
            pieces.append(pc.if_else(mask, v, pa.scalar(None, pa.large_string())))
        if pieces:
            cols[name] = pc.coalesce(*pieces) if len(pieces) > 1 else pieces[0]
    return cols, chosen >= 0


def _by_keys(keys: tuple[str, ...], payload: pa.Array) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Order-independent ``key=value`` fields (trace-cmd plugins reorder some)."""
    cols: dict[str, pa.Array] = {}
    any_hit = np.zeros(len(payload), dtype=bool)
    for key in keys:
        res = pc.extract_regex(payload, rf"(?:^|\s){re.escape(key)}=(?P<v>\S+)")
        cols[key] = pc.struct_field(res, "v").cast(pa.large_string())
        any_hit |= res.is_valid().to_numpy(zero_copy_only=False)
    return cols, any_hit


def _generic(payload: pa.Array) -> tuple[dict[str, pa.Array], dict[str, str], np.ndarray]:
    """Split unknown events' ``key=value`` payloads; each distinct key layout gets one pattern."""
    n = len(payload)
    signature = pc.replace_substring_regex(pc.fill_null(payload, ""), r"=\S*", "=")
    uniq = pc.unique(signature)
    cols: dict[str, pa.Array] = {}
    hit = np.zeros(n, dtype=bool)
    for sig in uniq.to_pylist()[:_GENERIC_SIGNATURES]:
        keys = re.findall(r"(?:^|(?<=\s))([A-Za-z_][\w.]*)=", sig)
        if not keys or len(set(keys)) != len(keys):
            continue
        pat = "^" + " ".join(rf"{re.escape(k)}=(?P<{_group(k)}>.*?)" for k in keys) + "$"
        rows = pc.equal(signature, sig)
        res = pc.extract_regex(payload, pat)
        ok = pc.and_(rows, res.is_valid())
        okn = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        hit |= okn
        for k in keys:
            v = pc.if_else(ok, pc.struct_field(res, _group(k)).cast(pa.large_string()), pa.scalar(None, pa.large_string()))
            cols[k] = pc.coalesce(cols[k], v) if k in cols else v
    types = {k: _infer(v) for k, v in cols.items()}
    return cols, types, hit


def _syscall(name: str, payload: pa.Array) -> tuple[dict[str, pa.Array], dict[str, str], np.ndarray]:
    """A syscall's arguments (``sys_enter_*``: ``ARG: VAL, ...``, every value hex, with or without 0x,
    the argument's type before its name when the syscall_arg_type option is set) or its return value
    (``sys_exit_*``: ``0xRET``, a C long), as both trace-cmd and the kernel print them."""
    filled = pc.fill_null(payload, "")
    if name.startswith("sys_exit_"):
        res = pc.extract_regex(filled, r"^\s*(?P<ret>(?:0x)?[0-9a-fA-F]{1,16})\s*$")
        return {"ret": pc.struct_field(res, "ret").cast(pa.large_string())}, {"ret": "shex"}, \
            res.is_valid().to_numpy(zero_copy_only=False)
    signature = pc.replace_substring_regex(filled, r"(?:^|, )(?:[^,:]* )?(\w+): [^,]*", r"\1,")
    cols: dict[str, pa.Array] = {}
    hit = np.zeros(len(payload), bool)
    for sig in pc.unique(signature).to_pylist()[:_GENERIC_SIGNATURES]:
        keys = [k for k in sig.split(",") if k]
        if not keys or len(set(keys)) != len(keys) or not all(re.fullmatch(r"\w+", k) for k in keys):
            continue
        pat = "^" + ", ".join(rf"(?:[^,:]* )?{re.escape(k)}: (?P<{_group(k)}>(?:0x)?[0-9a-fA-F]{{1,16}})" for k in keys) + "$"
        res = pc.extract_regex(filled, pat)
        okn = pc.and_(pc.equal(signature, sig), res.is_valid()).to_numpy(zero_copy_only=False)
        hit |= okn
        for k in keys:
            v = pc.if_else(pa.array(okn), pc.struct_field(res, _group(k)).cast(pa.large_string()),
                           pa.scalar(None, pa.large_string()))
            cols[k] = pc.coalesce(cols[k], v) if k in cols else v
    return cols, {k: "hex" for k in cols}, hit


#: perf script's sample of a hardware or software event: "PERIOD EVENT: IP SYM+OFF (DSO)"; the
#: IP and after are absent when a callchain follows (its frames are lines of their own)
_SAMPLE = (r"^(?P<period>\d+)\s+[\w-]+(?::\w+)*:(?:\s+(?P<ip>[0-9a-f]+) (?P<sym>.*?)(?:\+0x[0-9a-f]+)? "
           r"\((?P<dso>[^)]*)\))?\s*$")
_SAMPLE_TYPES = {"period": "int", "ip": "hex", "sym": "cat", "dso": "cat"}


def _sample(payload: pa.Array) -> tuple[dict[str, pa.Array], dict[str, str], np.ndarray] | None:
    """A sample's period, instruction pointer, symbol and object; None when these are no samples."""
    first = pc.drop_null(payload)[:1].to_pylist()
    if not first or not re.match(r"^\d+\s+[\w-]+(?::\w+)*:", first[0]):
        return None
    res = pc.extract_regex(pc.fill_null(payload, ""), _SAMPLE)
    cols = {k: pc.struct_field(res, k).cast(pa.large_string()) for k in _SAMPLE_TYPES}
    cols = {k: pc.if_else(pc.equal(v, ""), pa.scalar(None, pa.large_string()), v) for k, v in cols.items()}
    return cols, dict(_SAMPLE_TYPES), res.is_valid().to_numpy(zero_copy_only=False)


def _group(key: str) -> str:
    return "f_" + re.sub(r"\W", "_", key)


def _infer(arr: pa.Array) -> str:
    vals = pc.drop_null(arr)
    if not len(vals):
        return "cat"
    if pc.all(pc.match_substring_regex(vals, r"^-?\d{1,18}$")).as_py():
        return "int"
    if pc.all(pc.match_substring_regex(vals, r"^0x[0-9a-fA-F]{1,16}$")).as_py():
        return "hex"
    return "cat"


#: rows decoded at a time: a slice's temporaries (a few MB a column) are reused from the heap, where
#: a whole column's are fresh mappings faulted in page by page (1.5 s of system time for 6M rcu events)
SLICE_ROWS = 1 << 20


def decode_payload(name: str, payload: pa.Array, columns: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, int]:
    """Typed field columns for ``payload`` (one event type); also the unparsed-row count.

    ``columns`` limits the typed conversion (the costly part) to the fields asked for.
    """
    return decode_pieces(name, [payload.slice(a, SLICE_ROWS) for a in range(0, len(payload), SLICE_ROWS)] or [payload],
                         columns)


def decode_pieces(name: str, pieces: Iterable[pa.Array], columns: tuple[str, ...] | None = None
                  ) -> tuple[pd.DataFrame, int]:
    """``decode_payload`` of the pieces' concatenation (large_string arrays), a piece at a time when the
    event's fields are declared; an undeclared event's types are inferred from all its rows, so it is
    decoded whole."""
    spec = SPECS.get(name)
    if spec is None:
        payload = _joined_strings(pieces)
        n = len(payload)
        if columns is not None and not columns:
            return pd.DataFrame(index=pd.RangeIndex(n)), 0
        raw, types, hit = _syscall(name, payload) if name.startswith(("sys_enter_", "sys_exit_")) else \
            _sample(payload) or _generic(payload)
        out: dict[str, object] = {k: v for typed in _typed(raw, types, columns).values() if typed for k, v in typed.items()}
        return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False), int(n - hit.sum())
    parts = [_declared(spec, p, columns) for p in pieces]
    n = sum(rows for rows, _cols, _bad in parts)
    out = {}
    for col in [*spec.types, *(k for k in spec.keys if k not in spec.types)]:
        if all(cols.get(col) is None for _rows, cols, _bad in parts):
            continue  # not asked for, or a column of another kernel version/arch: left out
        filled = [cols.get(col) or _column(pa.nulls(rows, pa.large_string()), spec.types.get(col, "cat"), col, columns)
                  for rows, cols, _bad in parts]
        out.update({key: concat_columns([f[key] for f in filled]) for key in filled[0]})
    return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False), sum(bad for _rows, _cols, bad in parts)


def _declared(spec: EventSpec, payload: pa.Array, columns: tuple[str, ...] | None
              ) -> tuple[int, dict[str, dict[str, object] | None], int]:
    """(rows, per raw column its typed columns or None when every row lacks it, unparsed rows) of one piece."""
    n = len(payload)
    if columns is not None and not columns:
        return n, {}, 0
    fast = _by_split(spec, payload, columns) if spec.split else None
    if fast is not None:
        raw, hit = fast, np.ones(n, bool)
    else:
        raw, hit = _by_patterns(spec, payload, columns) if spec.patterns else ({}, np.ones(n, bool))
    if spec.keys:
        kv, khit = _by_keys(spec.keys, payload)
        raw.update(kv)
        hit = khit if not spec.patterns else hit
    if not spec.patterns and not spec.keys:
        hit = np.ones(n, bool)
    return n, _typed(raw, spec.types, columns), int(n - hit.sum()) if n else 0


def _typed(raw: dict, types: dict[str, str], columns: tuple[str, ...] | None) -> dict[str, dict[str, object] | None]:
    """Per raw column asked for, its typed columns, or None when every row lacks it (a column of
    another kernel version or architecture)."""
    out: dict[str, dict[str, object] | None] = {}
    for col, arr in raw.items():
        if columns is not None and col not in columns:
            continue
        empty = not isinstance(arr, convert.Spans) and arr.null_count == len(arr)
        out[col] = None if empty else _column(arr, types.get(col, "cat"), col, columns)
    return out


def _joined_strings(pieces: Iterable[pa.Array]) -> pa.Array:
    got = [p.cast(pa.large_string()) for p in pieces]
    return pa.concat_arrays(got) if len(got) > 1 else got[0] if got else pa.array([], pa.large_string())


def concat_columns(columns: list) -> object:
    """One column from the typed columns of consecutive pieces: categories stay in the order they
    first appear, as one piece's would."""
    if len(columns) == 1:
        return columns[0]
    if isinstance(columns[0], pd.Categorical):
        same = [c if len(c.categories) else pd.Categorical.from_codes(c.codes, pd.Index([], dtype=object)) for c in columns]
        joined = union_categoricals(same)
        return pd.Categorical.from_codes(joined.codes, categories=joined.categories.astype(object))
    return type(columns[0])._concat_same_type(columns)

