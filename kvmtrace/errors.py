"""Errors a user sees: one line naming the file and the place, never a traceback."""
from __future__ import annotations


class TraceError(Exception):
    """A trace could not be read. ``str()`` is the one-line message the CLI prints."""

    def __init__(self, path: str, where: str | None, message: str) -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        place = f"{self.path}:{where}" if where else self.path
        super().__init__(f"{place}: {message}")


class TraceFormatError(TraceError):
    """The bytes are not a trace format kvmtrace knows, or are damaged beyond use."""


class TraceTooLargeError(TraceError):
    """A declared size or a decompressed stream exceeds the configured bound."""


class OutputError(Exception):
    """An output (report folder, cache) cannot be written where asked, or not safely."""
