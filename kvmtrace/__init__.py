"""kvmtrace: read ftrace/perf traces around kvm_entry/kvm_exit and find guest entry/exit bugs."""
from __future__ import annotations

from .errors import TraceError, TraceFormatError
from .meta import TraceMeta
from .trace import Trace, load

__version__ = "0.1.0"
__all__ = ["Trace", "TraceError", "TraceFormatError", "TraceMeta", "load", "__version__"]
