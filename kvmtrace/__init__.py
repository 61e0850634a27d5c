"""kvmtrace: read ftrace/perf traces around kvm_entry/kvm_exit and find guest entry/exit bugs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import TraceError, TraceFormatError
from .meta import TraceMeta
from .trace import Trace, load


def analyze(trace: Trace | str, options: "Options | None" = None) -> "Analysis":
    """Run every analyzer on a loaded trace (or a path): verdict, findings, DataFrames."""
    from .analyzers import analyze as _analyze

    return _analyze(trace if isinstance(trace, Trace) else load(trace), options)


if TYPE_CHECKING:
    from .analyzers import Analysis, Options

__version__ = "0.1.0"
__all__ = ["analyze", "Trace", "TraceError", "TraceFormatError", "TraceMeta", "load", "__version__"]
