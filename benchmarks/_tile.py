"""Big traces from a small one: copies of a trace back to back in time, for the scale benchmarks.

Synthesizing 100M events takes an hour; tiling a synthesized 1M-event trace takes seconds.
Each copy is shifted by the source's span rounded up to a whole second, so every seam
between copies looks the same, and an exact analysis of N copies counts
``one + (N - 1) * (two - one)`` of anything (``one``/``two``: the counts of 1 and 2 copies).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from kvmtrace.readers.tracedat import header as hdr

_NS = 1_000_000_000
_TEXT_TS = re.compile(rb"^(.*?\] \S+ +)(\d+)(\.\d+: .*)$", re.S)


def tile_dat(src: Path, dst: Path, copies: int) -> None:
    """``copies`` of an uncompressed trace.dat v6 (one buffer, as ``synth`` writes it): each CPU's
    pages repeated with their page timestamps shifted (records carry only deltas)."""
    raw = src.read_bytes()
    dat = hdr.parse(str(src), memoryview(raw))
    assert dat.version == 6 and len(dat.buffers) == 1, "tile_dat takes a v6 trace.dat with one buffer"
    cpus = dat.buffers[0].cpus
    page = dat.page_size
    pages = [np.frombuffer(raw, np.uint8, c.size, c.offset).reshape(-1, page) for c in cpus]
    stamps = np.concatenate([p[:, :8].copy().view("<u8").ravel() for p in pages])
    span = (int(stamps.max()) - int(stamps.min())) // _NS * _NS + _NS
    table = raw.index(b"flyrecord\0") + len(b"flyrecord\0")
    data_at = (table + 16 * len(cpus) + page - 1) // page * page
    with open(dst, "wb") as out:
        out.write(raw[:table])
        pos = data_at
        for p in pages:
            out.write(struct.pack("<QQ", pos, p.size * copies))
            pos += p.size * copies
        out.write(b"\0" * (data_at - out.tell()))
        for p in pages:
            ts = p[:, :8].copy().view("<u8").ravel()
            for k in range(copies):
                block = p.copy()
                block[:, :8] = (ts + np.uint64(k * span)).view(np.uint8).reshape(-1, 8)
                out.write(block.tobytes())


def tile_text(src: Path, dst: Path, copies: int) -> None:
    """``copies`` of a text trace (``[CPU] ... SECONDS.FRACTION:`` lines), each shifted by whole seconds;
    comment lines are written once, at the top."""
    lines = src.read_bytes().splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith(b"#")]
    body = [m.groups() for m in map(_TEXT_TS.match, lines) if m]
    span = max(int(s) for _, s, _ in body) - min(int(s) for _, s, _ in body) + 1
    with open(dst, "wb") as out:
        out.writelines(head)
        for k in range(copies):
            shift = k * span
            out.writelines(b"%s%d%s" % (h, int(s) + shift, t) for h, s, t in body)
