"""A progress bar on stderr for long loads and analyses, drawn only on a terminal (tqdm)."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .. import progress

#: progress in thousandths, so a bar moves smoothly whatever the stage
UNITS = 1000


class Bar:
    """One tqdm bar per stage (stage name, percentage, elapsed, ETA), redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, min_interval: float = 0.1) -> None:
        self.stream, self.min_interval = stream, min_interval
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, fraction: float) -> None:
        from tqdm import tqdm  # only when a terminal shows progress

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=UNITS, desc=stage[:48], file=self.stream, mininterval=self.min_interval, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]", dynamic_ncols=True)
        self.bar.update(int(round(fraction * UNITS)) - self.bar.n)
        if fraction >= 1.0 or not self.min_interval:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
