"""kvmtrace: read ftrace/perf traces around kvm_entry/kvm_exit and find guest entry/exit bugs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import KvmtraceError, TraceError, TraceFormatError
from .meta import TraceMeta
from .version import __version__

#: what ``import kvmtrace`` offers without importing pandas until it is first used (the CLI's
#: ``--help`` imports this package and nothing else)
_LAZY = {"Trace": "trace", "Options": "analyzers", "Analysis": "analyzers", "analyzers": "analyzers", "compare": "compare", "synth": "synth",
         "batch": "batch", "plot": "plot", "report": "report", "model": "model", "readers": "readers",
         "fields": "fields"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name) if name[0].isupper() or name == "load" else module
    raise AttributeError(f"module 'kvmtrace' has no attribute {name!r}")


def analyze(trace: Trace | str, options: "Options | None" = None, chunk_events: int | None = None,
            kernel_release: str | None = None) -> "Analysis":
    """Run every analyzer on a loaded trace (or a path): verdict, findings, DataFrames.
    ``chunk_events``: build the model that many events at a time (same result, less memory).
    ``kernel_release``: the traced kernel's ``uname -r`` where the trace does not record it (text)
    or records it wrongly; x86 tick accounting is decided from it."""
    from dataclasses import replace

    from .analyzers import Options as _Options, analyze as _analyze
    from .trace import Trace

    if kernel_release is not None:
        options = replace(options or _Options(), kernel_release=kernel_release)
    return _analyze(trace if isinstance(trace, Trace) else load(trace), options, chunk_events)


def load(path: "str | os.PathLike[str]", cache: bool = False, cache_dir: "str | os.PathLike[str] | None" = None,
         select: "Selection | None" = None) -> "Trace":
    """Load a trace file of any supported format (sniffed from its content). ``cache``: keep a
    Parquet copy (in ``cache_dir``, default ``~/.cache/kvmtrace``) with the typed fields the
    analyzers read, used while the file is unchanged; ``select``: keep only those events and fields
    (``kvmtrace.analyzers.selection()``)."""
    from .analyzers.registry import decoded
    from .loading import load as _load

    return _load(path, cache, cache_dir, select, cache_fields=tuple(decoded()))


if TYPE_CHECKING:
    import os

    from .analyzers import Analysis, Options
    from .readers.select import Selection
    from .trace import Trace

__all__ = ["analyze", "Analysis", "Options", "Trace", "KvmtraceError", "TraceError", "TraceFormatError", "TraceMeta", "load", "__version__"]
