"""Progress of long loads and analyses, told to whoever listens.

Readers and analyzers call ``step(stage, fraction)``; nothing happens unless a
listener is installed (the CLI installs a terminal bar, a notebook could install
a widget). Kept free of any output code so the lower layers stay quiet.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[str, float], None]
_listener: ContextVar[Listener | None] = ContextVar("kvmtrace_progress", default=None)


def step(stage: str, fraction: float) -> None:
    """Report that ``stage`` (e.g. "reading x.dat") is ``fraction`` (0..1) done."""
    fn = _listener.get()
    if fn is not None:
        fn(stage, min(max(fraction, 0.0), 1.0))


@contextmanager
def listening(fn: Listener) -> Iterator[None]:
    """Send progress to ``fn`` inside the block."""
    token = _listener.set(fn)
    try:
        yield
    finally:
        _listener.reset(token)
