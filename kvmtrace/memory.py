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


@cache
def _libc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname; looking it up with ldconfig takes a process
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to give back this way
        return None
