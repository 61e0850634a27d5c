"""Errors a user sees: one line naming the file and the place, never a traceback."""
from __future__ import annotations


class KvmtraceError(Exception):
    """Every error kvmtrace explains itself: ``str()`` is one line, which the CLI prints before
    exiting 2. Catch this one to handle them all."""


class TraceError(KvmtraceError):
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


class OutputError(KvmtraceError):
    """An output (report folder, cache) cannot be written where asked, or not safely."""


class MissingEventsError(KvmtraceError, KeyError):
    """A trace has no events of the type asked for, or a selective load did not keep them (a
    ``KeyError`` too, as lookups by name raise)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CompareError(KvmtraceError, ValueError):
    """A comparison cannot be made as asked (a side without traces)."""
