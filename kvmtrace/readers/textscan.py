"""Vectorized byte scanning over many text lines at once.

Every function works on a block of bytes (``np.uint8``) and arrays of positions,
one per line, and moves all lines a step at a time with numpy. The number of
numpy passes is bounded by a field's width, never by the number of lines; this
is what lets kvmtrace parse text faster than trace-cmd renders it.
"""
from __future__ import annotations

import codecs
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view


def lut(chars: str | bytes) -> np.ndarray:
    """A 256-entry boolean lookup table true for ``chars``."""
    t = np.zeros(256, dtype=bool)
    t[np.frombuffer(chars.encode() if isinstance(chars, str) else chars, dtype=np.uint8)] = True
    return t


DIGIT = lut("0123456789")
HEX = lut("0123456789abcdefABCDEF")

_HEXVAL = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _HEXVAL[_c] = 10 + _i
    _HEXVAL[_c - 32] = 10 + _i


def split_lines(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline not included) of every line in ``buf``.

    A final line without a newline is included.
    """
    nl = np.flatnonzero(buf == 10)
    starts = np.empty(len(nl) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    ends = np.empty(len(nl) + 1, dtype=np.int64)
    ends[:-1] = nl
    ends[-1] = len(buf)
    if starts[-1] == len(buf):  # buffer ended with a newline
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def scan(buf: np.ndarray, pos: np.ndarray, limit: np.ndarray, table: np.ndarray,
         step: int = 1, max_steps: int = 4096) -> np.ndarray:
    """Move each position while ``table[buf[pos]]`` holds and it stays inside ``limit``.

    Forward (step=1): stops at the first position not in ``table`` or at ``limit``
    (exclusive upper bound). Backward (step=-1): stops at the first position not
    in ``table`` or at ``limit - 1`` (``limit`` is the inclusive lower bound).
    Only still-moving lines are touched on each pass.
    """
    pos = pos.astype(np.int64, copy=True)
    active = np.arange(len(pos))
    for _ in range(max_steps):
        p = pos[active]
        if step > 0:
            inside = p < limit[active]
        else:
            inside = p >= limit[active]
        keep = np.zeros(len(p), dtype=bool)
        keep[inside] = table[buf[p[inside]]]
        active = active[keep]
        if not len(active):
            break
        pos[active] += step
    return pos


def is_digit(x: np.ndarray) -> np.ndarray:
    """``DIGIT[x]`` for bytes: one subtraction and comparison, where a table lookup is a gather
    (twenty times slower on a block's worth of bytes)."""
    return (x - np.uint8(48)) < np.uint8(10)


def is_hex(x: np.ndarray) -> np.ndarray:
    """``HEX[x]`` for bytes, by arithmetic (``| 32`` folds A-F onto a-f)."""
    return is_digit(x) | (((x | np.uint8(32)) - np.uint8(97)) < np.uint8(6))


#: positions per window matrix at most: 1M windows of 20 bytes stay ~40 MB with their tests
_WINDOWS = 1 << 20


def windows(buf: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """``buf[p:p + width]`` for every ``p`` of ``pos`` (a ``len(pos)`` × ``width`` byte matrix),
    bytes outside ``buf`` read as 0. Rows of a sliding-window view: no index matrix is built."""
    pos = np.asarray(pos, np.int64)
    if not len(pos):
        return np.zeros((0, width), np.uint8)
    inner = (pos >= 0) & (pos <= len(buf) - width)
    if inner.all():
        return sliding_window_view(buf, width)[pos]
    out = np.zeros((len(pos), width), np.uint8)
    if inner.any():
        out[inner] = sliding_window_view(buf, width)[pos[inner]]
    at = pos[~inner, None] + np.arange(width)  # near an end: the bytes inside, zeros past it
    out[~inner] = np.where((at >= 0) & (at < len(buf)), buf.take(at, mode="clip"), np.uint8(0))
    return out


def _run(buf: np.ndarray, pos: np.ndarray, width: int, step: int,
         member: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per position, how many bytes from it on (``step`` 1) or back (−1), up to ``width``, are
    ``member``: a window of bytes per position, a few passes over the lines, none over the block."""
    out = np.empty(len(pos), np.int64)
    for lo in range(0, len(pos), _WINDOWS):
        p = pos[lo:lo + _WINDOWS]
        if step > 0:
            inside = member(windows(buf, p, width + 1))
        else:  # the window ending at p, read from p back
            inside = member(windows(buf, p - width, width + 1))[:, ::-1]
        inside[:, width] = False  # the sentinel column: a run as wide as the window stops there
        out[lo:lo + _WINDOWS] = inside.argmin(axis=1)
    return out


def digits_forward(buf: np.ndarray, pos: np.ndarray, limit: np.ndarray, max_steps: int,
                   member: Callable[[np.ndarray], np.ndarray] = is_digit) -> np.ndarray:
    """``scan(buf, pos, limit, DIGIT, 1, max_steps)``: the first non-digit (or non-``member``)
    at or after ``pos``, no further than ``limit`` or ``max_steps`` on."""
    pos = np.asarray(pos, np.int64)
    limit = np.asarray(limit, np.int64)
    width = min(max_steps, int((limit - pos).max(initial=0)))
    if width <= 0:
        return pos.copy()
    return pos + np.minimum(_run(buf, pos, width, 1, member), np.maximum(limit - pos, 0))


def digits_backward(buf: np.ndarray, pos: np.ndarray, limit: np.ndarray, max_steps: int) -> np.ndarray:
    """``scan(buf, pos, limit, DIGIT, -1, max_steps)``: the last non-digit at or before ``pos``, no
    further back than ``limit - 1`` or ``max_steps`` back."""
    pos = np.asarray(pos, np.int64)
    limit = np.asarray(limit, np.int64)
    width = min(max_steps, int((pos - limit + 1).max(initial=0)))
    if width <= 0:
        return pos.copy()
    return pos - np.minimum(_run(buf, pos, width, -1, is_digit), np.maximum(pos - limit + 1, 0))


def parse_uint(buf: np.ndarray, start: np.ndarray, end: np.ndarray, base: int = 10) -> np.ndarray:
    """Unsigned integers from the digit runs ``buf[start:end]`` (uint64, wraps past 2**64).

    One pass over the lines per digit of the longest field, from its right end, each adding that
    digit times its power: never a pass over the block, nor a matrix of every field's digits.
    Decimal digits are read by subtraction, hex by table; a byte that is no digit counts 0.
    """
    width = int(np.maximum(np.asarray(end) - np.asarray(start), 0).max(initial=0))
    return _digit_sum(buf, start, end, base, width, checked=False)[0]


def read_uint(buf: np.ndarray, start: np.ndarray, end: np.ndarray, base: int = 10, most: int = 20
              ) -> tuple[np.ndarray, np.ndarray]:
    """(value, valid) of each ``buf[start:end]`` as an unsigned integer: valid when it is 1 to
    ``most`` digits of ``base`` (10 or 16) and nothing else; the value (uint64, wrapping past 2**64
    as ``parse_uint``'s) is 0 where it is not. The digits are checked in the passes that read them,
    one per digit of the longest valid-length field."""
    length = np.asarray(end, np.int64) - np.asarray(start, np.int64)
    valid = (length > 0) & (length <= most)
    val, clean = _digit_sum(buf, start, end, base, int(np.where(valid, length, 0).max(initial=0)), checked=True)
    valid &= clean
    val[~valid] = 0
    return val, valid


#: each byte's hex digit value, 255 for a byte that is none
_HEXDIGIT = np.where(HEX, _HEXVAL, 255).astype(np.uint8)


def _digit_sum(buf: np.ndarray, start: np.ndarray, end: np.ndarray, base: int, width: int, checked: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    """(each range's digits times their powers of ``base``, summed as uint64 wrapping past 2**64,
    over its last ``width`` bytes; with ``checked``, whether every one of those bytes is a digit),
    one pass per digit from the right end. A byte that is no digit adds 0."""
    length = np.asarray(end, np.int64) - np.asarray(start, np.int64)
    val = np.zeros(len(length), dtype=np.uint64)
    clean = np.ones(len(length), dtype=bool)
    power = 1
    for k in range(1, width + 1):
        byte = buf.take(np.asarray(end) - k, mode="clip")
        digit = byte - np.uint8(48) if base == 10 else _HEXDIGIT[byte]
        inside = length >= k
        is_digit = digit < base
        if checked:
            clean &= ~inside | is_digit
        val += np.where(inside & is_digit, digit, np.uint8(0)) * np.uint64(power)
        power = power * base % (1 << 64)  # the digit's power, wrapped as the sum is
    return val, clean


def parse_timestamp(buf: np.ndarray, start: np.ndarray, end: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``SEC.FRAC`` or a bare counter.

    Returns (ns or raw counter as int64, has_dot, fraction digits, valid).
    Fraction digits beyond nanoseconds are truncated.

    A block's timestamps are nearly all of one or two widths with the dot in one place: those are
    read as rows of a byte matrix, a few passes in all (``_fixed_timestamps``); the rest (other
    widths, malformed tokens) take the digit walks of ``_walked_timestamps``. Both give the same
    values, wrapping past 2**64 alike."""
    n = len(start)
    ns = np.zeros(n, np.int64)
    has_dot, flen, valid = np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, bool)
    rest = np.ones(n, bool)
    width = np.asarray(end, np.int64) - np.asarray(start, np.int64)
    counts = np.bincount(np.clip(width, 0, _FIXED_MAX + 1), minlength=_FIXED_MAX + 2)[:_FIXED_MAX + 1]
    counts[:2] = 0  # one digit or none: nothing a matrix saves
    for w in np.argsort(counts)[::-1][:_FIXED_WIDTHS]:
        if counts[w] < max(64, n // 16):
            break
        rows = np.flatnonzero(width == w)
        got, value, dot = _fixed_timestamps(buf, start[rows], int(w))
        rows = rows[got]
        ns[rows], valid[rows], rest[rows] = value, True, False
        if dot:
            has_dot[rows], flen[rows] = True, int(w) - dot - 1
    if rest.any():
        rows = np.flatnonzero(rest)
        ns[rows], has_dot[rows], flen[rows], valid[rows] = _walked_timestamps(buf, start[rows], end[rows])
    return ns, has_dot, flen, valid


#: widths read as byte matrices: the most common few, up to this many bytes
_FIXED_WIDTHS, _FIXED_MAX = 3, 32
#: 10**k modulo 2**64, as the walked parse's wrapping products make them
_POW10 = np.array([10 ** k % (1 << 64) for k in range(_FIXED_MAX + 10)], dtype=np.uint64)


def _fixed_timestamps(buf: np.ndarray, start: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Timestamps of ``width`` bytes at ``start``: (which rows are read here, their values, the dot's
    column or 0 for bare counters). Read here: all digits but a dot in the column most rows have it
    in (a digit on each side, at most 18 before it), or all digits (a counter of at most 24). One
    pass per byte column, each a contiguous row of the transposed matrix."""
    cols = np.ascontiguousarray(windows(buf, start, width).T)
    dots = np.count_nonzero(cols == 46, axis=1)
    dot = int(dots.argmax())
    power: dict[int, np.uint64] = {}
    if 2 * int(dots[dot]) >= len(start) and 1 <= dot <= 18 and width - dot - 1 >= 1:
        got = cols[dot] == 46
        used = min(width - dot - 1, 9)
        # SEC's digits and the first nine of FRAC, each weighted by its power of ten in nanoseconds
        power = {j: _POW10[9 + dot - 1 - j] for j in range(dot)}
        power.update({j: _POW10[9 - (j - dot)] for j in range(dot + 1, dot + 1 + used)})
    elif width <= 24:
        got, dot = np.ones(len(start), bool), 0
        power = {j: _POW10[width - 1 - j] for j in range(width)}
    else:
        return np.zeros(len(start), bool), np.zeros(0, np.int64), 0
    value = np.zeros(len(start), np.uint64)
    for j in range(width):
        if dot and j == dot:
            continue
        digit = cols[j] - np.uint8(48)
        got &= digit < 10
        if j in power:
            value += digit * power[j]
    return got, value[got].astype(np.int64), dot


def _walked_timestamps(buf: np.ndarray, start: np.ndarray, end: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``parse_timestamp`` for any token: the digit runs walked with ``digits_forward``."""
    n = len(start)
    if not n:
        z = np.zeros(0, dtype=np.int64)
        return z, z.astype(bool), z, z.astype(bool)
    valid = end > start
    dot = digits_forward(buf, start, end, max_steps=24)
    has_dot = valid & (dot < end) & (buf[np.minimum(dot, len(buf) - 1)] == 46)
    fstart = np.where(has_dot, dot + 1, end)
    fend = digits_forward(buf, fstart, end, max_steps=32)
    # every byte read: no run of digits too long to be one, nothing after it but the fraction
    valid &= (fend == end) & (dot > start) & (~has_dot | (end > fstart)) & (has_dot | (dot == end))
    flen = np.where(has_dot, end - fstart, 0)
    used = np.minimum(flen, 9)
    sec = parse_uint(buf, start, np.where(valid, dot, start))
    frac = parse_uint(buf, fstart, np.where(valid, fstart + used, fstart))
    scale = (10 ** (9 - used)).astype(np.uint64)
    ns = np.where(has_dot, sec * np.uint64(1_000_000_000) + frac * scale, sec)
    return ns.astype(np.int64), has_dot, flen, valid


def gather(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> pa.LargeStringArray:
    """An arrow string array of the byte ranges ``buf[start:end]``.

    Ranges must be sorted and disjoint (fields of successive lines are). The
    kept bytes are selected with one run-length ``np.repeat`` mask, which is
    several times faster than a cumulative-sum mask or an index gather.
    """
    n = len(start)
    end = np.maximum(end, start)
    lengths = end - start
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if n == 0 or offsets[-1] == 0:
        data: np.ndarray | bytes = b""
    else:
        runs = np.empty(2 * n + 1, dtype=np.int64)
        runs[0] = start[0]
        runs[1:-1:2] = lengths
        runs[2:-1:2] = start[1:] - end[:-1]
        runs[-1] = len(buf) - end[-1]
        keep = np.zeros(2 * n + 1, dtype=bool)
        keep[1::2] = True
        data = buf[np.repeat(keep, runs)]  # Arrow keeps this array as the buffer: no copy to bytes
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def repair_utf8(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``buf`` with every byte that is not part of valid UTF-8 replaced by ``?``, and their positions.

    Same length, so every line and field offset stays put; ASCII-only blocks (the usual
    case) cost one comparison pass.
    """
    none = np.zeros(0, np.int64)
    if not len(buf) or int(buf.max()) < 0x80:
        return buf, none
    raw = buf.tobytes()
    bad: list[int] = []

    def note(exc: UnicodeError) -> tuple[str, int]:
        assert isinstance(exc, UnicodeDecodeError)  # registered for decoding only
        bad.extend(range(exc.start, exc.end))
        return "", exc.end

    try:
        raw.decode("utf-8")
        return buf, none
    except UnicodeDecodeError:
        codecs.register_error("kvmtrace-note", note)
        raw.decode("utf-8", errors="kvmtrace-note")
    where = np.asarray(bad, dtype=np.int64)
    out = buf.copy()
    out[where] = ord("?")
    return out, where
