"""Transparent decompression of text traces, sniffed from the magic bytes.

People keep and mail traces as .gz/.xz/.zst; the file name is not trusted, the
first bytes are. Output is bounded so that a small hostile file cannot expand
without limit.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import mmap
import os
import stat
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from .. import progress
from ..errors import TraceFormatError, TraceTooLargeError
from . import wrapped

MAGICS: dict[str, bytes] = {
    "gzip": b"\x1f\x8b",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
    "bzip2": b"BZh",
}

#: Decompressed text may be at most this many times the compressed size ...
MAX_RATIO = 1000
#: ... and never more than this many bytes.
MAX_DECOMPRESSED = 64 << 30


def sniff_compression(head: bytes) -> str | None:
    """Name of the compression whose magic starts ``head``, else None."""
    for name, magic in MAGICS.items():
        if head.startswith(magic):
            if name == "bzip2" and not head[3:4].isdigit():
                continue
            return name
    return None


def _open_stream(raw: BinaryIO, kind: str | None) -> BinaryIO:
    if kind is None:
        return raw
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def mapped_plain(path: str) -> mmap.mmap | None:
    """``path`` mapped read-only when it is a regular file of plain text (neither compressed nor
    wrapped), else None: its blocks can then be copied straight out of the page cache, with no
    read into a new buffer and no join with the line the previous block cut."""
    try:
        with open(path, "rb") as raw:
            st = os.fstat(raw.fileno())
            if not stat.S_ISREG(st.st_mode) or not st.st_size:
                return None
            mm = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    if sniff_compression(mm[:8]) or wrapped.kind(mm[:1 << 16]):
        mm.close()
        return None
    return mm


def iter_blocks(path: str, block_size: int = 16 << 20) -> Iterator[bytes]:
    """Yield the (decompressed, unwrapped) content of ``path`` in blocks of about ``block_size``.

    Raises TraceTooLargeError when compressed input expands beyond the bound, and
    lets decompressor errors surface as EOFError/OSError/zstd errors for the
    caller to turn into a one-line message with the offset reached.
    """
    with open(path, "rb") as raw:
        head = raw.read(8)
        raw.seek(0)
        kind = sniff_compression(head)
        raw.seek(0, 2)
        size = raw.tell()
        raw.seek(0)
        stream = _open_stream(raw, kind)
        first = stream.read(block_size)
        wrapper = wrapped.kind(first)
        if wrapper == "atrace-zlib":
            kind = kind or "zlib"
        limit = min(MAX_DECOMPRESSED, max(size, 1) * MAX_RATIO) if kind else None

        def read() -> Iterator[bytes]:
            yield first
            while block := stream.read(block_size):
                yield block
        blocks = wrapped.unwrapped(read(), wrapper) if wrapper else read()
        total = 0
        for block in blocks:
            if not block:
                continue
            total += len(block)
            if limit is not None and total > limit:
                raise TraceTooLargeError(
                    path, f"byte {total}",
                    f"{kind} stream expands beyond {limit} bytes (over {MAX_RATIO}x the file); refusing a likely decompression bomb",
                )
            progress.step(f"reading {os.path.basename(path)}", raw.tell() / max(size, 1))
            yield block


def read_head(path: str, n: int = 1 << 16) -> tuple[bytes, str | None]:
    """The first ``n`` decompressed, unwrapped bytes and the compression or wrapper name (for
    sniffing). Only a regular file is opened: a FIFO or a device would block or never end."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise TraceFormatError(path, None, "not a regular file (a FIFO, device or socket): save the trace to a file first")
    with open(path, "rb") as raw:
        magic = raw.read(8)
        raw.seek(0)
        kind = sniff_compression(magic)
        stream = _open_stream(raw, kind)
        try:
            head = stream.read(n)
        except (EOFError, OSError, lzma.LZMAError, zstandard.ZstdError, zlib.error):
            return b"", kind
    wrapper = wrapped.kind(head)
    if wrapper is None:
        return head, kind
    got = b""
    try:
        for block in iter_blocks(path, 1 << 20):  # a systrace page holds megabytes of viewer before its data
            got += block
            if len(got) >= n:
                break
    except (EOFError, OSError, lzma.LZMAError, zstandard.ZstdError, zlib.error, TraceTooLargeError):
        pass
    return got[:n], f"{kind}+{wrapper}" if kind else wrapper
