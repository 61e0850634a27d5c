"""Giving a finished stage's freed heap back to the system."""
from __future__ import annotations

from functools import cache
from typing import Any


def give_back() -> None:
    """Return freed heap to the system. glibc keeps it otherwise (its mmap threshold grows with
    each big free), and RSS would grow with the trace, not with the piece or stage at work."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


#: glibc mallopt parameters: freed heap at the top kept up to this many bytes; allocations at
#: least this big are mapped, and unmapped when freed
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_heap(mapped_from: int = 32 << 20, kept: int = 256 << 20) -> None:
    """Have glibc reuse freed heap for the next allocation, for the rest of the process: map only
    allocations of ``mapped_from`` bytes or more, and keep up to ``kept`` freed bytes at the heap's
    top. A command's stages allocate and free arrays of the trace's length in turn; glibc's default
    returns and maps them afresh, and each is faulted in again page by page (on the 3.5M-event
    flood, about a third of the command's system time). ``give_back`` still trims on purpose."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, mapped_from)
        libc.mallopt(_M_TRIM_THRESHOLD, kept)


def map_big_allocations(threshold: int = 256 << 10) -> None:
    """Have glibc map every allocation of ``threshold`` bytes or more, for the rest of the process.
    Its default threshold grows with each big free (to 32 MB), so a huge streamed analysis's freed
    piece-sized arrays stay in the heap until trimmed, and RSS grows with the trace."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)


@cache
def _libc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname; looking it up with ldconfig takes a process
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to give back this way
        return None
