"""A progress bar on stderr for long loads and analyses, drawn only on a terminal."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from .. import progress

WIDTH = 24


class Bar:
    """Redraws one status line in place; at most 10 times a second."""

    def __init__(self, stream: TextIO, min_interval: float = 0.1) -> None:
        self.stream, self.min_interval = stream, min_interval
        self.last, self.drawn = 0.0, 0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < self.min_interval and fraction < 1.0:
            return
        self.last = now
        done = int(round(fraction * WIDTH))
        line = f"{stage[:48]:<48} [{'#' * done}{'.' * (WIDTH - done)}] {fraction:4.0%}"
        self.stream.write("\r" + line)
        self.stream.flush()
        self.drawn = len(line)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()


@contextmanager
def terminal_progress(stream: TextIO | None = None) -> Iterator[None]:
    """Show progress inside the block when ``stream`` (stderr) is a terminal; else stay silent."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    bar = Bar(stream)
    try:
        with progress.listening(bar):
            yield
    finally:
        bar.close()
