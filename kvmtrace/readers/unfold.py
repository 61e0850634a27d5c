"""Rejoin event lines that a mail client, a bug tracker or ``fold`` wrapped (user story 5).

``fold -w W`` cuts every longer line into pieces of exactly W characters (``fold -s``
and mail clients at a space, which stays at the end of the piece), so a folded trace
has many lines of length W or ending in a space, each followed by a piece that does
not start an event line. A client that drops that space cannot be undone exactly, so it is not tried. Quoting (``> ``) before or after the folding is handled: quoted continuations
lose their quote prefix when they are joined. Everything here is a fixed number of
numpy passes over a block.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textscan as ts
from .sniff import TextFormat
from .text_lines import parse_block

#: narrowest fold that is rejoined (``fold -w 60``); narrower cuts land inside the line prefix
MIN_WIDTH = 40
_GT, _SPACE, _HASH, _CR, _TAB = ord(">"), ord(" "), ord("#"), ord("\r"), ord("\t")


@dataclass
class Fold:
    """How a text was folded: the physical width of a full piece, and whether every line is quoted."""

    width: int
    quoted: bool


def _lines(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line starts, ends (newline and a trailing CR excluded) and lengths."""
    starts, ends = ts.split_lines(buf)
    cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == _CR) if len(buf) else np.zeros(len(ends), bool)
    ends = ends - cr
    return starts, ends, ends - starts


def _continues(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, lengths: np.ndarray, width: int,
               fmt: TextFormat) -> np.ndarray:
    """Per line: it is the rest of the line before it (that one is a full ``width`` piece, and this
    one is neither blank, a comment, a marker nor the start of an event line)."""
    n = len(starts)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    ok = parse_block(buf, starts, ends, fmt.layout, perf=fmt.perf).anchored
    first = buf[np.minimum(starts, len(buf) - 1)]
    after_quote = quote_len(buf, starts, ends)
    lead = buf[np.minimum(starts + after_quote, len(buf) - 1)]
    plain = (lengths > 0) & ~ok & (first != _HASH) & (lead != _HASH)
    marker = (lead == ord("C")) & (buf[np.minimum(starts + after_quote + 1, len(buf) - 1)] == ord("P"))
    plain &= ~marker & (lead != _TAB)  # perf script's callchain frames: a tab, then the address
    out[1:] = _full(buf, ends, lengths, width, plain)[:-1] & plain[1:]
    return out


def _full(buf: np.ndarray, ends: np.ndarray, lengths: np.ndarray, width: int, piece: np.ndarray | None = None) -> np.ndarray:
    """Per line: it may be a wrapped piece: exactly ``width`` long (``fold``), or cut after a space
    (``fold -s``, mail clients), which stays at the end of the piece; a middle ``piece`` (itself
    a continuation) may be short when the word after it is long."""
    long = lengths >= MIN_WIDTH if piece is None else (lengths >= MIN_WIDTH) | piece
    spaced = long & (lengths > 0) & (buf[np.maximum(ends - 1, 0)] == _SPACE) if len(buf) else lengths > 0
    return (lengths == width) | spaced


def quote_len(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Length of each line's mail quote prefix (``>``, ``> ``, nested), from ``starts``."""
    q = np.zeros(len(starts), np.int64)
    for _ in range(8):
        at = starts + q
        inside = at < ends
        gt = inside & (buf[np.minimum(at, len(buf) - 1)] == _GT)
        if not gt.any():
            break
        q += gt
        sp = gt & (starts + q < ends) & (buf[np.minimum(starts + q, len(buf) - 1)] == _SPACE)
        q += sp
    return q


def detect(buf: np.ndarray, fmt: TextFormat) -> Fold | None:
    """The fold of a text, from its first block; None when its lines were not wrapped."""
    if not len(buf):
        return None
    starts, ends, lengths = _lines(buf)
    nonblank = lengths > 0
    if nonblank.sum() < 4:
        return None
    width = int(lengths.max())
    full = np.flatnonzero(_full(buf, ends, lengths, width)[:-1])
    if width < MIN_WIDTH or len(full) < 2 or len(full) < 0.05 * nonblank.sum():
        return None
    cont = _continues(buf, starts, ends, lengths, width, fmt)
    if cont[full + 1].mean() < 0.5 or not _varied(buf, starts, ends, full[cont[full + 1]], fmt):
        return None
    quoted = bool((quote_len(buf, starts, ends)[nonblank] > 0).mean() > 0.9)
    return Fold(width, quoted)


def _varied(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, heads: np.ndarray, fmt: TextFormat) -> bool:
    """Whether the lines that seem to go on are of several kinds, as the first pieces of a folded
    trace are (cut wherever the width falls); one kind of complete line followed by junk each time
    is a damaged trace, not a folded one."""
    heads = heads[:400]
    lf = parse_block(buf, starts[heads], ends[heads], fmt.layout, perf=fmt.perf)
    if not lf.ok.all():
        return True  # some were cut inside the line prefix: only folding does that
    es, ee = lf.event
    return len({bytes(buf[a:b]) for a, b in zip(es, ee)}) > 1


def rejoin(buf: np.ndarray, fold: Fold, fmt: TextFormat, final: bool) -> tuple[np.ndarray, int, int]:
    """``buf`` with its wrapped lines joined, how many pieces were joined, and where the last
    logical line starts when it may go on in the next block (``len(buf)`` when it cannot)."""
    starts, ends, lengths = _lines(buf)
    cont = _continues(buf, starts, ends, lengths, fold.width, fmt)
    tail = len(buf)
    # the last line may go on in the next block: a full piece, or a short middle piece that is
    # itself a continuation (``fold -s`` before a long word)
    if not final and len(starts) and _full(buf, ends[-1:], lengths[-1:], fold.width, cont[-1:])[0]:
        heads = np.flatnonzero(~cont)
        last = heads[-1] if len(heads) else 0
        tail = int(starts[last])
        cont[last:] = False
        if last == 0:  # one logical line fills the block: give it to the next block whole
            return buf[:0], 0, 0
    k = np.flatnonzero(cont)
    if not len(k):
        return buf[:tail], 0, tail
    keep = np.ones(len(buf), bool)
    drop_from = ends[k - 1]  # the previous piece's CR and newline
    drop_to = starts[k] + (quote_len(buf, starts[k], ends[k]) if fold.quoted else 0)
    span = drop_to - drop_from
    for step in range(int(span.max())):
        m = span > step
        keep[drop_from[m] + step] = False
    keep[tail:] = False
    return buf[keep], int(len(k)), tail
