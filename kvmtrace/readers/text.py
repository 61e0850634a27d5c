"""Load any kvmtrace-supported text trace into the events table, block by block.

Blocks of 6 MB are decoded with numpy (``text_lines``), so memory follows the
events kept, not the file; every line ends up either as an event or counted in
``meta.skipped`` by reason, with the first few kept as examples.
"""
from __future__ import annotations

import lzma
import mmap
import os
import re
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from .. import progress
from ..errors import TraceFormatError
from ..meta import MAX_EXAMPLES, TraceMeta
from . import textscan as ts
from . import unfold
from .compression import iter_blocks, mapped_plain
from .flags import decode_flags
from .sniff import TextFormat
from .select import Selection
from .table import POOL, EventColumns
from .text_lines import LineFields, parse_block

_LOST = re.compile(rb"^CPU:?\s*(\d+)\s*\[(?:(?:(\d+) )?EVENTS DROPPED|LOST (\d+) EVENTS|LOST EVENTS)\]")
_CPUS = re.compile(rb"^cpus=(\d+)$")
_VERSION = re.compile(rb"^version = (\d+)$")
_EMPTY = re.compile(rb"^CPU (\d+) is empty$")
_INSPECT_MAX = 1_000_000  # non-event lines looked at one by one (markers, prologue)
_DOT = ord(".")


#: a "line" longer than this is damage (a sparse or binary stretch): skipped to the next newline
MAX_LINE = 16 << 20
#: lines per decoded block at most: blank-line floods cost per-line arrays, not bytes
MAX_LINES = 250_000
#: blocks queued beyond one per worker, so a worker finishing a block finds the next one while the
#: main thread accounts for the last (with one per worker, a core idles through that accounting)
AHEAD = 1


def _lines_of(path: str, block_size: int, overlong: list[int]) -> Iterator[tuple[np.ndarray, bool]]:
    """Yield byte blocks that end on a line boundary (the last one may not), of at most ``MAX_LINES``
    lines; a stretch over ``MAX_LINE`` bytes without a newline is dropped and its byte offset
    appended to ``overlong``."""
    mm = mapped_plain(path)
    if mm is not None:
        yield from _mapped_lines(mm, os.path.basename(path), block_size, overlong)
        return
    carry = b""
    skipping = False
    at = 0  # bytes of the decompressed stream seen
    try:
        for block in iter_blocks(path, block_size):
            at += len(block)
            if skipping:
                nl = block.find(b"\n")
                if nl < 0:
                    continue
                block, skipping = block[nl + 1:], False
            data = carry + block if carry else block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                if len(carry) > MAX_LINE:
                    overlong.append(at - len(carry))
                    carry, skipping = b"", True
                continue
            carry = data[cut:]
            yield from _by_lines(np.frombuffer(data, dtype=np.uint8, count=cut), data.count(b"\n", 0, cut))
    except (EOFError, OSError, lzma.LZMAError, zstandard.ZstdError, zlib.error) as exc:
        # truncated or corrupt compressed stream: keep what decoded, say so
        if carry:
            yield np.frombuffer(carry, dtype=np.uint8), True
        raise _Truncated(str(exc)) from exc
    if carry:
        yield np.frombuffer(carry, dtype=np.uint8), True


def _mapped_lines(mm: mmap.mmap, name: str, block_size: int, overlong: list[int]) -> Iterator[tuple[np.ndarray, bool]]:
    """``_lines_of`` for a mapped plain file: each block is copied out of the mapping once, cut
    after its last newline (a read would copy every block into a new bytes object, then join it
    to the line the previous block cut). Copied right after the file's size is checked: a page of
    a mapping that a rewrite truncated away kills the process with SIGBUS when touched, so no
    block in flight is a view of it, and a file that shrank ends the read with a warning."""
    whole = np.frombuffer(mm, np.uint8)
    size, pos, released = len(whole), 0, 0

    def still(b: int) -> None:
        if mm.size() < b:
            raise _Truncated(f"the file shrank to {mm.size():,} bytes while being read (rewritten?)")

    while pos < size:
        progress.step(f"reading {name}", pos / size)
        # the pages already copied leave the mapping (the page cache keeps them), so what the
        # process maps stays about a block, not the file
        behind = pos // mmap.PAGESIZE * mmap.PAGESIZE
        if behind > released and hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED, released, behind - released)
            released = behind
        end = min(pos + block_size, size)
        still(end)
        cut = mm.rfind(b"\n", pos, end) + 1
        if end < size and not cut:  # a line longer than a block: to its newline, if it has one
            still(size)
            cut = mm.find(b"\n", end) + 1
            if cut and cut - pos > MAX_LINE:
                overlong.append(pos)  # not text: on after its newline
                pos = cut
                continue
        if cut > pos:
            block = whole[pos:cut].copy()
            yield from _by_lines(block, int(np.count_nonzero(block == 10)))
            pos = cut
        if end == size or not cut:  # what is left is one last line without a newline
            if pos < size:
                if size - pos > MAX_LINE:
                    overlong.append(pos)
                else:
                    still(size)
                    yield whole[pos:size].copy(), True
            return


def _by_lines(buf: np.ndarray, lines: int) -> Iterator[tuple[np.ndarray, bool]]:
    """``buf`` (``lines`` whole lines) in pieces of at most ``MAX_LINES`` lines. The caller counts
    the lines on the reading thread, ahead of the parsers; only a block of more than MAX_LINES
    is searched for its line ends."""
    if lines <= MAX_LINES:
        yield buf, False
        return
    ends = np.flatnonzero(buf == 10)[MAX_LINES - 1::MAX_LINES] + 1
    start = 0
    for end in ends:
        yield buf[start:end], False
        start = int(end)
    if start < len(buf):
        yield buf[start:], False


class _Truncated(Exception):
    pass


def _unfolded(blocks: Iterator[tuple[np.ndarray, bool]], fmt: TextFormat, meta: TraceMeta) -> Iterator[tuple[np.ndarray, bool]]:
    """``blocks`` with wrapped event lines rejoined (``unfold``), when the first block shows folding;
    a logical line that may go on in the next block is held back and joined there."""
    fold: unfold.Fold | None = None
    carry = np.zeros(0, np.uint8)
    joined = 0
    try:
        for i, (buf, final) in enumerate(blocks):
            if i == 0:
                fold = unfold.detect(buf, fmt)
                if fold is None:
                    yield buf, final
                    yield from blocks
                    return
            assert fold is not None
            data = np.concatenate((carry, buf)) if len(carry) else buf
            out, n, tail = unfold.rejoin(data, fold, fmt, final)
            joined += n
            carry = data[tail:]
            if len(out):
                yield out, final and not len(carry)
    except _Truncated:
        if len(carry):
            yield carry, True
        carry = np.zeros(0, np.uint8)
        raise
    finally:
        if joined and fold is not None:
            meta.warnings.append(f"{joined:,} wrapped line pieces (folded at {fold.width} columns"
                                 f"{', quoted' if fold and fold.quoted else ''}) were rejoined to their event lines")
            meta.kernel["rejoined_pieces"] = joined
    if len(carry) and fold is not None:  # (a carry exists only while rejoining)
        out, n, _ = unfold.rejoin(carry, fold, fmt, True)
        meta.kernel["rejoined_pieces"] = meta.kernel.get("rejoined_pieces", 0) + n
        yield out, True


@dataclass
class _Block:
    """One decoded block: prefix fields of every line, strings of the event lines."""

    buf: np.ndarray
    starts: np.ndarray
    final: bool
    lf: LineFields
    ok: np.ndarray
    width: np.ndarray
    chars: np.ndarray
    pieces: dict
    repaired: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # positions of bytes not UTF-8
    stray: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # carriage returns inside a line
    continued: np.ndarray | None = None  # per line: a continuation of the message event above it


def _decode(buf: np.ndarray, final: bool, fmt: TextFormat, encode: bool = False) -> _Block:
    """Everything per block that needs no shared state (runs on a worker thread); with ``encode``,
    the task and event names dictionary-encoded as the table keeps them (a selective load filters
    the plain strings first)."""
    buf, repaired = ts.repair_utf8(buf)
    cr = np.flatnonzero(buf == 13)  # a CR that ends no line: a newline lost, two lines run together
    stray = cr[(cr + 1 < len(buf)) & (buf[np.minimum(cr + 1, len(buf) - 1)] != 10)]
    starts, ends = ts.split_lines(buf)
    lf = parse_block(buf, starts, ends, fmt.layout, perf=fmt.perf)
    fs, fe = lf.flags
    width = fe - fs
    lf.ok &= (width == 0) | (width == 4) | (width == 5)
    ok = np.flatnonzero(lf.ok)
    w = width[ok]
    chars = np.full((len(ok), 5), _DOT, dtype=np.uint8)
    for k in range(5):
        m = w > k
        chars[m, k] = buf[fs[ok][m] + k]
    event = ts.gather(buf, lf.event[0][ok], lf.event[1][ok])
    # the kernel prints the ftrace "print" event as tracing_mark_write; trace-cmd and
    # trace.dat call it print: one name, whichever text it came from
    marks = pc.equal(event, "tracing_mark_write")
    if pc.any(marks).as_py():  # most blocks have none: no copy of every name then
        event = pc.if_else(marks, "print", event)
    special = lf.special_event[ok]
    if special.any():
        event = pc.if_else(pa.array(special == 1), "function",
                           pc.if_else(pa.array(special == 2), "kernel_stack", event))
        # the kernel's syscall text names NAME; trace-cmd and trace.dat call the events sys_enter_NAME, sys_exit_NAME
        def named(prefix: str) -> pa.Array:
            return pc.binary_join_element_wise(pa.scalar(prefix, event.type), event, pa.scalar("", event.type))
        event = pc.if_else(pa.array(special == 3), named("sys_enter_"),
                           pc.if_else(pa.array(special == 4), named("sys_exit_"), event))
    continued, payload_end = _continuations(buf, lf, ok, event)
    comm = ts.gather(buf, lf.comm[0][ok], lf.comm[1][ok])
    system = ts.gather(buf, lf.system[0][ok], lf.system[1][ok]) if fmt.perf else None
    if encode:
        comm, event = pc.dictionary_encode(comm, memory_pool=POOL), pc.dictionary_encode(event, memory_pool=POOL)
        system = pc.dictionary_encode(system, memory_pool=POOL) if system is not None else None
    pieces = dict(
        ts=lf.ts_ns[ok], cpu=lf.cpu[ok], pid=lf.pid[ok], tgid=(lf.tgid[ok], lf.tgid_known[ok]),
        comm=comm, event=event, system=system,
        flags=decode_flags(chars, w),
        payload=ts.gather(buf, lf.payload[0][ok], payload_end),
    )
    return _Block(buf, starts, final, lf, ok, w, chars[:, 0], pieces, repaired, stray, continued)


#: events whose payload is a free-form message, which may hold newlines (trace_marker, trace_printk)
MESSAGES = ("print", "bprint", "bputs", "tracing_mark_write")


def _continuations(buf: np.ndarray, lf: LineFields, ok: np.ndarray, event: pa.Array) -> tuple[np.ndarray | None, np.ndarray]:
    """(per line: a continuation of a message, the event lines' payload ends with their continuations).

    A message printed with embedded newlines goes on over the next lines as they are, in the kernel's
    text and trace-cmd's alike: lines that begin like no event, marker or comment, right after a
    message event, are the rest of its payload."""
    payload_end = lf.payload[1][ok]
    n = len(lf.ok)
    if not n or not len(ok):
        return None, payload_end
    first = buf[np.minimum(lf.lstart, len(buf) - 1)]
    loose = ~lf.ok & ~lf.anchored & (lf.end > lf.lstart) & (first != ord("#")) & (first != ord("C"))
    if not loose.any():
        return None, payload_end
    message = np.zeros(n, bool)
    message[ok[pc.is_in(event, pa.array(MESSAGES, event.type)).to_numpy(zero_copy_only=False)]] = True
    owner = np.maximum.accumulate(np.where(loose, -1, np.arange(n)))  # the line above each run of loose lines
    continued = loose & (owner >= 0) & message[np.maximum(owner, 0)]
    if not continued.any():
        return None, payload_end
    last = np.full(n, -1, np.int64)
    np.maximum.at(last, owner[continued], lf.end[continued])
    row = np.full(n, -1, np.int64)
    row[ok] = np.arange(len(ok))
    owners = np.flatnonzero(last >= 0)
    payload_end = payload_end.copy()
    payload_end[row[owners]] = last[owners]
    return continued, payload_end


def read_text(path: str, fmt: TextFormat, meta: TraceMeta, block_size: int = 6 << 20,
              workers: int = 2, select: Selection | None = None) -> EventColumns:
    """Parse the whole text trace at ``path`` in format ``fmt`` into event columns."""
    (cols,) = text_chunks(path, fmt, meta, block_size, workers, select)
    return cols


def text_chunks(path: str, fmt: TextFormat, meta: TraceMeta, block_size: int = 6 << 20, workers: int = 2,
                select: Selection | None = None, chunk_events: int | None = None) -> Iterator[EventColumns]:
    """The text trace at ``path`` as event columns of about ``chunk_events`` events each (one with None);
    ``meta`` is complete when the last is handed out.

    Blocks are decoded on ``workers`` threads (numpy releases the GIL) while the
    main thread reads ahead and keeps the per-line accounting in source order.
    """
    cols = EventColumns(select)
    # only the kernel's own text shows the BH-disabled bit; a chunk handed out before the end
    # decides it from the header and what was seen so far
    tracefs = fmt.name == "tracefs"
    line_base = 0
    last_ts_by_cpu: dict[int, int] = {}
    min_flen = 9
    widths = np.zeros(6, dtype=np.int64)
    bh_seen = False
    pending: deque[Future[_Block]] = deque()
    repaired = stray = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        overlong: list[int] = []
        blocks = _unfolded(_lines_of(path, block_size, overlong), fmt, meta)
        truncated: str | None = None
        while True:
            while len(pending) < workers + AHEAD and truncated is None:
                try:
                    buf, final = next(blocks)
                except StopIteration:
                    break
                except _Truncated as exc:
                    truncated = str(exc)
                    break
                pending.append(pool.submit(_decode, buf, final, fmt, select is None))
            if not pending:
                break
            blk = pending.popleft().result()
            lf, ok = blk.lf, blk.ok
            n_lines = len(blk.starts)
            if blk.final and n_lines and not lf.ok[-1] and meta.events + len(ok) > 0:
                meta.warnings.append(f"last line ({line_base + n_lines}) is incomplete: file truncated?")
            cut = blk.final and len(blk.buf) and blk.buf[-1] != 10 and n_lines and lf.ok[-1]
            if cut:  # an event line without its newline may have lost the end of its payload
                meta.warnings.append(f"last line ({line_base + n_lines}) has no newline: it may be cut, so it is "
                                     "damage (findings resting on it are not proven)")
            unparsed = _skip_lines(blk.buf, blk.starts, lf, meta, line_base, last_ts_by_cpu, blk.continued)
            meta.damaged.extend(_damaged(blk, unparsed, cols.next_seq, bool(cut)))
            repaired += len(blk.repaired)
            stray += len(blk.stray)
            if len(ok):
                widths += np.bincount(blk.width, minlength=6)[:6]
                bh_seen |= bool(np.isin(blk.chars, (ord("D"), ord("b"))).any())
                dotted = lf.ts_has_dot[ok]
                if dotted.any():
                    min_flen = min(min_flen, int(lf.ts_frac_digits[ok][dotted].min()))
                if not dotted.all():
                    meta.clock = "counter"
                cols.add_block(line=ok + line_base + 1, **blk.pieces)
                meta.events += len(ok)
                for c, t in zip(*_last_per_cpu(lf.cpu[ok], lf.ts_ns[ok])):
                    last_ts_by_cpu[int(c)] = int(t)
            line_base += n_lines
            if chunk_events and len(cols) >= chunk_events:
                if not (tracefs and (meta.kernel.get("bh_header") or bh_seen)):
                    cols.clear_flag_knowledge("bh_off")
                yield cols
                cols = cols.following()
        if truncated is not None:
            meta.warnings.append(f"the input ends early after line {line_base}: {truncated}; loaded what decoded")
            meta.skip("truncated-stream", 1, line_base + 1, truncated)
    meta.lines = line_base
    if overlong:
        meta.warnings.append(f"{len(overlong)} stretches of over {MAX_LINE >> 20} MiB without a newline "
                             f"(first at byte {overlong[0]}) were skipped: not text")
        meta.skip("overlong-line", len(overlong), None, f"at byte {overlong[0]}")
    if repaired:
        meta.warnings.append(f"{repaired} bytes that are not UTF-8 were replaced by '?' (lines kept)")
        meta.kernel["non_utf8_bytes"] = repaired
    if stray:
        meta.warnings.append(f"{stray} carriage returns inside lines (a lost newline runs two lines together): "
                             "those events are damage")
        meta.kernel["stray_carriage_returns"] = stray
    meta.flag_width = int(np.argmax(widths)) if widths.sum() else 0
    if meta.clock != "counter":
        meta.clock = "ns"
        meta.ts_resolution_ns = 10 ** (9 - min(min_flen, 9))
    else:
        meta.ts_resolution_ns = 1
    # Only the kernel's own text shows the BH-disabled bit (v5.18+ header or D/b seen)
    meta.kernel["bh_flag"] = bool(meta.kernel.get("bh_header") or bh_seen) and tracefs
    if not meta.kernel["bh_flag"]:
        cols.clear_flag_knowledge("bh_off")
    if meta.events == 0:
        first = meta.skipped_examples[0] if meta.skipped_examples else None
        where = f"line {first['line']}" if first else None
        raise TraceFormatError(path, where, f"no trace events found in {meta.lines} lines ({fmt.name} text)")
    yield cols


def _damaged(blk: _Block, unparsed: np.ndarray, seq0: int, cut: bool = False) -> list[list[int]]:
    """[seq, cpu] of the block's damage (``seq0``: the seq of its first event): each unparsable line
    as the event after it on an unknown CPU (−1); each event line with bytes that were not UTF-8 or a
    carriage return inside, and a ``cut`` last line, as that event on its CPU."""
    out = [[int(q), -1] for q in seq0 + np.searchsorted(blk.ok, unparsed)]
    at = np.searchsorted(blk.starts, np.r_[blk.repaired, blk.stray], side="right") - 1
    lines: np.ndarray = np.unique(np.r_[at, len(blk.starts) - 1] if cut else at)
    events = lines[np.isin(lines, blk.ok)]
    out += [[int(seq0 + a), int(blk.lf.cpu[j])] for a, j in zip(np.searchsorted(blk.ok, events), events)]
    return out


def _last_per_cpu(cpu: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rev_cpu = cpu[::-1]
    uniq, idx = np.unique(rev_cpu, return_index=True)
    return uniq, t[::-1][idx]


def _skip_lines(buf: np.ndarray, starts: np.ndarray, lf: LineFields, meta: TraceMeta, line_base: int,
                last_ts_by_cpu: dict[int, int], continued: np.ndarray | None = None) -> np.ndarray:
    """Account for every non-event line: prologue, markers, comments, blanks, message continuations,
    garbage; the block positions of the unparsable (garbled or cut) ones."""
    if continued is not None:
        meta.skip("message-continuation", int(continued.sum()))
    bad = np.flatnonzero(~lf.ok if continued is None else ~lf.ok & ~continued)
    if not len(bad):
        return bad
    first = np.zeros(len(bad), dtype=np.uint8)
    nonblank = lf.end[bad] > lf.lstart[bad]
    # a mail-quoted line ("> # tracer: nop") is what follows its quote prefix
    at = lf.lstart[bad] + unfold.quote_len(buf, lf.lstart[bad], lf.end[bad])
    nonblank &= at < lf.end[bad]
    first[nonblank] = buf[at[nonblank]]
    wordless = ~nonblank
    nonblank[wordless] = _control_bytes(buf, starts, bad[wordless])  # NULs are no blank line: damage
    blank = ~nonblank
    meta.skip("blank", int(blank.sum()))
    comment = first == ord("#")
    if comment.any():
        meta.skip("comment", int(comment.sum()))
        for j in bad[comment][:40]:
            if b"irqs-off/BH-disabled" in bytes(buf[lf.lstart[j]:lf.end[j]]):
                meta.kernel["bh_header"] = True
    stack = (first == ord("=")) & (_at(buf, lf.lstart[bad] + 1) == ord(">"))
    meta.skip("stack-frame", int(stack.sum()))
    # perf script's callchain under a sample or event: "\tADDRESS SYMBOL (DSO)"
    frame = nonblank & (_at(buf, starts[bad]) == ord("\t")) & ts.HEX[first]
    meta.skip("callchain-frame", int(frame.sum()))
    stack |= frame
    rest = bad[nonblank & ~comment & ~stack]
    inspect = rest[np.isin(first[nonblank & ~comment & ~stack], (ord("c"), ord("C"), ord("v")))]
    inspect = inspect[:_INSPECT_MAX]
    handled = np.zeros(len(rest), dtype=bool)
    pos_in_rest = {int(j): k for k, j in enumerate(rest)} if len(inspect) else {}
    for j in inspect:
        line = bytes(buf[lf.lstart[j]:lf.end[j]])
        kind = _meta_line(line, meta, lf, j, line_base, last_ts_by_cpu)
        if kind:
            handled[pos_in_rest[int(j)]] = True
            meta.skip(kind, 1)
    unparsed = rest[~handled]
    for j in unparsed[:MAX_EXAMPLES]:
        text = bytes(buf[starts[j]:lf.end[j]]).decode("utf-8", "replace")
        meta.skip("unparsable", 1, int(j) + line_base + 1, text)
    meta.skip("unparsable", max(len(unparsed) - MAX_EXAMPLES, 0))
    return unparsed


def _control_bytes(buf: np.ndarray, starts: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Per line of ``lines`` (lines without a word): it holds a control byte other than tab, CR,
    vertical tab or form feed (a zeroed or binary stretch, not whitespace)."""
    if not len(lines):
        return np.zeros(0, bool)
    ends = np.r_[starts[1:], len(buf)][lines]
    size = ends - starts[lines]
    pos = np.repeat(starts[lines] - np.r_[0, np.cumsum(size)[:-1]], size) + np.arange(int(size.sum()))
    b = buf[pos]
    bad = (b < 32) & (b != 9) & (b != 10) & (b != 11) & (b != 12) & (b != 13)
    owner = np.repeat(np.arange(len(lines)), size)
    hit = np.zeros(len(lines), bool)
    hit[owner[bad]] = True
    return hit


def _at(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.minimum(pos, len(buf) - 1)
    return buf[pos]


def _meta_line(line: bytes, meta: TraceMeta, lf: LineFields, j: int, line_base: int,
               last_ts_by_cpu: dict[int, int]) -> str | None:
    """Record what a prologue or marker line says; return its skip reason, or None."""
    m = _LOST.match(line)
    if m:
        cpu = int(m.group(1))
        count = m.group(2) or m.group(3)
        meta.lost_markers += 1
        meta.lost[cpu] = meta.lost.get(cpu, 0) + (int(count) if count else 0)
        prev = np.flatnonzero(lf.ok[:j] & (lf.cpu[:j] == cpu))
        before = int(lf.ts_ns[prev[-1]]) if len(prev) else last_ts_by_cpu.get(cpu)
        meta.lost_gaps.append({"cpu": cpu, "ts": before,
                               "count": int(count) if count else None, "line": int(j) + line_base + 1})
        return "lost-events-marker"
    m = _CPUS.match(line)
    if m:
        meta.cpus = int(m.group(1))
        return "prologue"
    m = _VERSION.match(line)
    if m:
        meta.kernel["trace_cmd_file_version"] = int(m.group(1))
        return "prologue"
    m = _EMPTY.match(line)
    if m:
        meta.empty_cpus.append(int(m.group(1)))
        return "prologue"
    return None
